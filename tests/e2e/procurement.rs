//! The joint-procurement lifecycle over HTTP, each step by the role that does it in the field.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use velferd::auth::Role;

use crate::nodes::NodeSample;
use crate::support::*;

/// A valid organisation number for test organisation `n` (fixtures, not real ones).
pub fn org_number(n: u32) -> String {
    let mut prefix = 80_000_000 + n * 13;
    loop {
        let digits: Vec<u32> = prefix.to_string().chars().map(|c| c.to_digit(10).unwrap()).collect();
        let sum: u32 = digits.iter().zip([3, 2, 7, 6, 5, 4, 3, 2]).map(|(d, w)| d * w).sum();
        match 11 - sum % 11 {
            10 => prefix += 1,
            11 => return format!("{prefix}0"),
            d => return format!("{prefix}{d}"),
        }
    }
}

const COUNTIES: [&str; 7] =
    ["Vestfold", "Hordaland", "Sør-Trøndelag", "Nord-Trøndelag", "Akershus", "Nordland", "Telemark"];

/// The cast of the Larvik story, with their ids and tokens.
pub struct Story {
    pub procurement: String,
    pub lead_po: String,
    pub participant_po: Vec<String>,
    pub follower_po: String,
    pub dignio: String,
    pub evondos: String,
    pub user_stories: Vec<String>,
    pub deadline_secs: u64,
}

async fn ok(app: &TestApp, token: &str, mutation: &str, field: &str, input: Value) -> Value {
    let data = app.graphql(Some(token), mutation, json!({ "input": input })).await;
    let payload = &data[field];
    assert_eq!(payload["userErrors"], json!([]), "{field}: {payload}");
    payload.clone()
}

/// Registers 29 municipalities in 7 counties (Larvik leading), two followers and the two
/// suppliers, and plays the story up to the published notice, with a deadline `deadline_secs`
/// from now.
pub async fn larvik_to_competition(app: &TestApp, deadline_secs: u64) -> Story {
    let mut municipalities = Vec::new();
    for i in 0..31u32 {
        let number = org_number(i);
        let name = if i == 0 { "Larvik kommune".to_string() } else { format!("Kommune {i}") };
        let mut input = json!({ "kind": "MUNICIPALITY", "name": name, "orgNumber": number,
            "municipalityNumber": format!("{:04}", 100 + i), "county": COUNTIES[(i % 7) as usize] });
        // Populations known for all but one buying municipality.
        if i != 5 {
            input["population"] = json!(1000 * (i + 1));
            input["populationYear"] = json!(2018);
        }
        let id = app.create_organization(input).await;
        municipalities.push((id, number));
    }
    let dignio_org = org_number(100);
    let evondos_org = org_number(101);
    app.create_organization(json!({ "kind": "SUPPLIER", "name": "Dignio AS", "orgNumber": dignio_org })).await;
    app.create_organization(json!({ "kind": "SUPPLIER", "name": "Evondos Oy", "orgNumber": evondos_org })).await;

    let lead_po = app.token(&municipalities[0].1, &[Role::ProcurementOfficer]);
    let created = ok(app, &lead_po,
        "mutation($input: ProcurementCreateInput!) { procurementCreate(input: $input) { procurement { id phase } userErrors { code message } } }",
        "procurementCreate",
        json!({ "title": "Elektronisk medisineringsstøtte", "category": "MEDICATION_SUPPORT", "startedOn": "2016-10-01" })).await;
    let procurement = created["procurement"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["procurement"]["phase"], "NEEDS");

    let add = "mutation($input: ProcurementParticipantAddInput!) { procurementParticipantAdd(input: $input) { participant { role } userErrors { code message } } }";
    for (i, (id, _)) in municipalities.iter().enumerate().skip(1) {
        let role = if i >= 29 { "FOLLOWER" } else { "PARTICIPANT" };
        ok(
            app,
            &lead_po,
            add,
            "procurementParticipantAdd",
            json!({ "procurementId": procurement, "organizationId": id, "role": role, "joinedOn": "2017-01-10" }),
        )
        .await;
    }

    // Needs phase: service journey, needs, the February 2017 workshops.
    for step in ["Legemiddel forskrives", "Multidose pakkes", "Dispenser varsler", "Bruker tar dosen"] {
        ok(app, &lead_po, "mutation($input: JourneyStepAddInput!) { journeyStepAdd(input: $input) { journeyStep { position } userErrors { code message } } }",
            "journeyStepAdd", json!({ "procurementId": procurement, "title": step })).await;
    }
    ok(app, &lead_po, "mutation($input: NeedAddInput!) { needAdd(input: $input) { need { description } userErrors { code message } } }",
        "needAdd", json!({ "procurementId": procurement, "description": "Varsel til hjemmetjenesten når en dose ikke er tatt", "journeyStepPosition": 3 })).await;
    let activity = "mutation($input: DialogueActivityAddInput!) { dialogueActivityAdd(input: $input) { dialogueActivity { kind } userErrors { code message } } }";
    ok(app, &lead_po, activity, "dialogueActivityAdd", json!({ "procurementId": procurement, "kind": "WORKSHOP",
        "title": "Erfaringsdeling og behovskartlegging", "heldOn": "2017-02-07",
        "attendees": [{ "organizationId": municipalities[1].0, "people": 3 }, { "organizationId": municipalities[2].0, "people": 1 }] })).await;

    let phase = "mutation($input: ProcurementPhaseChangeInput!) { procurementPhaseChange(input: $input) { procurement { phase } userErrors { code message } } }";
    let change_phase = async |to: &str, effective_on: &str| {
        let input = json!({ "procurementId": procurement, "phase": to, "effectiveOn": effective_on });
        ok(app, &lead_po, phase, "procurementPhaseChange", input).await;
    };
    change_phase("DIALOGUE", "2017-03-01").await;
    for input in [
        json!({ "procurementId": procurement, "kind": "DIALOGUE_CONFERENCE", "title": "Dialogkonferanse", "heldOn": "2017-04-06" }),
        json!({ "procurementId": procurement, "kind": "ONE_TO_ONE_MEETING", "title": "En-til-en-møter", "heldOn": "2017-05-29",
            "questionsSentInAdvance": true }),
    ] {
        ok(app, &lead_po, activity, "dialogueActivityAdd", input).await;
    }

    let dignio = app.token(&dignio_org, &[Role::Supplier]);
    let evondos = app.token(&evondos_org, &[Role::Supplier]);
    let sketch = "mutation($input: SolutionSketchSubmitInput!) { solutionSketchSubmit(input: $input) { solutionSketch { title } userErrors { code message } } }";
    ok(app, &dignio, sketch, "solutionSketchSubmit", json!({ "procurementId": procurement, "title": "Dignio Prescriba", "summary": "Dispenser med oppfølging", "submittedOn": "2017-05-01" })).await;
    ok(app, &evondos, sketch, "solutionSketchSubmit", json!({ "procurementId": procurement, "title": "Evondos E300", "summary": "Automatisk dispenser", "submittedOn": "2017-05-02" })).await;

    let mut user_stories = Vec::new();
    for n in 1..=4 {
        let story = ok(app, &lead_po,
            "mutation($input: UserStoryAddInput!) { userStoryAdd(input: $input) { userStory { id } userErrors { code message } } }",
            "userStoryAdd",
            json!({ "procurementId": procurement, "code": format!("US{n}"), "title": format!("Brukerhistorie {n}"),
                    "narrative": "Som tjenestemottaker vil jeg få riktig dose til riktig tid", "acceptanceCriteria": ["Varsler ved glemt dose"] })).await;
        user_stories.push(story["userStory"]["id"].as_str().unwrap().to_string());
    }
    let criterion = "mutation($input: EvaluationCriterionAddInput!) { evaluationCriterionAdd(input: $input) { evaluationCriterion { id } userErrors { code message } } }";
    for (name, weight) in [("Kvalitet", 60), ("Pris", 40)] {
        let input = json!({ "procurementId": procurement, "name": name, "weight": weight });
        ok(app, &lead_po, criterion, "evaluationCriterionAdd", input).await;
    }

    change_phase("COMPETITION", "2018-01-15").await;
    let deadline = chrono::Utc::now() + chrono::Duration::seconds(deadline_secs as i64);
    ok(app, &lead_po,
        "mutation($input: ProcurementNoticePublishInput!) { procurementNoticePublish(input: $input) { procurement { notice { reference } } userErrors { code message } } }",
        "procurementNoticePublish",
        json!({ "procurementId": procurement, "reference": "2018-300123", "publishedOn": "2018-01-15", "tenderDeadline": deadline.to_rfc3339() })).await;

    Story {
        procurement,
        participant_po: municipalities[1..29].iter().map(|(_, n)| app.token(n, &[Role::ProcurementOfficer])).collect(),
        follower_po: app.token(&municipalities[29].1, &[Role::ProcurementOfficer]),
        lead_po,
        dignio,
        evondos,
        user_stories,
        deadline_secs,
    }
}

