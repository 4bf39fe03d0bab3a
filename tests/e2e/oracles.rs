//! Existence oracles: a row the caller may not see answers exactly like a missing one, on writes
//! as on reads, message text included — so ids cannot be probed for sealed tenders, other
//! municipalities' call-offs or who takes part in a procurement.

use serde_json::{Value, json};
use velferd::ids::{NodeType, global_id};

use crate::procurement::{
    CALL_OFF, evaluate_award_and_contract, larvik_to_competition, org_number, submit_tenders, wait_for_deadline,
};
use crate::support::*;

const AWARD: &str = "mutation($input: AwardCreateInput!) { awardCreate(input: $input) { award { id } userErrors { field code message } } }";
const SCORE: &str = "mutation($input: TenderResponseScoreInput!) { tenderResponseScore(input: $input) { tenderResponse { id } userErrors { field code message } } }";
const STATUS: &str = "mutation($input: CallOffStatusChangeInput!) { callOffStatusChange(input: $input) { callOff { id status } userErrors { field code message } } }";

/// The whole response body of `mutation` for `input`, once with `real` and once with `missing`
/// in `key`; the two must be byte-identical, and neither may write anything.
async fn answers_alike(app: &TestApp, token: &str, mutation: &str, input: Value, key: &str, real: &str, missing: &str) {
    let mut with_real = input.clone();
    with_real[key] = json!(real);
    let mut with_missing = input;
    with_missing[key] = json!(missing);
    let before = app.fingerprint().await;
    let real_answer = app.graphql_bytes(Some(token), mutation, json!({ "input": with_real })).await;
    let missing_answer = app.graphql_bytes(Some(token), mutation, json!({ "input": with_missing })).await;
    before.assert_unchanged(&app.fingerprint().await);
    assert_byte_identical(&real_answer, &missing_answer, real, missing);
    assert!(real_answer.1.contains("NOT_FOUND"), "{real_answer:?}");
}

/// The response ids a supplier sees of its own tender.
async fn own_response_ids(app: &TestApp, supplier: &str, procurement: &str) -> Vec<String> {
    let data = app
        .graphql(
            Some(supplier),
            "query($id: ID!) { node(id: $id) { ... on Procurement { tenders { nodes { responses { id } } } } } }",
            json!({ "id": procurement }),
        )
        .await;
    crate::support::strings(&data["node"]["tenders"]["nodes"][0]["responses"], "/id")
}

on_both_backends! {
    /// Before the deadline the lead cannot count sealed tenders by trying response ids in
    /// `awardCreate` or `tenderResponseScore`; a municipality that does not lead cannot either,
    /// before or after.
    async fn sealed_tender_responses_answer_like_missing_ones(app) {
        let story = larvik_to_competition(&app, 2).await;
        submit_tenders(&app, &story).await;
        let real = own_response_ids(&app, &story.dignio, &story.procurement).await.remove(0);
        let missing = global_id(NodeType::TenderResponse, 999_999);
        let award = json!({ "awardedOn": "2018-06-01" });
        let score = json!({ "scores": [] });

        answers_alike(&app, &story.lead_po, AWARD, award.clone(), "tenderResponseId", &real, &missing).await;
        answers_alike(&app, &story.lead_po, SCORE, score.clone(), "tenderResponseId", &real, &missing).await;
        answers_alike(&app, &story.participant_po[0], AWARD, award.clone(), "tenderResponseId", &real, &missing).await;

        wait_for_deadline(&story).await;
        answers_alike(&app, &story.participant_po[0], AWARD, award, "tenderResponseId", &real, &missing).await;
        answers_alike(&app, &story.participant_po[0], SCORE, score.clone(), "tenderResponseId", &real, &missing).await;
        // Positive control: after the deadline the lead reaches the same response.
        let data = app.graphql(Some(&story.lead_po), SCORE, json!({ "input": { "tenderResponseId": real, "scores": [] } })).await;
        assert_eq!(data["tenderResponseScore"]["userErrors"], json!([]));
        assert_eq!(data["tenderResponseScore"]["tenderResponse"]["id"], real.as_str());
    }
}

