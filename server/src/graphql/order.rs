//! Response fields in the order they were asked for. async-graphql 7.2 resolves an object's
//! fields concurrently and writes each as it completes, so the same query answered
//! `{"totalCount":0,"nodes":[]}` one time and `{"nodes":[],"totalCount":0}` the next. Besides
//! breaking the spec's "Serialized Map Ordering", that made the bytes of an answer depend on how
//! long each field took: a row the caller may not see must answer byte for byte like a missing
//! one, and the timing of hidden work must not show in the answer.
//!
//! The limits extension (`graphql::limits`) makes a [`Plan`] from the parsed document when it
//! prepares the request (the document is parsed there once anyway) and, once the operation has
//! run, puts every object's fields in the order the selection sets name them (fragments expanded
//! in place, first occurrence of each response key). Type conditions are not evaluated: a key
//! that appears in a fragment for another type before its own place would be placed there —
//! still the same order for every answer to the same document.

use std::collections::HashMap;

use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Value};

type Fragments = HashMap<Name, Positioned<FragmentDefinition>>;

/// The response keys of an object in selection order, each with the plan of its value.
pub(super) struct Plan {
    keys: Vec<(Name, Plan)>,
}

impl Plan {
    /// The plan of the operation `operation_name` of `document` (the only one, when there is
    /// one); `None` when the name selects no operation, which async-graphql refuses anyway.
    pub(super) fn of_operation(document: &ExecutableDocument, operation_name: Option<&str>) -> Option<Plan> {
        let operation = match (&document.operations, operation_name) {
            (DocumentOperations::Single(operation), _) => operation,
            (DocumentOperations::Multiple(operations), Some(name)) => operations.get(name)?,
            (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
                operations.values().next().expect("one operation")
            }
            (DocumentOperations::Multiple(_), None) => return None,
        };
        Some(Plan::of(&[&operation.node.selection_set.node], &document.fragments))
    }

    /// The plan of the objects that `sets` (the merged selection sets of one response key)
    /// select on.
    fn of(sets: &[&SelectionSet], fragments: &Fragments) -> Plan {
        let mut keys: Vec<(Name, Vec<&SelectionSet>)> = Vec::new();
        for set in sets {
            collect(set, fragments, &mut keys, 0);
        }
        Plan { keys: keys.into_iter().map(|(key, sets)| (key, Plan::of(&sets, fragments))).collect() }
    }

    /// Puts the fields of `value` (and of the objects within) in selection order. Fields that
    /// finished in order, the usual case, are left as they are; others are sorted in place.
    pub(super) fn apply(&self, value: &mut Value) {
        match value {
            Value::List(items) => items.iter_mut().for_each(|item| self.apply(item)),
            Value::Object(fields) if !self.keys.is_empty() => {
                // Nothing else is expected; whatever is, keeps its place after the rest.
                let rank = |key: &Name| self.keys.iter().position(|(k, _)| k == key).unwrap_or(usize::MAX);
                if !fields.keys().is_sorted_by_key(rank) {
                    fields.sort_by(|a, _, b, _| rank(a).cmp(&rank(b)));
                }
                for (key, field) in fields.iter_mut() {
                    if let Some((_, plan)) = self.keys.iter().find(|(k, _)| k == key) {
                        plan.apply(field);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Fragments nest at most this deep here; validation refuses cycles, and the document guard
/// bounds the expanded size, so this only stops a document that slipped past both.
const MAX_FRAGMENT_NESTING: usize = 64;

/// Adds the response keys of `set` (fragments expanded in place) to `keys`, in order of first
/// appearance, with the sub-selections each key merges.
fn collect<'d>(
    set: &'d SelectionSet,
    fragments: &'d Fragments,
    keys: &mut Vec<(Name, Vec<&'d SelectionSet>)>,
    nesting: usize,
) {
    for selection in &set.items {
        match &selection.node {
            Selection::Field(field) => {
                let field = &field.node;
                let key = field.alias.as_ref().unwrap_or(&field.name).node.clone();
                let sub = &field.selection_set.node;
                match keys.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, sets)) => sets.push(sub),
                    None => keys.push((key, vec![sub])),
                }
            }
            Selection::FragmentSpread(spread) if nesting < MAX_FRAGMENT_NESTING => {
                if let Some(fragment) = fragments.get(&spread.node.fragment_name.node) {
                    collect(&fragment.node.selection_set.node, fragments, keys, nesting + 1);
                }
            }
            Selection::InlineFragment(inline) if nesting < MAX_FRAGMENT_NESTING => {
                collect(&inline.node.selection_set.node, fragments, keys, nesting + 1);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(query: &str, data: serde_json::Value) -> String {
        let document = async_graphql::parser::parse_query(query).unwrap();
        let mut data = Value::from_json(data).unwrap();
        Plan::of_operation(&document, None).unwrap().apply(&mut data);
        serde_json::to_string(&data).unwrap()
    }

    #[test]
    fn fields_follow_the_selection_through_aliases_fragments_and_lists() {
        let query = "{ p: procurements { totalCount nodes { id ...F } } } fragment F on Procurement { title ... on Procurement { id phase } }";
        let data = serde_json::json!({ "p": { "nodes": [
            { "phase": "X", "title": "T", "id": "1" },
            { "title": "U", "phase": "Y", "id": "2" },
        ], "totalCount": 2 } });
        assert_eq!(
            ordered(query, data),
            r#"{"p":{"totalCount":2,"nodes":[{"id":"1","title":"T","phase":"X"},{"id":"2","title":"U","phase":"Y"}]}}"#
        );
    }

    #[test]
    fn null_and_missing_values_are_left_as_they_are() {
        assert_eq!(ordered("{ a { b } c }", serde_json::json!({ "c": 1, "a": null })), r#"{"a":null,"c":1}"#);
        assert_eq!(ordered("{ a b }", serde_json::json!({ "b": 1 })), r#"{"b":1}"#);
    }

    #[test]
    fn keys_the_selection_does_not_name_follow_in_their_own_order() {
        let data = serde_json::json!({ "x": 1, "b": 2, "y": 3, "a": 4 });
        assert_eq!(ordered("{ a b }", data), r#"{"a":4,"b":2,"x":1,"y":3}"#);
    }
}
