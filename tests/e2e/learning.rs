//! Learning across municipalities over HTTP: learning networks and their gatherings, experience
//! reports (members-only and public, full-text search), learning arenas and followers reusing a
//! procurement's needs mapping.

use serde_json::{Value, json};
use velferd::auth::Role;

use crate::nodes::NodeSample;
use crate::procurement::org_number;
use crate::support::*;

async fn ok(app: &TestApp, token: &str, mutation: &str, field: &str, input: Value) -> Value {
    let data = app.graphql(Some(token), mutation, json!({ "input": input })).await;
    let payload = &data[field];
    assert_eq!(payload["userErrors"], json!([]), "{field}: {payload}");
    payload.clone()
}

/// The first user error's code of a mutation that must be refused.
async fn refused(app: &TestApp, token: &str, mutation: &str, field: &str, input: Value) -> String {
    let data = app.graphql(Some(token), mutation, json!({ "input": input })).await;
    let payload = &data[field];
    assert!(payload[field_object(field)].is_null(), "{field}: {payload}");
    payload["userErrors"][0]["code"].as_str().unwrap_or("<none>").to_string()
}

fn field_object(field: &str) -> &'static str {
    match field {
        "learningNetworkCreate" => "learningNetwork",
        "learningNetworkMemberAdd" => "member",
        "gatheringAdd" | "gatheringAttendanceSet" => "gathering",
        "experienceReportPublish" => "experienceReport",
        "procurementReuse" => "procurementReuse",
        _ => "procurement",
    }
}

/// Registers a municipality (test organisation number `n`) and returns its id and number.
async fn municipality(app: &TestApp, n: u32, name: &str) -> (String, String) {
    let number = org_number(n);
    let id = app
        .create_organization(json!({ "kind": "MUNICIPALITY", "name": name, "orgNumber": number,
            "municipalityNumber": format!("{:04}", 5000 + n), "county": "Trøndelag" }))
        .await;
    (id, number)
}

async fn programme(app: &TestApp, n: u32, name: &str) -> (String, String) {
    let number = org_number(n);
    let id = app.create_organization(json!({ "kind": "PROGRAMME", "name": name, "orgNumber": number })).await;
    (id, number)
}

const NETWORK_CREATE: &str = "mutation($input: LearningNetworkCreateInput!) { learningNetworkCreate(input: $input) { learningNetwork { id name coordinator { name } } userErrors { field code message } } }";
const MEMBER_ADD: &str = "mutation($input: LearningNetworkMemberAddInput!) { learningNetworkMemberAdd(input: $input) { member { organization { name } } userErrors { field code message } } }";
const GATHERING_ADD: &str = "mutation($input: GatheringAddInput!) { gatheringAdd(input: $input) { gathering { id number host { name } totalPeople } userErrors { field code message } } }";
const ATTENDANCE_SET: &str = "mutation($input: GatheringAttendanceSetInput!) { gatheringAttendanceSet(input: $input) { gathering { totalPeople } userErrors { field code message } } }";
const REPORT_PUBLISH: &str = "mutation($input: ExperienceReportPublishInput!) { experienceReportPublish(input: $input) { experienceReport { id title public } userErrors { field code message } } }";
const REUSE: &str = "mutation($input: ProcurementReuseInput!) { procurementReuse(input: $input) { procurementReuse { id reusedBy { name } procurement { id title lead { name } } } userErrors { field code message } } }";

/// The coordinator's question, per gathering: which members came with how many people, and
/// which sent one or none.
const COORDINATOR_QUERY: &str = r#"query($id: ID!) { node(id: $id) { ... on LearningNetwork {
    name coordinator { name }
    members { totalCount }
    gatherings { nodes {
        number heldOn venue topic host { name } totalPeople
        came: memberAttendance(levels: [ONE_PERSON, SEVERAL]) { nodes { organization { name } people } }
        thin: memberAttendance(levels: [NONE, ONE_PERSON]) { totalCount nodes { organization { name } people level } }
        attendees { nodes { organization { name } people } }
    } }
} } }"#;

