//! Framework agreements and call-offs. Their lifecycle is told in the Larvik story
//! (`procurement.rs`); this file holds what the area table asks of every area.

use velferd::auth::Role;

use crate::nodes::NodeSample;
use crate::procurement::larvik_awarded_procurement;
use crate::support::{LARVIK, TestApp};

/// For `nodes.rs`: a framework agreement with a call-off under Larvik's awarded procurement of
/// the demo data, as Larvik's procurement officer sees them.
pub async fn node_samples(app: &TestApp) -> Vec<NodeSample> {
    let token = app.token(LARVIK, &[Role::ProcurementOfficer]);
    let fields = "frameworkAgreements(first: 10) { nodes { id callOffs(first: 1) { nodes { id } } } }";
    let (_, procurement) = larvik_awarded_procurement(app, &token, fields).await;
    let agreement = procurement["frameworkAgreements"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| !a["callOffs"]["nodes"].as_array().unwrap().is_empty())
        .unwrap_or_else(|| panic!("the demo has a call-off: {procurement}"));
    vec![
        NodeSample::new("FrameworkAgreement", &agreement["id"], &token),
        NodeSample::new("CallOff", &agreement["callOffs"]["nodes"][0]["id"], &token),
    ]
}
