//! Relay `node(id:)` across every node type: each type in `NodeType::ALL` round-trips, and ids
//! this API did not issue (an unknown type, garbage, a missing row) answer null.
//!
//! The objects come from the areas' own test files: every area of the area table
//! (`velferd::areas!`) has `tests/e2e/<area>.rs` with `node_samples`, one object of each of
//! its node types. So this file does not change for a new area, and the test fails until the
//! new area's samples cover its types.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use velferd::auth::Role;
use velferd::graphql::relay::{NodeType, global_id};

use crate::support::{Backend, LARVIK, Options, TestApp};

/// One object of a node type: its id and a token of a caller who may see it.
pub struct NodeSample {
    pub typename: &'static str,
    pub id: String,
    pub token: String,
}

impl NodeSample {
    pub fn new(typename: &'static str, id: &Value, token: &str) -> NodeSample {
        let id = id.as_str().unwrap_or_else(|| panic!("{typename}: not an id: {id}")).to_string();
        NodeSample { typename, id, token: token.to_string() }
    }
}

/// `all_samples`: the `node_samples` of every area's test file, in the table's order, on one
/// server started with the demo data.
macro_rules! all_samples {
    ($($area:ident: nodes [$($node:ident),*], roots [$($root:ident),*];)*) => {
        async fn all_samples(app: &TestApp) -> Vec<NodeSample> {
            let mut samples = Vec::new();
            $(samples.extend(crate::$area::node_samples(app).await);)*
            samples
        }
    };
}

velferd::areas!(all_samples);

const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id } }";

async fn every_node_type_round_trips_through_node_and_foreign_ids_answer_null(app: TestApp) {
    let mut checked = BTreeSet::new();
    for NodeSample { typename, id, token } in all_samples(&app).await {
        let data = app.graphql(Some(&token), NODE, json!({ "id": id })).await;
        assert_eq!(data["node"], json!({ "__typename": typename, "id": id }), "node({id}) as a {typename}");
        checked.insert(typename.to_string());
    }
    let all: BTreeSet<String> = NodeType::ALL.iter().map(|t| t.name().to_string()).collect();
    assert_eq!(checked, all, "every node type is fetched through node(id:): add a new one to its area's node_samples");

    // Ids this API did not issue, and a row that does not exist, answer null — alone and in
    // `nodes`, in order.
    let larvik = app.token(LARVIK, &[Role::ProcurementOfficer]);
    let unknown_type = URL_SAFE_NO_PAD.encode("Unicorn:1");
    let missing = global_id(NodeType::Procurement, 987_654_321).to_string();
    for id in [unknown_type.as_str(), "not an id!", "", missing.as_str()] {
        let data = app.graphql(Some(&larvik), NODE, json!({ "id": id })).await;
        assert_eq!(data["node"], Value::Null, "node({id:?})");
    }
    let data = app
        .graphql(
            Some(&larvik),
            "query($ids: [ID!]!) { nodes(ids: $ids) { __typename } }",
            json!({ "ids": [unknown_type, "not an id!", missing] }),
        )
        .await;
    assert_eq!(data["nodes"], json!([null, null, null]));
}

/// On both back ends, like `on_both_backends!`, but on a server started with the demo data.
mod every_node_type_round_trips_through_node_and_foreign_ids_answer_null {
    use super::*;

    fn demo() -> Options {
        Options { demo: true, ..Options::default() }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::every_node_type_round_trips_through_node_and_foreign_ids_answer_null(
            TestApp::spawn_with(Backend::Sqlite, demo()).await.unwrap(),
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(app) = TestApp::spawn_with(Backend::Postgres, demo()).await {
            super::every_node_type_round_trips_through_node_and_foreign_ids_answer_null(app).await;
        }
    }
}