pub const TENDER: &str = "mutation($input: TenderSubmitInput!) { tenderSubmit(input: $input) { tender { id responses { id userStory { code } } } userErrors { field code message } } }";

/// Both suppliers tender on all four user stories.
pub async fn submit_tenders(app: &TestApp, story: &Story) -> (String, String) {
    let responses = |price: &str| -> Value {
        Value::Array(story.user_stories.iter().map(|s| json!({ "userStoryId": s, "solution": "Dispenser",
            "purchasePrice": { "amount": price, "currencyCode": "NOK" }, "leasePricePerMonth": { "amount": "650.00", "currencyCode": "NOK" } })).collect())
    };
    let mut tenders = Vec::new();
    for (supplier, price) in [(&story.dignio, "9800.00"), (&story.evondos, "12500.50")] {
        let input = json!({ "procurementId": story.procurement, "responses": responses(price) });
        let tender = ok(app, supplier, TENDER, "tenderSubmit", input).await;
        tenders.push(tender["tender"]["id"].as_str().unwrap().to_string());
    }
    let [dignio, evondos] = tenders.try_into().unwrap();
    (dignio, evondos)
}

pub async fn wait_for_deadline(story: &Story) {
    tokio::time::sleep(Duration::from_secs(story.deadline_secs) + Duration::from_millis(300)).await;
}

const TENDERS_OF: &str = "query($id: ID!) { node(id: $id) { ... on Procurement { tenders { totalCount nodes { id supplier { name } } } } } }";

/// Scores so that Dignio wins US1–US2 and Evondos US3–US4, awards rank 1 of each, moves to
/// implementation and makes the four framework agreements. Returns the agreement ids.
pub async fn evaluate_award_and_contract(app: &TestApp, story: &Story) -> Vec<String> {
    let data = app
        .graphql(
            Some(&story.lead_po),
            "query($id: ID!) { node(id: $id) { ... on Procurement {
        evaluationCriteria { nodes { id name } }
        tenders { nodes { supplier { name } responses { id userStory { code } } } } } } }",
            json!({ "id": story.procurement }),
        )
        .await;
    let criteria: Vec<String> = crate::support::strings(&data["node"]["evaluationCriteria"]["nodes"], "/id");
    let score = "mutation($input: TenderResponseScoreInput!) { tenderResponseScore(input: $input) { tenderResponse { id } userErrors { code message } } }";
    for tender in data["node"]["tenders"]["nodes"].as_array().unwrap() {
        let dignio = tender["supplier"]["name"] == "Dignio AS";
        for response in tender["responses"].as_array().unwrap() {
            let early = matches!(response["userStory"]["code"].as_str().unwrap(), "US1" | "US2");
            let (quality, price) = if dignio == early { (9.0, 8.5) } else { (7.0, 6.0) };
            ok(app, &story.lead_po, score, "tenderResponseScore", json!({ "tenderResponseId": response["id"],
                "scores": [{ "criterionId": criteria[0], "score": quality }, { "criterionId": criteria[1], "score": price }] })).await;
        }
    }
    let mut agreements = Vec::new();
    for user_story in &story.user_stories {
        let data = app.graphql(Some(&story.lead_po), "query($id: ID!) { node(id: $id) { ... on UserStory { code ranking { rank weightedScore response { id tender { supplier { name } } } } } } }",
            json!({ "id": user_story })).await;
        let ranking = data["node"]["ranking"].as_array().unwrap();
        assert_eq!(ranking.len(), 2);
        assert_eq!(ranking[0]["rank"], 1);
        assert_eq!(ranking[0]["weightedScore"], 8.8);
        assert_eq!(ranking[1]["weightedScore"], 6.6);
        let winner = &ranking[0]["response"];
        let expected =
            if matches!(data["node"]["code"].as_str().unwrap(), "US1" | "US2") { "Dignio AS" } else { "Evondos Oy" };
        assert_eq!(winner["tender"]["supplier"]["name"], expected);
        let award = ok(app, &story.lead_po, "mutation($input: AwardCreateInput!) { awardCreate(input: $input) { award { id } userErrors { code message } } }",
            "awardCreate", json!({ "tenderResponseId": winner["id"], "awardedOn": "2018-06-01" })).await;
        let agreement = ok(app, &story.lead_po,
            "mutation($input: FrameworkAgreementCreateInput!) { frameworkAgreementCreate(input: $input) { frameworkAgreement { id } userErrors { code message } } }",
            "frameworkAgreementCreate",
            json!({ "awardId": award["award"]["id"], "startsOn": "2018-06-01", "endsOn": "2099-05-31", "volumeCap": 500 })).await;
        agreements.push(agreement["frameworkAgreement"]["id"].as_str().unwrap().to_string());
    }
    ok(app, &story.lead_po, "mutation($input: ProcurementPhaseChangeInput!) { procurementPhaseChange(input: $input) { procurement { phase } userErrors { code message } } }",
        "procurementPhaseChange", json!({ "procurementId": story.procurement, "phase": "IMPLEMENTATION", "effectiveOn": "2019-03-07" })).await;
    agreements
}

