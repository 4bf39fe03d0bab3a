//! Opaque global ids: `base64url("<Type>:<row id>")`. Clients must treat them as opaque; the
//! encoding lets `node(id:)` find the right table without a lookup. Neutral, so ingest and the
//! HTTP shell can name an object the way the GraphQL API does.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Builds [`NodeType`] from the node types of the area table, `crate::areas!` (where
/// `graphql::node` builds the `Node` interface and its resolver from the same table), so a new
/// type is one entry there.
macro_rules! node_type_enum {
    ($($area:ident: nodes [$($name:ident),*], roots [$($root:ident),*];)*) => {
        /// The node types with global ids. The name is part of every id ever handed out: never
        /// rename.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum NodeType {
            $($($name,)*)*
        }

        impl NodeType {
            pub const ALL: &'static [NodeType] = &[$($(NodeType::$name,)*)*];

            pub fn name(self) -> &'static str {
                match self {
                    $($(NodeType::$name => stringify!($name),)*)*
                }
            }
        }
    };
}

crate::areas!(node_type_enum);

pub fn global_id(node_type: NodeType, row_id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}:{row_id}", node_type.name()))
}

/// The type and row id inside a global id, or `None` for anything this API did not issue.
pub fn parse_global_id(id: &str) -> Option<(NodeType, i64)> {
    let bytes = URL_SAFE_NO_PAD.decode(id).ok()?;
    let text = std::str::from_utf8(&bytes).ok()?;
    let (name, row) = text.split_once(':')?;
    let node_type = NodeType::ALL.iter().copied().find(|t| t.name() == name)?;
    let row_id: i64 = row.parse().ok()?;
    (row_id > 0).then_some((node_type, row_id))
}

/// The row id inside a global id of the expected type; `None` for garbage, an unknown type or
/// another type's id. The one parser every area uses.
pub fn row_id(id: &str, expected: NodeType) -> Option<i64> {
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

    #[test]
    fn every_node_type_round_trips_and_a_mismatched_type_is_no_row() {
        for (i, t) in NodeType::ALL.iter().copied().enumerate() {
            let id = global_id(t, i as i64 + 1);
            assert_eq!(row_id(&id, t), Some(i as i64 + 1));
            let other = NodeType::ALL[(i + 1) % NodeType::ALL.len()];
            assert_eq!(row_id(&id, other), None);
        }
    }

    proptest! {
        #[test]
        fn arbitrary_ids_never_panic(s in ".{0,64}") {
            let _ = parse_global_id(&s);
        }
    }
}