fn names(list: &Value) -> Vec<(String, i64)> {
    list["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["organization"]["name"].as_str().unwrap().to_string(), n["people"].as_i64().unwrap()))
        .collect()
}

on_both_backends! {
    /// The Trøndelag network: a programme adviser records members and the fourth gathering at
    /// Inderøy; the coordinator sees per gathering who came, with how many, and who sent one or
    /// none.
    async fn a_network_coordinator_sees_who_came_to_each_gathering_and_who_sent_one_or_none(app) {
        let (_, lup_org) = programme(&app, 300, "Leverandørutviklingsprogrammet").await;
        let (_, other_programme_org) = programme(&app, 301, "Nasjonalt velferdsteknologiprogram").await;
        let mut members = Vec::new();
        for (i, name) in ["Steinkjer kommune", "Snåsa kommune", "Verran kommune", "Inderøy kommune", "Vikna kommune"].iter().enumerate() {
            members.push(municipality(&app, 310 + i as u32, name).await);
        }
        let outsider = municipality(&app, 320, "Larvik kommune").await;
        let adviser = app.token(&lup_org, &[Role::Advisor]);

        // Only programme advisers manage networks.
        let officer = app.token(&members[0].1, &[Role::ProcurementOfficer]);
        let (_, body) = app.graphql_raw(Some(&officer), NETWORK_CREATE, json!({ "input": { "name": "x" } })).await;
        assert_eq!(first_error_code(&body), "FORBIDDEN", "{body}");
        // `advisor` counts for programmes only: a municipality's is refused before any rule.
        let municipal_adviser = app.token(&members[0].1, &[Role::Advisor]);
        let (_, body) = app.graphql_raw(Some(&municipal_adviser), NETWORK_CREATE, json!({ "input": { "name": "x" } })).await;
        assert_eq!(first_error_code(&body), "FORBIDDEN", "{body}");
        assert_eq!(body["errors"][0]["message"], "role `advisor` does not apply to a municipality", "{body}");

        let created = ok(&app, &adviser, NETWORK_CREATE, "learningNetworkCreate",
            json!({ "name": "Læringsnettverk for innovative anskaffelser av velferdsteknologi i Trøndelag" })).await;
        let network = created["learningNetwork"]["id"].as_str().unwrap().to_string();
        assert_eq!(created["learningNetwork"]["coordinator"]["name"], "Leverandørutviklingsprogrammet");
        for (id, _) in &members {
            ok(&app, &adviser, MEMBER_ADD, "learningNetworkMemberAdd", json!({ "networkId": network, "organizationId": id })).await;
        }
        assert_eq!(refused(&app, &adviser, MEMBER_ADD, "learningNetworkMemberAdd",
            json!({ "networkId": network, "organizationId": members[0].0 })).await, "ALREADY_MEMBER");
        let other_adviser = app.token(&other_programme_org, &[Role::Advisor]);
        assert_eq!(refused(&app, &other_adviser, MEMBER_ADD, "learningNetworkMemberAdd",
            json!({ "networkId": network, "organizationId": outsider.0 })).await, "NOT_COORDINATOR");

        let (steinkjer, snasa, inderoy, vikna) = (&members[0].0, &members[1].0, &members[3].0, &members[4].0);
        let fourth = json!({ "networkId": network, "number": 4, "heldOn": "2018-03-01", "hostId": inderoy,
            "venue": "Inderøy rådhus", "topic": "Gevinstrealisering",
            "attendance": [{ "organizationId": steinkjer, "people": 3 }, { "organizationId": snasa, "people": 1 },
                           { "organizationId": inderoy, "people": 2 }] });
        // The host must be a member, the number unique, people at least 1.
        let mut outside_host = fourth.clone();
        outside_host["hostId"] = json!(outsider.0);
        assert_eq!(refused(&app, &adviser, GATHERING_ADD, "gatheringAdd", outside_host).await, "NOT_A_MEMBER");
        let mut nobody = fourth.clone();
        nobody["attendance"] = json!([{ "organizationId": steinkjer, "people": 0 }]);
        assert_eq!(refused(&app, &adviser, GATHERING_ADD, "gatheringAdd", nobody).await, "INVALID_PEOPLE");
        let gathering = ok(&app, &adviser, GATHERING_ADD, "gatheringAdd", fourth.clone()).await;
        assert_eq!(gathering["gathering"]["totalPeople"], 6);
        assert_eq!(gathering["gathering"]["host"]["name"], "Inderøy kommune");
        assert_eq!(refused(&app, &adviser, GATHERING_ADD, "gatheringAdd", fourth).await, "DUPLICATE_GATHERING");
        let gathering_id = gathering["gathering"]["id"].as_str().unwrap().to_string();
        let set = ok(&app, &adviser, ATTENDANCE_SET, "gatheringAttendanceSet",
            json!({ "gatheringId": gathering_id, "organizationId": vikna, "people": 1 })).await;
        assert_eq!(set["gathering"]["totalPeople"], 7);

        // The coordinator's view, as any member municipality sees it too.
        let data = app.graphql(Some(&officer), COORDINATOR_QUERY, json!({ "id": network })).await;
        let n = &data["node"];
        assert_eq!(n["members"]["totalCount"], 5);
        let g = &n["gatherings"]["nodes"][0];
        assert_eq!((g["number"].as_i64(), g["venue"].as_str()), (Some(4), Some("Inderøy rådhus")));
        assert_eq!(names(&g["came"]), [("Steinkjer kommune".into(), 3), ("Snåsa kommune".into(), 1), ("Inderøy kommune".into(), 2), ("Vikna kommune".into(), 1)]);
        assert_eq!(names(&g["thin"]), [("Snåsa kommune".into(), 1), ("Verran kommune".into(), 0), ("Vikna kommune".into(), 1)]);
        assert_eq!(g["thin"]["nodes"][1]["level"], "NONE");
        assert_eq!(g["thin"]["nodes"][0]["level"], "ONE_PERSON");

        // Anonymous callers see network names, not members or gatherings.
        let data = app.graphql(None, "{ learningNetworks { totalCount nodes { name coordinator { name } } } }", json!({})).await;
        assert_eq!(data["learningNetworks"]["totalCount"], 1);
        let (_, body) = app.graphql_raw(None, COORDINATOR_QUERY, json!({ "id": network })).await;
        assert_eq!(first_error_code(&body), "UNAUTHENTICATED", "{body}");
        let data = app.graphql(None, "query($id: ID!) { node(id: $id) { id } }", json!({ "id": gathering_id })).await;
        assert!(data["node"].is_null());
    }
}

/// A procurement led by Larvik with a participant, a follower; and a municipality outside it.
struct Cast {
    procurement: String,
    lead: String,
    follower: String,
    follower_name: &'static str,
    outsider: String,
}

async fn procurement_with_follower(app: &TestApp) -> Cast {
    let (_, larvik) = municipality(app, 400, "Larvik kommune").await;
    let (follower_id, follower) = municipality(app, 401, "Sørum kommune").await;
    let (_, outsider) = municipality(app, 402, "Bergen kommune").await;
    let lead = app.token(&larvik, &[Role::ProcurementOfficer]);
    let created = ok(app, &lead,
        "mutation($input: ProcurementCreateInput!) { procurementCreate(input: $input) { procurement { id } userErrors { code message } } }",
        "procurementCreate", json!({ "title": "Elektronisk medisineringsstøtte", "category": "MEDICATION_SUPPORT", "startedOn": "2017-02-01" })).await;
    let procurement = created["procurement"]["id"].as_str().unwrap().to_string();
    ok(app, &lead,
        "mutation($input: ProcurementParticipantAddInput!) { procurementParticipantAdd(input: $input) { participant { role } userErrors { code message } } }",
        "procurementParticipantAdd", json!({ "procurementId": procurement, "organizationId": follower_id, "role": "FOLLOWER" })).await;
    Cast {
        procurement,
        lead,
        follower: app.token(&follower, &[Role::ProcurementOfficer]),
        follower_name: "Sørum kommune",
        outsider: app.token(&outsider, &[Role::ProcurementOfficer]),
    }
}

const REPORTS: &str = r#"query($search: String) { experienceReports(search: $search) { totalCount nodes { id title public phase author { name } lessons { nodes { phase text } } } } }"#;

fn titles(data: &Value) -> Vec<String> {
    crate::support::strings(&data["experienceReports"]["nodes"], "/title")
}

on_both_backends! {
    /// Larvik reports on the whole process: the public report is for everyone, the members-only
    /// one for the procurement's municipalities (its follower too) and never for a
    /// non-member; search finds a report by a word in one of its lessons.
    async fn experience_reports_are_public_or_for_members_and_found_by_a_word_in_a_lesson(app) {
        let cast = procurement_with_follower(&app).await;
        let public = ok(&app, &cast.lead, REPORT_PUBLISH, "experienceReportPublish", json!({
            "procurementId": cast.procurement, "title": "Rapport om hele prosessen", "public": true, "publishedOn": "2019-04-01",
            "summary": "Erfaringer fra behov til implementering.",
            "lessons": [{ "phase": "NEEDS", "text": "Tjenestereisen må lages sammen med brukerne." },
                        { "phase": "DIALOGUE", "text": "Send spørsmål til leverandørene før en-til-en-møtene." }] })).await;
        let members_only = ok(&app, &cast.lead, REPORT_PUBLISH, "experienceReportPublish", json!({
            "procurementId": cast.procurement, "title": "Interne erfaringer med avrop", "public": false, "phase": "IMPLEMENTATION",
            "summary": "Hva kommunene lærte av avropene.",
            "lessons": [{ "phase": "IMPLEMENTATION", "text": "Faglig vurdering før legemiddelhåndtering endres." }] })).await;
        let hidden_id = members_only["experienceReport"]["id"].as_str().unwrap().to_string();
        assert_eq!(public["experienceReport"]["public"], true);

        // Only municipalities taking part may report.
        assert_eq!(refused(&app, &cast.outsider, REPORT_PUBLISH, "experienceReportPublish", json!({
            "procurementId": cast.procurement, "title": "x", "summary": "y", "public": true })).await, "NOT_A_PARTICIPANT");

        // Anonymous and a non-member see the public report only; node() answers null.
        for token in [None, Some(cast.outsider.as_str())] {
            let data = app.graphql(token, REPORTS, json!({})).await;
            assert_eq!(titles(&data), ["Rapport om hele prosessen"]);
            let data = app.graphql(token, "query($id: ID!) { node(id: $id) { id } }", json!({ "id": hidden_id })).await;
            assert!(data["node"].is_null(), "{data}");
        }
        // The follower and the lead see both.
        for token in [&cast.follower, &cast.lead] {
            let data = app.graphql(Some(token), REPORTS, json!({})).await;
            assert_eq!(titles(&data), ["Rapport om hele prosessen", "Interne erfaringer med avrop"]);
        }
        let data = app.graphql(Some(&cast.follower), REPORTS, json!({})).await;
        let report = &data["experienceReports"]["nodes"][0];
        assert!(report["phase"].is_null());
        assert_eq!(report["lessons"]["nodes"][1], json!({ "phase": "DIALOGUE", "text": "Send spørsmål til leverandørene før en-til-en-møtene." }));

        // Full-text search: a word from a lesson, any case; every word must match.
        let data = app.graphql(Some(&cast.follower), REPORTS, json!({ "search": "LEGEMIDDELHÅNDTERING" })).await;
        assert_eq!(titles(&data), ["Interne erfaringer med avrop"]);
        let data = app.graphql(Some(&cast.follower), REPORTS, json!({ "search": "leverandørene spørsmål" })).await;
        assert_eq!(titles(&data), ["Rapport om hele prosessen"]);
        let data = app.graphql(Some(&cast.follower), REPORTS, json!({ "search": "leverandørene dispenser" })).await;
        assert_eq!(data["experienceReports"]["totalCount"], 0);
        // Search respects visibility, and operators in the query are plain words.
        let data = app.graphql(Some(&cast.outsider), REPORTS, json!({ "search": "legemiddelhåndtering" })).await;
        assert_eq!(data["experienceReports"]["totalCount"], 0);
        let data = app.graphql(None, REPORTS, json!({ "search": "tjenestereisen OR \"x\" NEAR(" })).await;
        assert_eq!(data["experienceReports"]["totalCount"], 0);
        let data = app.graphql(None, REPORTS, json!({ "search": "Tjenestereisen brukerne" })).await;
        assert_eq!(titles(&data), ["Rapport om hele prosessen"]);
    }
}

on_both_backends! {
    /// A follower starts its own procurement from the one it follows: the service journey,
    /// needs and user stories are copied with provenance, and the source shows who reused it.
    /// A municipality that does not follow it is refused and nothing is written.
    async fn a_follower_reuses_a_procurement_with_provenance_and_the_source_shows_it(app) {
        let cast = procurement_with_follower(&app).await;
        for step in ["Forskrivning", "Multidose fra apotek", "Varsel og dosering"] {
            ok(&app, &cast.lead, "mutation($input: JourneyStepAddInput!) { journeyStepAdd(input: $input) { journeyStep { position } userErrors { code message } } }",
                "journeyStepAdd", json!({ "procurementId": cast.procurement, "title": step })).await;
        }
        ok(&app, &cast.lead, "mutation($input: NeedAddInput!) { needAdd(input: $input) { need { description } userErrors { code message } } }",
            "needAdd", json!({ "procurementId": cast.procurement, "description": "Varsel når en dose ikke er tatt", "journeyStepPosition": 3 })).await;
        ok(&app, &cast.lead, "mutation($input: UserStoryAddInput!) { userStoryAdd(input: $input) { userStory { id } userErrors { code message } } }",
            "userStoryAdd", json!({ "procurementId": cast.procurement, "code": "BH1", "title": "Riktig dose til riktig tid",
                "narrative": "Som tjenestemottaker vil jeg få riktig dose", "acceptanceCriteria": ["Varsler ved glemt dose"] })).await;

        let count = "{ procurements { totalCount } }";
        let before = app.graphql(Some(&cast.lead), count, json!({})).await;
        assert_eq!(refused(&app, &cast.outsider, REUSE, "procurementReuse",
            json!({ "sourceProcurementId": cast.procurement, "title": "Vår egen" })).await, "NOT_FOLLOWING");
        assert_eq!(app.graphql(Some(&cast.lead), count, json!({})).await, before, "nothing written");

        let reused = ok(&app, &cast.follower, REUSE, "procurementReuse", json!({ "sourceProcurementId": cast.procurement,
            "title": "Medisineringsstøtte for Lillestrøm-kommunene", "startedOn": "2019-06-01" })).await;
        let copy = &reused["procurementReuse"]["procurement"];
        assert_eq!(copy["lead"]["name"], cast.follower_name);
        assert_eq!(reused["procurementReuse"]["reusedBy"]["name"], cast.follower_name);

        let data = app.graphql(Some(&cast.follower), r#"query($id: ID!) { node(id: $id) { ... on Procurement {
            phase journeySteps { nodes { position title } } needs { nodes { description } }
            userStories { nodes { code title acceptanceCriteria } } } } }"#, json!({ "id": copy["id"] })).await;
        let p = &data["node"];
        assert_eq!(p["phase"], "NEEDS");
        let steps: Vec<&str> = p["journeySteps"]["nodes"].as_array().unwrap().iter().map(|s| s["title"].as_str().unwrap()).collect();
        assert_eq!(steps, ["Forskrivning", "Multidose fra apotek", "Varsel og dosering"]);
        assert_eq!(p["needs"]["nodes"][0]["description"], "Varsel når en dose ikke er tatt");
        assert_eq!(p["userStories"]["nodes"][0], json!({ "code": "BH1", "title": "Riktig dose til riktig tid", "acceptanceCriteria": ["Varsler ved glemt dose"] }));

        // The source shows who reused it, and every copied item says where it came from.
        let data = app.graphql(Some(&cast.lead), r#"query($source: ID) { procurementReuses(source: $source) { totalCount nodes {
            reusedBy { name } reusedOn source { title } items { totalCount nodes { kind text provenance } } } } }"#,
            json!({ "source": cast.procurement })).await;
        let r = &data["procurementReuses"];
        assert_eq!(r["totalCount"], 1);
        let reuse = &r["nodes"][0];
        assert_eq!((reuse["reusedBy"]["name"].as_str(), reuse["reusedOn"].as_str()), (Some(cast.follower_name), Some("2019-06-01")));
        assert_eq!(reuse["items"]["totalCount"], 5);
        let kinds: Vec<&str> = reuse["items"]["nodes"].as_array().unwrap().iter().map(|i| i["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["JOURNEY_STEP", "JOURNEY_STEP", "JOURNEY_STEP", "NEED", "USER_STORY"]);
        for item in reuse["items"]["nodes"].as_array().unwrap() {
            assert_eq!(item["provenance"], "reused from «Elektronisk medisineringsstøtte» led by Larvik kommune");
        }
        let (_, body) = app.graphql_raw(None, "{ procurementReuses { totalCount } }", json!({})).await;
        assert_eq!(first_error_code(&body), "UNAUTHENTICATED");
    }
}