pub const CALL_OFF: &str = "mutation($input: CallOffCreateInput!) { callOffCreate(input: $input) { callOff { id quantity status } userErrors { field code message } } }";

on_both_backends! {
    /// The Larvik story, from needs to call-offs, each step by the role that does it.
    async fn the_larvik_story_runs_from_needs_to_call_offs(app) {
        let story = larvik_to_competition(&app, 3).await;
        let (dignio_tender, _) = submit_tenders(&app, &story).await;

        // Sealed: before the deadline the lead sees no tenders; each supplier only its own.
        let data = app.graphql(Some(&story.lead_po), TENDERS_OF, json!({ "id": story.procurement })).await;
        assert_eq!(data["node"]["tenders"]["totalCount"], 0);
        let data = app.graphql(Some(&story.dignio), TENDERS_OF, json!({ "id": story.procurement })).await;
        assert_eq!(data["node"]["tenders"]["nodes"], json!([{ "id": dignio_tender, "supplier": { "name": "Dignio AS" } }]));

        wait_for_deadline(&story).await;
        let data = app.graphql(Some(&story.lead_po), TENDERS_OF, json!({ "id": story.procurement })).await;
        assert_eq!(data["node"]["tenders"]["totalCount"], 2, "after the deadline the lead sees all");

        let agreements = evaluate_award_and_contract(&app, &story).await;

        // Call-offs: buy and lease, pilot zone and full rollout, by several municipalities.
        let orders = [(0, "BUY", "PILOT_ZONE", 20), (1, "LEASE", "FULL_ROLLOUT", 150), (2, "LEASE", "PILOT_ZONE", 10), (2, "BUY", "FULL_ROLLOUT", 40)];
        for (who, acquisition, scope, quantity) in orders {
            let token = if who == 0 { &story.lead_po } else { &story.participant_po[who - 1] };
            ok(&app, token, CALL_OFF, "callOffCreate", json!({ "agreementId": agreements[0], "acquisition": acquisition, "scope": scope, "quantity": quantity })).await;
        }

        let data = app.graphql(Some(&story.lead_po), "query($id: ID!) { node(id: $id) { ... on Procurement {
            phase
            totals { municipalities counties inhabitants municipalitiesWithUnknownPopulation followers }
            participants { totalCount }
            followers: participants(role: FOLLOWER) { totalCount }
            phaseHistory { nodes { from to effectiveOn changedBy } }
            dialogueActivities { nodes { kind heldOn questionsSentInAdvance attendees { nodes { people } } } }
            solutionSketches { totalCount }
            awards { nodes { userStory { code } supplier { name } } }
            frameworkAgreements { nodes { volumeCap remainingVolume purchasePrice { amount currencyCode }
              totalsByMunicipality { municipality { name } quantity callOffs } } } } } }", json!({ "id": story.procurement })).await;
        let p = &data["node"];
        assert_eq!(p["phase"], "IMPLEMENTATION");
        // 29 buying municipalities (lead + 28 participants) in 7 counties; one population unknown.
        let known: u64 = (1..=29u64).filter(|i| *i != 6).map(|i| 1000 * i).sum();
        assert_eq!(p["totals"], json!({ "municipalities": 29, "counties": 7, "inhabitants": known, "municipalitiesWithUnknownPopulation": 1, "followers": 2 }));
        assert_eq!(p["participants"]["totalCount"], 31);
        assert_eq!(p["followers"]["totalCount"], 2);
        let history: Vec<(&str, &str)> = p["phaseHistory"]["nodes"].as_array().unwrap().iter()
            .map(|h| (h["to"].as_str().unwrap(), h["effectiveOn"].as_str().unwrap())).collect();
        assert_eq!(history, [("NEEDS", "2016-10-01"), ("DIALOGUE", "2017-03-01"), ("COMPETITION", "2018-01-15"), ("IMPLEMENTATION", "2019-03-07")]);
        assert_eq!(p["phaseHistory"]["nodes"][1]["changedBy"], "test-user");
        assert_eq!(p["dialogueActivities"]["nodes"][2]["questionsSentInAdvance"], true);
        assert_eq!(p["solutionSketches"]["totalCount"], 2, "the lead sees every sketch");
        let mut awards: BTreeMap<String, u32> = BTreeMap::new();
        for award in p["awards"]["nodes"].as_array().unwrap() {
            *awards.entry(award["supplier"]["name"].as_str().unwrap().to_string()).or_default() += 1;
        }
        assert_eq!(awards, BTreeMap::from([("Dignio AS".to_string(), 2), ("Evondos Oy".to_string(), 2)]));
        let first = &p["frameworkAgreements"]["nodes"][0];
        assert_eq!(first["purchasePrice"], json!({ "amount": "9800.00", "currencyCode": "NOK" }));
        assert_eq!(first["remainingVolume"], 500 - 220);
        let totals: Vec<(String, i64)> = first["totalsByMunicipality"].as_array().unwrap().iter()
            .map(|t| (t["municipality"]["name"].as_str().unwrap().to_string(), t["quantity"].as_i64().unwrap())).collect();
        assert_eq!(totals, [("Larvik kommune".to_string(), 20), ("Kommune 1".to_string(), 150), ("Kommune 2".to_string(), 50)]);

        // Anonymous: the published notice and the award results, not the inside.
        let (_, body) = app.graphql_raw(None, "query($id: ID!) { node(id: $id) { ... on Procurement { title notice { reference } awards { totalCount } participants { totalCount } } } }",
            json!({ "id": story.procurement })).await;
        assert_eq!(body["data"]["node"]["notice"]["reference"], "2018-300123");
        assert_eq!(body["data"]["node"]["awards"]["totalCount"], 4);
        assert_eq!(body["data"]["node"]["participants"], Value::Null);
        assert_eq!(first_error_code(&body), "UNAUTHENTICATED");

        // A participating municipality sees only its own call-offs; the supplier sees all.
        let calls = "query($id: ID!) { node(id: $id) { ... on FrameworkAgreement { callOffs { totalCount } } } }";
        let data = app.graphql(Some(&story.participant_po[1]), calls, json!({ "id": agreements[0] })).await;
        assert_eq!(data["node"]["callOffs"]["totalCount"], 2);
        let data = app.graphql(Some(&story.dignio), calls, json!({ "id": agreements[0] })).await;
        assert_eq!(data["node"]["callOffs"]["totalCount"], 4);

        // Filters: phase, category, county, municipality, supplier.
        let dignio_id = app.graphql(None, "query($n: String!) { organization(orgNumber: $n) { id } }", json!({ "n": org_number(100) })).await["organization"]["id"].clone();
        let kommune_1 = app.graphql(None, "query($n: String!) { organization(orgNumber: $n) { id } }", json!({ "n": org_number(1) })).await["organization"]["id"].clone();
        let count = |filter: Value| {
            let app = &app;
            let token = story.lead_po.clone();
            async move {
                app.graphql(Some(&token), "query($f: ProcurementFilter) { procurements(filter: $f) { totalCount } }", json!({ "f": filter })).await["procurements"]["totalCount"].as_u64().unwrap()
            }
        };
        assert_eq!(count(json!({ "phase": "IMPLEMENTATION", "category": "MEDICATION_SUPPORT" })).await, 1);
        assert_eq!(count(json!({ "phase": "DIALOGUE" })).await, 0);
        assert_eq!(count(json!({ "category": "SAFETY_ALARM" })).await, 0);
        assert_eq!(count(json!({ "county": "Nordland" })).await, 1);
        assert_eq!(count(json!({ "county": "Finnmark" })).await, 0);
        assert_eq!(count(json!({ "municipality": kommune_1 })).await, 1);
        assert_eq!(count(json!({ "supplier": dignio_id })).await, 1);
        let (_, body) = app.graphql_raw(Some(&story.lead_po), "{ procurements(filter: { supplier: \"bm9wZQ\" }) { totalCount } }", json!({})).await;
        assert_eq!(first_error_code(&body), "BAD_USER_INPUT", "{body}");

        // The OCDS export validates against the official schema. Call-offs are for those who
        // may read them (here the lead's officer), never in the anonymous export.
        let url = app.url(&format!("/ocds/procurements/{}", story.procurement));
        let response = app.client.get(&url).bearer_auth(&story.lead_po).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let package: Value = response.json().await.unwrap();
        crate::ocds::assert_valid_release_package(&package);
        let releases = package["releases"].as_array().unwrap();
        assert_eq!(releases.len(), 1 + 4, "the framework process and one release per call-off");
        assert!(releases[1]["relatedProcesses"][0]["relationship"] == json!(["framework"]));
        let anonymous: Value = app.client.get(&url).send().await.unwrap().json().await.unwrap();
        crate::ocds::assert_valid_release_package(&anonymous);
        assert_eq!(anonymous["releases"].as_array().unwrap().len(), 1, "no call-offs for anonymous callers");
        assert_eq!(anonymous["releases"][0], releases[0], "the framework process is the same for everyone");
    }
}