on_both_backends! {
    /// Another municipality's officer, or another supplier, learns nothing of a call-off's
    /// existence or status from `callOffStatusChange`.
    async fn foreign_call_offs_answer_like_missing_ones(app) {
        let story = larvik_to_competition(&app, 2).await;
        submit_tenders(&app, &story).await;
        wait_for_deadline(&story).await;
        let agreements = evaluate_award_and_contract(&app, &story).await;
        // US1 went to Dignio: a call-off by the second participant, placed.
        let created = app
            .graphql(
                Some(&story.participant_po[1]),
                CALL_OFF,
                json!({ "input": { "agreementId": agreements[0], "acquisition": "BUY", "scope": "PILOT_ZONE", "quantity": 3, "status": "PLACED" } }),
            )
            .await;
        assert_eq!(created["callOffCreate"]["userErrors"], json!([]), "{created}");
        let real = created["callOffCreate"]["callOff"]["id"].as_str().unwrap().to_string();
        let missing = global_id(NodeType::CallOff, 999_999);

        for status in ["PLACED", "CANCELLED"] {
            answers_alike(&app, &story.participant_po[2], STATUS, json!({ "status": status }), "callOffId", &real, &missing).await;
        }
        for status in ["CONFIRMED", "DELIVERED"] {
            answers_alike(&app, &story.evondos, STATUS, json!({ "status": status }), "callOffId", &real, &missing).await;
        }
        // Positive controls: the parties reach it.
        let data = app.graphql(Some(&story.dignio), STATUS, json!({ "input": { "callOffId": real, "status": "CONFIRMED" } })).await;
        assert_eq!(data["callOffStatusChange"]["callOff"]["status"], "CONFIRMED", "{data}");
        let data = app.graphql(Some(&story.participant_po[1]), STATUS, json!({ "input": { "callOffId": real, "status": "CANCELLED" } })).await;
        assert_eq!(data["callOffStatusChange"]["callOff"]["status"], "CANCELLED", "{data}");
    }
}

on_both_backends! {
    /// Anonymous callers cannot read who follows a procurement (`participants` is for signed-in
    /// users), so the `municipality` and `county` filters do not match on followers for them.
    async fn list_filters_do_not_reveal_followers_to_anonymous_callers(app) {
        let story = larvik_to_competition(&app, 60).await;
        let follower = app
            .create_organization(json!({ "kind": "MUNICIPALITY", "name": "Vardø kommune", "orgNumber": org_number(200),
                "municipalityNumber": "5634", "county": "Finnmark" }))
            .await;
        let added = app
            .graphql(
                Some(&story.lead_po),
                "mutation($input: ProcurementParticipantAddInput!) { procurementParticipantAdd(input: $input) { userErrors { code } } }",
                json!({ "input": { "procurementId": story.procurement, "organizationId": follower, "role": "FOLLOWER", "joinedOn": "2018-02-01" } }),
            )
            .await;
        assert_eq!(added["procurementParticipantAdd"]["userErrors"], json!([]));
        let lead = app.graphql(None, "query($id: ID!) { node(id: $id) { ... on Procurement { lead { id } } } }", json!({ "id": story.procurement })).await;
        let lead = lead["node"]["lead"]["id"].as_str().unwrap().to_string();

        let count = async |token: Option<&str>, filter: Value| -> Value {
            let data = app.graphql(token, "query($f: ProcurementFilter) { procurements(filter: $f) { totalCount } }", json!({ "f": filter })).await;
            data["procurements"]["totalCount"].clone()
        };
        let signed_in = Some(story.participant_po[0].as_str());
        for filter in [json!({ "municipality": follower }), json!({ "county": "Finnmark" })] {
            assert_eq!(count(None, filter.clone()).await, 0, "anonymous, {filter}");
            assert_eq!(count(signed_in, filter.clone()).await, 1, "signed in, {filter}");
        }
        // Buyers are named by the notice and the OCDS export: anonymous filters find them.
        assert_eq!(count(None, json!({ "municipality": lead })).await, 1);
        assert_eq!(count(None, json!({ "county": "Vestfold" })).await, 1);

        // To an anonymous caller a follower's municipality and county answer byte for byte like
        // a municipality and a county that take part in nothing.
        let bystander = app
            .create_organization(json!({ "kind": "MUNICIPALITY", "name": "Bodø kommune", "orgNumber": org_number(201),
                "municipalityNumber": "5501", "county": "Troms" }))
            .await;
        let list = "query($f: ProcurementFilter) { procurements(filter: $f) { totalCount nodes { id } } }";
        let before = app.fingerprint().await;
        for (hidden, missing, key) in [(follower.as_str(), bystander.as_str(), "municipality"), ("Finnmark", "Troms", "county")] {
            let hidden_answer = app.graphql_bytes(None, list, json!({ "f": { key: hidden } })).await;
            let missing_answer = app.graphql_bytes(None, list, json!({ "f": { key: missing } })).await;
            assert_byte_identical(&hidden_answer, &missing_answer, hidden, missing);
        }
        before.assert_unchanged(&app.fingerprint().await);
    }
}

on_both_backends! {
    /// async-graphql writes an object's fields as they finish resolving, so the same query
    /// answered `totalCount` before `nodes` one time and after it the next: the bytes of an
    /// answer showed which work took longer, and no two answers could be compared byte for byte.
    /// Fields now come in the order they were asked for, every time.
    async fn answers_list_fields_in_the_order_asked_every_time(app) {
        let query = "{ procurements(first: 5) { totalCount nodes { id } pageInfo { hasNextPage } } }";
        let first = app.graphql_bytes(None, query, json!({})).await;
        assert!(first.1.starts_with(r#"{"data":{"procurements":{"totalCount":0,"nodes":[],"pageInfo":"#), "{first:?}");
        for _ in 0..30 {
            // Byte for byte, but for the throttle balance each request draws down.
            assert_byte_identical(&app.graphql_bytes(None, query, json!({})).await, &first, "", "");
        }
    }
}