on_both_backends! {
    /// Asker and Bærum present their procurement to other municipalities in a learning arena;
    /// `learningArenas` lists it with its attendance totals.
    async fn learning_arenas_list_the_attending_municipalities_and_people(app) {
        let (_, baerum) = municipality(&app, 500, "Bærum kommune").await;
        let mut guests = Vec::new();
        for (i, name) in ["Drammen kommune", "Lier kommune", "Hole kommune"].iter().enumerate() {
            guests.push(municipality(&app, 501 + i as u32, name).await.0);
        }
        let lead = app.token(&baerum, &[Role::ProcurementOfficer]);
        let created = ok(&app, &lead,
            "mutation($input: ProcurementCreateInput!) { procurementCreate(input: $input) { procurement { id } userErrors { code message } } }",
            "procurementCreate", json!({ "title": "Trygghetsalarmer", "category": "SAFETY_ALARM" })).await;
        let procurement = created["procurement"]["id"].as_str().unwrap().to_string();
        let activity = "mutation($input: DialogueActivityAddInput!) { dialogueActivityAdd(input: $input) { dialogueActivity { kind } userErrors { code message } } }";
        ok(&app, &lead, activity, "dialogueActivityAdd", json!({ "procurementId": procurement, "kind": "WORKSHOP", "title": "Intern workshop", "heldOn": "2019-01-10" })).await;
        ok(&app, &lead, activity, "dialogueActivityAdd", json!({ "procurementId": procurement, "kind": "LEARNING_ARENA",
            "title": "Læringsarena", "heldOn": "2019-05-02",
            "attendees": [{ "organizationId": guests[0], "people": 4 }, { "organizationId": guests[1], "people": 2 }, { "organizationId": guests[2] }] })).await;

        let query = r#"query($p: ID) { learningArenas(procurement: $p) { totalCount nodes {
            title heldOn presentedBy { name } procurement { title } organizations people organizationsWithUnknownPeople
            attendees { nodes { organization { name } people } } } } }"#;
        let data = app.graphql(Some(&lead), query, json!({ "p": procurement })).await;
        let arenas = &data["learningArenas"];
        assert_eq!(arenas["totalCount"], 1);
        let arena = &arenas["nodes"][0];
        assert_eq!(arena["presentedBy"]["name"], "Bærum kommune");
        assert_eq!((arena["organizations"].as_i64(), arena["people"].as_i64(), arena["organizationsWithUnknownPeople"].as_i64()), (Some(3), Some(6), Some(1)));
        assert_eq!(arena["attendees"]["nodes"][2]["people"], Value::Null);
        let data = app.graphql(Some(&lead), query, json!({})).await;
        assert_eq!(data["learningArenas"]["totalCount"], 1);
        let (_, body) = app.graphql_raw(None, query, json!({})).await;
        assert_eq!(first_error_code(&body), "UNAUTHENTICATED");
    }
}