/// Runs a mutation that must be refused with `code`, and proves nothing was written.
async fn refused(app: &TestApp, token: &str, mutation: &str, field: &str, input: Value, code: &str) {
    let before = app.fingerprint().await;
    let data = app.graphql(Some(token), mutation, json!({ "input": input })).await;
    let errors = data[field]["userErrors"].as_array().unwrap();
    assert_eq!(errors.len(), 1, "{field}: {}", data[field]);
    assert_eq!(errors[0]["code"], code, "{field}: {}", data[field]);
    assert!(!errors[0]["message"].as_str().unwrap().is_empty());
    before.assert_unchanged(&app.fingerprint().await);
}

on_both_backends! {
    /// Every rule, broken: a userError with its code, and an unchanged database.
    async fn broken_rules_are_refused_and_write_nothing(app) {
        let story = larvik_to_competition(&app, 2).await;
        submit_tenders(&app, &story).await;
        let phase = "mutation($input: ProcurementPhaseChangeInput!) { procurementPhaseChange(input: $input) { procurement { phase } userErrors { code message } } }";

        // An illegal phase jump, and a hold without a reason.
        refused(&app, &story.lead_po, phase, "procurementPhaseChange", json!({ "procurementId": story.procurement, "phase": "EVALUATION" }), "ILLEGAL_PHASE_TRANSITION").await;
        refused(&app, &story.lead_po, phase, "procurementPhaseChange", json!({ "procurementId": story.procurement, "phase": "ON_HOLD" }), "REASON_REQUIRED").await;
        // A municipality editing a procurement it does not lead.
        refused(&app, &story.participant_po[0], phase, "procurementPhaseChange", json!({ "procurementId": story.procurement, "phase": "IMPLEMENTATION" }), "NOT_LEAD").await;
        refused(&app, &story.participant_po[0], "mutation($input: UserStoryAddInput!) { userStoryAdd(input: $input) { userStory { id } userErrors { code message } } }",
            "userStoryAdd", json!({ "procurementId": story.procurement, "code": "US9", "title": "x", "narrative": "x" }), "NOT_LEAD").await;
        // A second tender from the same supplier.
        refused(&app, &story.dignio, TENDER, "tenderSubmit", json!({ "procurementId": story.procurement, "responses": [{ "userStoryId": story.user_stories[0], "solution": "x",
            "purchasePrice": { "amount": "1", "currencyCode": "NOK" } }] }), "TENDER_EXISTS").await;

        wait_for_deadline(&story).await;
        // A tender after the deadline.
        let late_supplier = org_number(102);
        app.create_organization(json!({ "kind": "SUPPLIER", "name": "Late AS", "orgNumber": late_supplier })).await;
        let late = app.token(&late_supplier, &[Role::Supplier]);
        refused(&app, &late, TENDER, "tenderSubmit", json!({ "procurementId": story.procurement, "responses": [{ "userStoryId": story.user_stories[0], "solution": "x",
            "purchasePrice": { "amount": "1", "currencyCode": "NOK" } }] }), "DEADLINE_PASSED").await;

        let agreements = evaluate_award_and_contract(&app, &story).await;
        // A follower calling off.
        refused(&app, &story.follower_po, CALL_OFF, "callOffCreate", json!({ "agreementId": agreements[0], "acquisition": "BUY", "scope": "PILOT_ZONE", "quantity": 1 }), "FOLLOWER_CANNOT_CALL_OFF").await;
        // Over the volume cap (500), and outside the agreement period.
        ok(&app, &story.participant_po[0], CALL_OFF, "callOffCreate", json!({ "agreementId": agreements[0], "acquisition": "BUY", "scope": "FULL_ROLLOUT", "quantity": 480 })).await;
        refused(&app, &story.participant_po[1], CALL_OFF, "callOffCreate", json!({ "agreementId": agreements[0], "acquisition": "LEASE", "scope": "PILOT_ZONE", "quantity": 21 }), "OVER_VOLUME_CAP").await;
        refused(&app, &story.participant_po[1], CALL_OFF, "callOffCreate", json!({ "agreementId": agreements[0], "acquisition": "BUY", "scope": "PILOT_ZONE", "quantity": 1, "placedOn": "2018-05-31" }), "OUTSIDE_AGREEMENT_PERIOD").await;
        refused(&app, &story.participant_po[1], CALL_OFF, "callOffCreate", json!({ "agreementId": agreements[0], "acquisition": "BUY", "scope": "PILOT_ZONE", "quantity": 0 }), "INVALID_QUANTITY").await;
        // A supplier cannot call off, even with a procurement officer's role in its token: the
        // role does not count for a supplier.
        let supplier_po = app.token(&org_number(100), &[Role::ProcurementOfficer]);
        let before = app.fingerprint().await;
        let (_, body) = app.graphql_raw(Some(&supplier_po), CALL_OFF, json!({ "input": { "agreementId": agreements[0], "acquisition": "BUY", "scope": "PILOT_ZONE", "quantity": 1 } })).await;
        assert_eq!(first_error_code(&body), "FORBIDDEN", "{body}");
        assert_eq!(body["errors"][0]["message"], "role `procurement_officer` does not apply to a supplier", "{body}");
        before.assert_unchanged(&app.fingerprint().await);
        // The exact remainder still fits.
        ok(&app, &story.participant_po[1], CALL_OFF, "callOffCreate", json!({ "agreementId": agreements[0], "acquisition": "LEASE", "scope": "PILOT_ZONE", "quantity": 20 })).await;
    }
}

