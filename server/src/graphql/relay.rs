//! Opaque global ids for Relay's `Node` interface: `base64url("<Type>:<row id>")`. Clients must
//! treat them as opaque; the encoding lets `node(id:)` find the right table without a lookup.

use async_graphql::ID;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The node types with global ids. The name is part of every id ever handed out: never rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeType {
    Organization,
    Procurement,
    UserStory,
    EvaluationCriterion,
    Tender,
    TenderResponse,
    Award,
    FrameworkAgreement,
    CallOff,
    LearningNetwork,
    Gathering,
    ExperienceReport,
    ProcurementReuse,
    DeviceProduct,
    Adapter,
    SigningKey,
    Device,
    DeviceEvent,
    DeadLetter,
}

impl NodeType {
    const ALL: [NodeType; 19] = [
        NodeType::Organization,
        NodeType::Procurement,
        NodeType::UserStory,
        NodeType::EvaluationCriterion,
        NodeType::Tender,
        NodeType::TenderResponse,
        NodeType::Award,
        NodeType::FrameworkAgreement,
        NodeType::CallOff,
        NodeType::LearningNetwork,
        NodeType::Gathering,
        NodeType::ExperienceReport,
        NodeType::ProcurementReuse,
        NodeType::DeviceProduct,
        NodeType::Adapter,
        NodeType::SigningKey,
        NodeType::Device,
        NodeType::DeviceEvent,
        NodeType::DeadLetter,
    ];

    fn name(self) -> &'static str {
        match self {
            NodeType::Organization => "Organization",
            NodeType::Procurement => "Procurement",
            NodeType::UserStory => "UserStory",
            NodeType::EvaluationCriterion => "EvaluationCriterion",
            NodeType::Tender => "Tender",
            NodeType::TenderResponse => "TenderResponse",
            NodeType::Award => "Award",
            NodeType::FrameworkAgreement => "FrameworkAgreement",
            NodeType::CallOff => "CallOff",
            NodeType::LearningNetwork => "LearningNetwork",
            NodeType::Gathering => "Gathering",
            NodeType::ExperienceReport => "ExperienceReport",
            NodeType::ProcurementReuse => "ProcurementReuse",
            NodeType::DeviceProduct => "DeviceProduct",
            NodeType::Adapter => "Adapter",
            NodeType::SigningKey => "SigningKey",
            NodeType::Device => "Device",
            NodeType::DeviceEvent => "DeviceEvent",
            NodeType::DeadLetter => "DeadLetter",
        }
    }
}

pub fn global_id(node_type: NodeType, row_id: i64) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{row_id}", node_type.name())))
}

/// The type and row id inside a global id, or `None` for anything this API did not issue.
pub fn parse_global_id(id: &str) -> Option<(NodeType, i64)> {
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (name, row) = text.split_once(':')?;
    let node_type = NodeType::ALL.into_iter().find(|t| t.name() == name)?;
    let row_id: i64 = row.parse().ok()?;
    (row_id > 0).then_some((node_type, row_id))
}

/// The row id inside a global id of the expected type.
pub fn row_id_of(id: &str, expected: NodeType) -> Option<i64> {
    parse_global_id(id).filter(|(t, _)| *t == expected).map(|(_, row)| row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_round_trip_and_foreign_ids_are_refused() {
        let id = global_id(NodeType::Organization, 42);
        assert_eq!(parse_global_id(&id), Some((NodeType::Organization, 42)));
        assert_eq!(parse_global_id("T3JnYW5pemF0aW9uOi0x"), None); // "Organization:-1"
        assert_eq!(parse_global_id("not base64!"), None);
    }

    proptest! {
        #[test]
        fn arbitrary_ids_never_panic(s in ".{0,64}") {
            let _ = parse_global_id(&s);
        }
    }
}