/// The learning demo data (`velferd::learning::demo`) is part of `serve --demo`: the Trøndelag
/// network's fourth
/// gathering at Inderøy, Larvik's report, Asker and Bærum's learning arena and the Lillestrøm
/// municipalities reusing Larvik's needs mapping. On both back ends, like `on_both_backends!`,
/// but on a server started with the demo data.
mod the_learning_demo_data_loads_on_top_of_the_demo {
    use super::*;

    async fn run(app: TestApp) {
        let larvik = app.token("918082956", &[Role::ProcurementOfficer]);
        let data = app.graphql(Some(&larvik), "{ learningNetworks { nodes { id name } } }", json!({})).await;
        let network = data["learningNetworks"]["nodes"][0]["id"].as_str().unwrap().to_string();
        let data = app.graphql(Some(&larvik), COORDINATOR_QUERY, json!({ "id": network })).await;
        let g = &data["node"]["gatherings"]["nodes"][0];
        assert_eq!((g["number"].as_i64(), g["host"]["name"].as_str()), (Some(4), Some("Inderøy kommune")));
        assert_eq!(
            names(&g["thin"]),
            [("Snåsa kommune".into(), 1), ("Verran kommune".into(), 0), ("Vikna kommune".into(), 1)]
        );
        let data = app.graphql(None, REPORTS, json!({ "search": "tjenestereise" })).await;
        assert_eq!(data["experienceReports"]["nodes"][0]["author"]["name"], "Larvik kommune");
        let data = app.graphql(Some(&larvik), "{ learningArenas { nodes { presentedBy { name } } } procurementReuses { nodes { reusedBy { name } items { totalCount } procurement { participants { totalCount } } } } }", json!({})).await;
        assert_eq!(data["learningArenas"]["nodes"][0]["presentedBy"]["name"], "Bærum kommune");
        let reuse = &data["procurementReuses"]["nodes"][0];
        assert_eq!(reuse["reusedBy"]["name"], "Sørum kommune");
        assert_eq!(reuse["items"]["totalCount"], 9, "5 journey steps and 4 user stories: {reuse}");
        assert_eq!(reuse["procurement"]["participants"]["totalCount"], 3);
    }