/// What a supplier gets when asking for a tender: through the connection, `node` and `nodes`.
async fn supplier_view_of(app: &TestApp, token: &str, procurement: &str, tender: &str) -> Value {
    let data = app
        .graphql(
            Some(token),
            "query($p: ID!, $t: ID!, $missing: ID!) {
        p: node(id: $p) { ... on Procurement { tenders { totalCount nodes { id } } } }
        t: node(id: $t) { id }
        missing: node(id: $missing) { id }
        many: nodes(ids: [$t, $missing]) { id } }",
            json!({ "p": procurement, "t": tender, "missing": "VGVuZGVyOjk5OTk5" }),
        )
        .await; // "Tender:99999"
    assert_eq!(data["t"], data["missing"], "a competitor's tender answers like one that does not exist");
    data
}

on_both_backends! {
    /// A supplier never sees a competitor's tender — before or after the deadline, through the
    /// connection, `node` or `nodes` — and the answer is the same as for an id that does not exist.
    async fn a_competitors_tender_stays_sealed(app) {
        let story = larvik_to_competition(&app, 2).await;
        let (dignio_tender, evondos_tender) = submit_tenders(&app, &story).await;
        for pass in ["before", "after"] {
            let data = supplier_view_of(&app, &story.evondos, &story.procurement, &dignio_tender).await;
            assert_eq!(data["p"]["tenders"]["nodes"], json!([{ "id": evondos_tender }]), "{pass} the deadline");
            assert_eq!(data["t"], Value::Null, "{pass}");
            assert_eq!(data["many"], json!([null, null]), "{pass}");
            // Its own tender is there through every path.
            let own = app.graphql(Some(&story.evondos), "query($t: ID!) { node(id: $t) { id } nodes(ids: [$t]) { id } }", json!({ "t": evondos_tender })).await;
            assert_eq!(own["node"]["id"], evondos_tender.as_str());
            if pass == "before" { wait_for_deadline(&story).await; }
        }
        // Anonymous and other municipalities never see tenders either.
        let data = app.graphql(Some(&story.participant_po[0]), "query($t: ID!) { node(id: $t) { id } }", json!({ "t": dignio_tender })).await;
        assert_eq!(data["node"], Value::Null);
        let data = app.graphql(None, "query($t: ID!) { node(id: $t) { id } }", json!({ "t": dignio_tender })).await;
        assert_eq!(data["node"], Value::Null);
    }
}

const OVERVIEW: &str = "{ procurements(first: 100) { totalCount nodes { title phase lead { name }
    participants(first: 3) { nodes { role organization { name county } } }
    userStories(first: 2) { nodes { code award { supplier { name } } } } } } }";

async fn find_org(db: &sea_orm::DatabaseConnection, name: &str) -> i64 {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use velferd::organizations::model::{Column, Entity};
    Entity::find().filter(Column::Name.eq(name)).one(db).await.unwrap().unwrap().id
}

/// Inserts `n` published procurements, each with a lead, two participants, two user stories
/// and an award on the first, straight into the database.
async fn seed_procurements(app: &TestApp, n: usize) {
    use sea_orm::{ActiveModelTrait, Set};
    use velferd::procurement::model::*;
    let db = app.db().write();
    let lead = find_org(db, "Larvik kommune").await;
    let participants = [find_org(db, "Kommune 1").await, find_org(db, "Kommune 2").await];
    let supplier = find_org(db, "Dignio AS").await;
    let now = chrono::Utc::now().fixed_offset();
    let day = chrono::NaiveDate::from_ymd_opt(2018, 1, 15).unwrap();
    for i in 0..n {
        let p = procurement::ActiveModel {
            title: Set(format!("Procurement {i}")),
            category: Set(Category::SafetyAlarm),
            lead_id: Set(lead),
            phase: Set(velferd::procurement::phase::Phase::Competition),
            notice_reference: Set(Some(format!("REF-{i}"))),
            notice_published_on: Set(Some(day)),
            tender_deadline: Set(Some(now)),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        for (org, role) in [
            (lead, ParticipantRole::Lead),
            (participants[0], ParticipantRole::Participant),
            (participants[1], ParticipantRole::Participant),
        ] {
            participant::ActiveModel {
                procurement_id: Set(p.id),
                organization_id: Set(org),
                role: Set(role),
                joined_on: Set(day),
                ..Default::default()
            }
            .insert(db)
            .await
            .unwrap();
        }
        let mut first_story = None;
        for code in ["US1", "US2"] {
            let s = user_story::ActiveModel {
                procurement_id: Set(p.id),
                code: Set(code.into()),
                title: Set(code.into()),
                narrative: Set("n".into()),
                acceptance_criteria: Set("[]".into()),
                ..Default::default()
            }
            .insert(db)
            .await
            .unwrap();
            first_story.get_or_insert(s.id);
        }
        let t = tender::ActiveModel {
            procurement_id: Set(p.id),
            supplier_id: Set(supplier),
            submitted_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        let r = tender_response::ActiveModel {
            tender_id: Set(t.id),
            user_story_id: Set(first_story.unwrap()),
            solution: Set("s".into()),
            purchase_price_ore: Set(Some(100)),
            lease_price_ore_per_month: Set(None),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
        award::ActiveModel {
            procurement_id: Set(p.id),
            user_story_id: Set(first_story.unwrap()),
            tender_response_id: Set(r.id),
            awarded_on: Set(day),
            ..Default::default()
        }
        .insert(db)
        .await
        .unwrap();
    }
}

/// The organisations `seed_procurements` needs, and the lead's procurement officer's token.
async fn overview_cast(app: &TestApp) -> String {
    for (name, org) in [("Larvik kommune", org_number(0)), ("Kommune 1", org_number(1)), ("Kommune 2", org_number(2))] {
        app.create_organization(json!({ "kind": "MUNICIPALITY", "name": name, "orgNumber": org, "municipalityNumber": "0712", "county": "Vestfold" })).await;
    }
    app.create_organization(json!({ "kind": "SUPPLIER", "name": "Dignio AS", "orgNumber": org_number(100) })).await;
    app.token(&org_number(0), &[Role::ProcurementOfficer])
}

/// How many SQL statements the overview query takes.
async fn statements_for_overview(app: &TestApp, token: &str) -> (u64, Value) {
    let before = app.db().statement_count();
    let data = app.graphql(Some(token), OVERVIEW, json!({})).await;
    (app.db().statement_count() - before, data)
}

on_both_backends! {
    /// The procurement overview (procurements → participants → organisations, user stories →
    /// awards → suppliers) takes the same number of SQL statements for 2 and for 100 rows.
    async fn the_overview_query_runs_a_constant_number_of_statements(app) {
        // DataLoaders batch by a time window (default 2 ms); a debug build can take longer than
        // that to poll a level of 100 items and split it into two statements. A wide window
        // takes timing out of the count, so this proves the structure: no per-row queries.
        let app = app.respawn_with(&[("VELFERD_GRAPHQL_BATCH_WINDOW_MS", "100")]).await;
        let token = overview_cast(&app).await;
        seed_procurements(&app, 2).await;
        let (few, data) = statements_for_overview(&app, &token).await;
        assert_eq!(data["procurements"]["nodes"].as_array().unwrap().len(), 2);
        seed_procurements(&app, 98).await;
        let (many, data) = statements_for_overview(&app, &token).await;
        let nodes = data["procurements"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 100);
        assert_eq!(nodes[99]["userStories"]["nodes"][0]["award"]["supplier"]["name"], "Dignio AS");
        assert_eq!(nodes[99]["participants"]["nodes"][2]["organization"]["county"], "Vestfold");
        assert_eq!(data["procurements"]["totalCount"], 100);
        assert_eq!(nodes[99]["lead"]["name"], "Larvik kommune");
        assert_eq!(few, many, "statements for 2 procurements: {few}, for 100: {many}");
        // The caller's grant; the page with its count; the participants with their
        // organisations (the leads' too); the user stories; their awards; the awards' suppliers
        // with their organisations.
        assert_eq!(many, 6, "{many} statements");
    }
}

on_both_backends! {
    /// `lead` is read through the participants (the lead is the one with role LEAD); a
    /// procurement whose rows lack that participant still names its lead, by its id.
    async fn the_lead_is_named_with_or_without_its_participant_row(app) {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
        use velferd::procurement::model::{ParticipantRole, participant};
        let token = overview_cast(&app).await;
        seed_procurements(&app, 2).await;
        let first = participant::Entity::find()
            .filter(participant::Column::Role.eq(ParticipantRole::Lead))
            .order_by_asc(participant::Column::Id)
            .one(app.db().write())
            .await
            .unwrap()
            .unwrap();
        participant::Entity::delete_by_id(first.id).exec(app.db().write()).await.unwrap();
        let data = app.graphql(Some(&token), OVERVIEW, json!({})).await;
        let nodes = data["procurements"]["nodes"].as_array().unwrap();
        assert_eq!(nodes.len(), 2, "{data}");
        for node in nodes {
            assert_eq!(node["lead"]["name"], "Larvik kommune", "{data}");
        }
        let mut members: Vec<usize> =
            nodes.iter().map(|n| n["participants"]["nodes"].as_array().unwrap().len()).collect();
        members.sort();
        assert_eq!(members, [2, 3], "one lost its LEAD row, the other kept it: {data}");
    }
}

on_both_backends! {
    /// A DataLoader's batch window is a timer of the request's own runtime. async-graphql
    /// falls back to async-io's timer thread without its `tokio-timer` feature, and every
    /// window of every request then wakes across threads (a tenth of the overview's CPU).
    async fn loaders_wait_out_their_batch_window_without_a_timer_thread(app) {
        let token = overview_cast(&app).await;
        seed_procurements(&app, 3).await;
        let data = app.graphql(Some(&token), OVERVIEW, json!({})).await;
        assert_eq!(data["procurements"]["nodes"].as_array().unwrap().len(), 3, "{data}");
        let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .map(|name| name.trim().to_string())
            .collect();
        assert!(!threads.iter().any(|name| name == "async-io"), "threads: {threads:?}");
    }
}

/// A municipality with a procurement officer's token, and a procurement it leads.
async fn one_procurement(app: &TestApp, title: &str) -> (String, String) {
    let number = org_number(0);
    app.create_organization(json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": number,
        "municipalityNumber": "0712", "county": "Vestfold" }))
        .await;
    let po = app.token(&number, &[Role::ProcurementOfficer]);
    let created = ok(app, &po,
        "mutation($input: ProcurementCreateInput!) { procurementCreate(input: $input) { procurement { id } userErrors { code message } } }",
        "procurementCreate", json!({ "title": title, "category": "MEDICATION_SUPPORT" })).await;
    (po, created["procurement"]["id"].as_str().unwrap().to_string())
}

on_both_backends! {
    /// A blank title is refused on the title field, with a message that says what a title must be.
    async fn a_blank_title_is_refused_with_a_message_that_says_why(app) {
        let number = org_number(0);
        app.create_organization(json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": number,
            "municipalityNumber": "0712", "county": "Vestfold" })).await;
        let po = app.token(&number, &[Role::ProcurementOfficer]);
        let before = app.fingerprint().await;
        let data = app.graphql(Some(&po),
            "mutation($input: ProcurementCreateInput!) { procurementCreate(input: $input) { procurement { id } userErrors { field code message } } }",
            json!({ "input": { "title": "   ", "category": "MEDICATION_SUPPORT" } })).await;
        assert_eq!(data["procurementCreate"]["procurement"], Value::Null);
        assert_eq!(data["procurementCreate"]["userErrors"], json!([{
            "field": ["input", "title"], "code": "INVALID_TEXT", "message": "title must be 1 to 300 characters" }]));
        before.assert_unchanged(&app.fingerprint().await);
    }
}

on_both_backends! {
    /// `Need.journeyStep` names the step (not a row id), and a position the journey does not
    /// have is refused on `journeyStepPosition`, writing nothing.
    async fn a_need_names_its_journey_step_and_a_missing_position_is_refused_on_that_field(app) {
        let (po, procurement) = one_procurement(&app, "Medisineringsstøtte").await;
        let step = "mutation($input: JourneyStepAddInput!) { journeyStepAdd(input: $input) { journeyStep { position } userErrors { code message } } }";
        for title in ["Legemiddel forskrives", "Dispenser varsler"] {
            ok(&app, &po, step, "journeyStepAdd", json!({ "procurementId": procurement, "title": title })).await;
        }
        let need = "mutation($input: NeedAddInput!) { needAdd(input: $input) {
            need { description journeyStep { position title } journeyStepId } userErrors { field code message } } }";
        let added = ok(&app, &po, need, "needAdd",
            json!({ "procurementId": procurement, "description": "Varsel ved glemt dose", "journeyStepPosition": 2 })).await;
        assert_eq!(added["need"]["journeyStep"], json!({ "position": 2, "title": "Dispenser varsler" }));
        // Deprecated, with its old meaning unchanged: still the step's row id.
        assert!(added["need"]["journeyStepId"].is_i64(), "{added}");
        let unplaced = ok(&app, &po, need, "needAdd", json!({ "procurementId": procurement, "description": "Opplæring" })).await;
        assert_eq!(unplaced["need"]["journeyStep"], Value::Null);

        let before = app.fingerprint().await;
        let data = app.graphql(Some(&po), need,
            json!({ "input": { "procurementId": procurement, "description": "Feil steg", "journeyStepPosition": 9 } })).await;
        let payload = &data["needAdd"];
        assert_eq!(payload["need"], Value::Null);
        let errors = payload["userErrors"].as_array().unwrap();
        assert_eq!(errors.len(), 1, "{payload}");
        assert_eq!(errors[0]["field"], json!(["input", "journeyStepPosition"]));
        assert_eq!(errors[0]["code"], "NOT_FOUND");
        before.assert_unchanged(&app.fingerprint().await);

        let schema = app.graphql(None, r#"{ __type(name: "Need") { fields(includeDeprecated: true) { name isDeprecated deprecationReason } } }"#, json!({})).await;
        let fields = schema["__type"]["fields"].as_array().unwrap();
        let old = fields.iter().find(|f| f["name"] == "journeyStepId").expect("journeyStepId still there");
        assert_eq!(old["isDeprecated"], true);
        assert_eq!(old["deprecationReason"], "use journeyStep");
    }
}