    fn demo() -> Options {
        Options { demo: true, ..Options::default() }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        run(TestApp::spawn_with(Backend::Sqlite, demo()).await.unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = TestApp::spawn_with(Backend::Postgres, demo()).await {
            run(app).await;
        }
    }
}

on_both_backends! {
    /// A stranger's lists are bounded at 100 before any rule runs: a gathering with 101
    /// attendance entries and a report with 101 lessons are refused and write nothing.
    async fn attendance_and_lessons_over_100_entries_are_refused_and_write_nothing(app) {
        let (_, lup_org) = programme(&app, 330, "Leverandørutviklingsprogrammet").await;
        let (host, _) = municipality(&app, 331, "Inderøy kommune").await;
        let adviser = app.token(&lup_org, &[Role::Advisor]);
        let created = ok(&app, &adviser, NETWORK_CREATE, "learningNetworkCreate", json!({ "name": "Nettverk" })).await;
        let network = created["learningNetwork"]["id"].as_str().unwrap().to_string();
        ok(&app, &adviser, MEMBER_ADD, "learningNetworkMemberAdd", json!({ "networkId": network, "organizationId": host })).await;
        let attendance: Vec<Value> = (0..101).map(|_| json!({ "organizationId": host, "people": 1 })).collect();
        let input = json!({ "networkId": network, "number": 1, "heldOn": "2018-03-01", "hostId": host,
            "topic": "Samling", "attendance": attendance });
        let data = app.graphql(Some(&adviser), GATHERING_ADD, json!({ "input": input })).await;
        let errors = &data["gatheringAdd"]["userErrors"];
        assert_eq!((&errors[0]["field"], errors[0]["code"].as_str()), (&json!(["input", "attendance"]), Some("TOO_MANY_ENTRIES")), "{data}");
        let data = app.graphql(Some(&adviser), COORDINATOR_QUERY, json!({ "id": network })).await;
        assert_eq!(data["node"]["gatherings"]["nodes"], json!([]), "{data}");

        let cast = procurement_with_follower(&app).await;
        let lessons: Vec<Value> = (0..101).map(|i| json!({ "phase": "NEEDS", "text": format!("Lærdom {i}") })).collect();
        let input = json!({ "procurementId": cast.procurement, "title": "Rapport", "summary": "Kort", "public": true, "lessons": lessons });
        let data = app.graphql(Some(&cast.lead), REPORT_PUBLISH, json!({ "input": input })).await;
        let errors = &data["experienceReportPublish"]["userErrors"];
        assert_eq!((&errors[0]["field"], errors[0]["code"].as_str()), (&json!(["input", "lessons"]), Some("TOO_MANY_ENTRIES")), "{data}");
        let data = app.graphql(Some(&cast.lead), REPORTS, json!({})).await;
        assert_eq!(data["experienceReports"]["totalCount"], 0, "{data}");
    }
}

/// For `nodes.rs`: one network, gathering, experience report and reuse of the demo data, as
/// Larvik's procurement officer sees them.
pub async fn node_samples(app: &TestApp) -> Vec<NodeSample> {
    let token = app.token(LARVIK, &[Role::ProcurementOfficer]);
    let data = app
        .graphql(
            Some(&token),
            "{ learningNetworks(first: 1) { nodes { id gatherings(first: 1) { nodes { id } } } }
            experienceReports(first: 1) { nodes { id } } procurementReuses(first: 1) { nodes { id } } }",
            json!({}),
        )
        .await;
    let [network, report, reuse] =
        ["learningNetworks", "experienceReports", "procurementReuses"].map(|list| &data[list]["nodes"][0]);
    vec![
        NodeSample::new("LearningNetwork", &network["id"], &token),
        NodeSample::new("Gathering", &network["gatherings"]["nodes"][0]["id"], &token),
        NodeSample::new("ExperienceReport", &report["id"], &token),
        NodeSample::new("ProcurementReuse", &reuse["id"], &token),
    ]
}