on_both_backends! {
    /// A list of more than 100 entries in a procurement mutation is refused on that list, before
    /// any rule runs, writing nothing.
    async fn lists_over_a_hundred_entries_are_refused_on_that_field_and_write_nothing(app) {
        let (po, procurement) = one_procurement(&app, "Medisineringsstøtte").await;
        let supplier = org_number(100);
        app.create_organization(json!({ "kind": "SUPPLIER", "name": "Dignio AS", "orgNumber": supplier })).await;
        let supplier = app.token(&supplier, &[Role::Supplier]);
        let larvik = app.graphql(Some(&po), "{ viewer { organization { id } } }", json!({})).await["viewer"]["organization"]["id"].clone();
        let story = velferd::graphql::relay::global_id(velferd::graphql::relay::NodeType::UserStory, 1).to_string();
        let criterion = velferd::graphql::relay::global_id(velferd::graphql::relay::NodeType::EvaluationCriterion, 1).to_string();
        let response = velferd::graphql::relay::global_id(velferd::graphql::relay::NodeType::TenderResponse, 1).to_string();
        let many = |entry: Value| Value::Array(vec![entry; 101]);
        let cases = [
            (&po, "mutation($input: DialogueActivityAddInput!) { dialogueActivityAdd(input: $input) { dialogueActivity { kind } userErrors { field code message } } }",
                "dialogueActivityAdd", "attendees",
                json!({ "procurementId": procurement, "kind": "WORKSHOP", "title": "Verksted", "heldOn": "2017-02-07",
                    "attendees": many(json!({ "organizationId": larvik })) })),
            (&po, "mutation($input: UserStoryAddInput!) { userStoryAdd(input: $input) { userStory { id } userErrors { field code message } } }",
                "userStoryAdd", "acceptanceCriteria",
                json!({ "procurementId": procurement, "code": "US1", "title": "x", "narrative": "x", "acceptanceCriteria": many(json!("Varsler")) })),
            (&supplier, TENDER, "tenderSubmit", "responses",
                json!({ "procurementId": procurement, "responses": many(json!({ "userStoryId": story, "solution": "x",
                    "purchasePrice": { "amount": "1", "currencyCode": "NOK" } })) })),
            (&po, "mutation($input: TenderResponseScoreInput!) { tenderResponseScore(input: $input) { tenderResponse { id } userErrors { field code message } } }",
                "tenderResponseScore", "scores",
                json!({ "tenderResponseId": response, "scores": many(json!({ "criterionId": criterion, "score": 5.0 })) })),
        ];
        for (token, mutation, name, list, input) in cases {
            let before = app.fingerprint().await;
            let data = app.graphql(Some(token), mutation, json!({ "input": input })).await;
            let errors = data[name]["userErrors"].as_array().unwrap();
            assert_eq!(errors.len(), 1, "{name}: {}", data[name]);
            assert_eq!(errors[0]["code"], "TOO_MANY_ENTRIES", "{name}: {}", data[name]);
            assert_eq!(errors[0]["field"], json!(["input", list]), "{name}: {}", data[name]);
            before.assert_unchanged(&app.fingerprint().await);
        }
    }
}

on_both_backends! {
    /// Free text that was once stored unbounded — a hold reason, a journey step's description,
    /// an acceptance criterion — is parsed at the edge like every other text: over 4000
    /// characters it is refused on its field with `INVALID_TEXT`, writing nothing.
    async fn overlong_reasons_descriptions_and_criteria_are_refused_on_their_field(app) {
        let (po, procurement) = one_procurement(&app, "Medisineringsstøtte").await;
        let long = "x".repeat(4001);
        let cases = [
            ("mutation($input: ProcurementPhaseChangeInput!) { procurementPhaseChange(input: $input) { procurement { id } userErrors { field code message } } }",
                "procurementPhaseChange", "reason", json!({ "procurementId": procurement, "phase": "ON_HOLD", "reason": long })),
            ("mutation($input: JourneyStepAddInput!) { journeyStepAdd(input: $input) { journeyStep { position } userErrors { field code message } } }",
                "journeyStepAdd", "description", json!({ "procurementId": procurement, "title": "Forskrivning", "description": long })),
            ("mutation($input: UserStoryAddInput!) { userStoryAdd(input: $input) { userStory { id } userErrors { field code message } } }",
                "userStoryAdd", "acceptanceCriteria",
                json!({ "procurementId": procurement, "code": "US1", "title": "x", "narrative": "x", "acceptanceCriteria": ["Varsler", long] })),
        ];
        for (mutation, name, field, input) in cases {
            let before = app.fingerprint().await;
            let data = app.graphql(Some(&po), mutation, json!({ "input": input })).await;
            assert_eq!(data[name]["userErrors"], json!([{ "field": ["input", field], "code": "INVALID_TEXT",
                "message": format!("{field} must be 1 to 4000 characters") }]), "{name}");
            before.assert_unchanged(&app.fingerprint().await);
        }
    }
}

on_both_backends! {
    /// An input is parsed before any rule runs: a malformed value is reported on its field even
    /// when the caller would also break a rule (not the lead, no such award).
    async fn a_malformed_input_is_reported_before_any_rule_is_judged(app) {
        let (_, procurement) = one_procurement(&app, "Medisineringsstøtte").await;
        let outsider = org_number(100);
        app.create_organization(json!({ "kind": "MUNICIPALITY", "name": "Utenfor kommune", "orgNumber": outsider,
            "municipalityNumber": "0999", "county": "Nordland" })).await;
        let supplier_po = app.token(&outsider, &[Role::ProcurementOfficer]);
        let award = velferd::graphql::relay::global_id(velferd::graphql::relay::NodeType::Award, 999).to_string();
        let cases = [
            ("mutation($input: ProcurementCreateInput!) { procurementCreate(input: $input) { procurement { id } userErrors { field code } } }",
                "procurementCreate", json!({ "title": "  ", "category": "MEDICATION_SUPPORT" }), "title", "INVALID_TEXT"),
            ("mutation($input: JourneyStepAddInput!) { journeyStepAdd(input: $input) { journeyStep { position } userErrors { field code } } }",
                "journeyStepAdd", json!({ "procurementId": procurement, "title": "  " }), "title", "INVALID_TEXT"),
            ("mutation($input: EvaluationCriterionAddInput!) { evaluationCriterionAdd(input: $input) { evaluationCriterion { id } userErrors { field code } } }",
                "evaluationCriterionAdd", json!({ "procurementId": procurement, "name": "Pris", "weight": 0 }), "weight", "INVALID_WEIGHT"),
            ("mutation($input: FrameworkAgreementCreateInput!) { frameworkAgreementCreate(input: $input) { frameworkAgreement { id } userErrors { field code } } }",
                "frameworkAgreementCreate", json!({ "awardId": award, "startsOn": "2020-01-01", "endsOn": "2019-01-01", "volumeCap": 10 }),
                "endsOn", "INVALID_PERIOD"),
        ];
        for (mutation, name, input, field, code) in cases {
            let data = app.graphql(Some(&supplier_po), mutation, json!({ "input": input })).await;
            assert_eq!(data[name]["userErrors"], json!([{ "field": ["input", field], "code": code }]), "{name}");
        }
    }
}

on_both_backends! {
    /// The `procurements` list, `node` and `GET /ocds/procurements/{id}` apply the same read
    /// rule: for every kind of viewer, the ids the list gives are exactly those `node` resolves
    /// and OCDS answers 200 for (anonymous viewers: published notices only).
    async fn the_list_node_and_ocds_endpoint_apply_one_read_rule(app) {
        let story = larvik_to_competition(&app, 3600).await;
        let draft = ok(&app, &story.lead_po,
            "mutation($input: ProcurementCreateInput!) { procurementCreate(input: $input) { procurement { id } userErrors { code message } } }",
            "procurementCreate", json!({ "title": "Digitalt tilsyn", "category": "MEDICATION_SUPPORT" })).await;
        let draft = draft["procurement"]["id"].as_str().unwrap().to_string();
        let outsider_org = org_number(50);
        app.create_organization(json!({ "kind": "MUNICIPALITY", "name": "Utenfor kommune", "orgNumber": outsider_org,
            "municipalityNumber": "0999", "county": "Nordland" })).await;
        let outsider = app.token(&outsider_org, &[Role::ProcurementOfficer]);
        app.create_organization(json!({ "kind": "PROGRAMME", "name": "Leverandørutviklingsprogrammet", "orgNumber": org_number(60) })).await;
        let adviser = app.token(&org_number(60), &[Role::Advisor]);
        let all: std::collections::BTreeSet<String> = [story.procurement.clone(), draft.clone()].into();

        let viewers: [(&str, Option<&str>, std::collections::BTreeSet<String>); 4] = [
            ("anonymous", None, [story.procurement.clone()].into()),
            ("participant", Some(&story.participant_po[0]), all.clone()),
            ("outsider municipality", Some(&outsider), all.clone()),
            ("adviser", Some(&adviser), all.clone()),
        ];
        for (who, token, expected) in viewers {
            let data = app.graphql(token, "{ procurements(first: 100) { nodes { id } } }", json!({})).await;
            let listed: std::collections::BTreeSet<String> = crate::support::strings(&data["procurements"]["nodes"], "/id");
            let mut by_node = std::collections::BTreeSet::new();
            let mut by_ocds = std::collections::BTreeSet::new();
            for id in &all {
                let data = app.graphql(token, "query($id: ID!) { node(id: $id) { id } }", json!({ "id": id })).await;
                if !data["node"].is_null() {
                    by_node.insert(id.clone());
                }
                let mut request = app.client.get(app.url(&format!("/ocds/procurements/{id}")));
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let status = request.send().await.unwrap().status().as_u16();
                assert!(status == 200 || status == 404, "{who}: OCDS answered {status}");
                if status == 200 {
                    by_ocds.insert(id.clone());
                }
            }
            assert_eq!(listed, expected, "{who}: the list");
            assert_eq!(by_node, listed, "{who}: node against the list");
            assert_eq!(by_ocds, listed, "{who}: OCDS against the list");
        }
        // To an anonymous caller the draft is byte for byte a procurement that does not exist,
        // on `node` and on the OCDS endpoint.
        let missing = velferd::ids::global_id(velferd::ids::NodeType::Procurement, 999_999).to_string();
        let node = "query($id: ID!) { node(id: $id) { id } }";
        let (hidden_answer, missing_answer) =
            (app.graphql_bytes(None, node, json!({ "id": draft })).await, app.graphql_bytes(None, node, json!({ "id": missing })).await);
        assert_byte_identical(&hidden_answer, &missing_answer, &draft, &missing);
        let ocds = async |id: &str| {
            let response = app.client.get(app.url(&format!("/ocds/procurements/{id}"))).send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        };
        assert_byte_identical(&ocds(&draft).await, &ocds(&missing).await, &draft, &missing);
    }
}

/// Larvik's awarded procurement in the demo data, as `token` sees it: `{ id awards { nodes { id } } }`,
/// and `fields` of it (two small queries: the cost limit applies).
pub async fn larvik_awarded_procurement(app: &TestApp, token: &str, fields: &str) -> (Value, Value) {
    let data = app
        .graphql(
            Some(token),
            "{ viewer { organization { id } }
            procurements(first: 20) { nodes { id lead { id } awards(first: 1) { nodes { id } } } } }",
            json!({}),
        )
        .await;
    let larvik = &data["viewer"]["organization"]["id"];
    let procurement = data["procurements"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| &p["lead"]["id"] == larvik && !p["awards"]["nodes"].as_array().unwrap().is_empty())
        .unwrap_or_else(|| panic!("the demo has Larvik's awarded procurement: {data}"));
    let query = format!("query($id: ID!) {{ node(id: $id) {{ ... on Procurement {{ {fields} }} }} }}");
    let data = app.graphql(Some(token), &query, json!({ "id": procurement["id"] })).await;
    (procurement.clone(), data["node"].clone())
}

/// For `nodes.rs`: Larvik's awarded procurement and one of each thing in it, as Larvik's
/// procurement officer sees them.
pub async fn node_samples(app: &TestApp) -> Vec<NodeSample> {
    let token = app.token(LARVIK, &[Role::ProcurementOfficer]);
    let fields = "userStories(first: 1) { nodes { id } } evaluationCriteria(first: 1) { nodes { id } }
        tenders(first: 1) { nodes { id responses { id } } }";
    let (procurement, led) = larvik_awarded_procurement(app, &token, fields).await;
    let tender = &led["tenders"]["nodes"][0];
    vec![
        NodeSample::new("Procurement", &procurement["id"], &token),
        NodeSample::new("Award", &procurement["awards"]["nodes"][0]["id"], &token),
        NodeSample::new("UserStory", &led["userStories"]["nodes"][0]["id"], &token),
        NodeSample::new("EvaluationCriterion", &led["evaluationCriteria"]["nodes"][0]["id"], &token),
        NodeSample::new("Tender", &tender["id"], &token),
        NodeSample::new("TenderResponse", &tender["responses"][0]["id"], &token),
    ]
}
