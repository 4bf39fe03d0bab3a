//! Response fields in the order they were asked for. async-graphql 7.2 resolves an object's
//! fields concurrently and writes each as it completes, so the same query answered
//! `{"totalCount":0,"nodes":[]}` one time and `{"nodes":[],"totalCount":0}` the next. Besides
//! breaking the spec's "Serialized Map Ordering", that made the bytes of an answer depend on how
//! long each field took: a row the caller may not see must answer byte for byte like a missing
//! one, and the timing of hidden work must not show in the answer.
//!
//! This extension keeps the parsed document and, once an operation has run, puts every object's
//! fields in the order the selection sets name them (fragments expanded in place, first
//! occurrence of each response key). Type conditions are not evaluated: a key that appears in a
//! fragment for another type before its own place would be placed there — still the same order
//! for every answer to the same document.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextSubscribe,
};
use async_graphql::parser::Positioned;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Response, ServerResult, Value, Variables};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

/// Puts response fields in selection order (see the module comment).
pub struct SelectionOrder;

impl ExtensionFactory for SelectionOrder {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(SelectionOrderExtension { document: Arc::new(Mutex::new(None)) })
    }
}

struct SelectionOrderExtension {
    /// The request's document, once parsed.
    document: Arc<Mutex<Option<ExecutableDocument>>>,
}

#[async_graphql::async_trait::async_trait]
impl Extension for SelectionOrderExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        *self.document.lock().expect("not poisoned") = Some(document.clone());
        Ok(document)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        order(&self.document, operation_name, &mut response);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        // The stream parses the document before its first event; each event is put in order.
        let document = self.document.clone();
        next.run(ctx, stream)
            .map(move |mut response| {
                order(&document, None, &mut response);
                response
            })
            .boxed()
    }
}

/// Orders `response.data` by the operation `operation_name` of the stored document (the only
/// one, when there is one; a subscription's operation is found the same way).
fn order(document: &Mutex<Option<ExecutableDocument>>, operation_name: Option<&str>, response: &mut Response) {
    let document = document.lock().expect("not poisoned");
    let Some(document) = document.as_ref() else { return };
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => match operations.get(name) {
            Some(operation) => operation,
            None => return,
        },
        (DocumentOperations::Multiple(operations), None) if operations.len() == 1 => {
            operations.values().next().expect("one operation")
        }
        (DocumentOperations::Multiple(_), None) => return,
    };
    let plan = Plan::of(&[&operation.node.selection_set.node], &document.fragments);
    plan.apply(&mut response.data);
}

type Fragments = HashMap<Name, Positioned<FragmentDefinition>>;

/// The response keys of an object in selection order, each with the plan of its value.
struct Plan {
    keys: Vec<(Name, Plan)>,
}

impl Plan {
    /// The plan of the objects that `sets` (the merged selection sets of one response key)
    /// select on.
    fn of(sets: &[&SelectionSet], fragments: &Fragments) -> Plan {
        let mut keys: Vec<(Name, Vec<&SelectionSet>)> = Vec::new();
        for set in sets {
            collect(set, fragments, &mut keys, 0);
        }
        Plan { keys: keys.into_iter().map(|(key, sets)| (key, Plan::of(&sets, fragments))).collect() }
    }

    fn apply(&self, value: &mut Value) {
        match value {
            Value::List(items) => items.iter_mut().for_each(|item| self.apply(item)),
            Value::Object(fields) if !self.keys.is_empty() => {
                let mut rest = std::mem::take(fields);
                for (key, plan) in &self.keys {
                    if let Some(mut field) = rest.swap_remove(key) {
                        plan.apply(&mut field);
                        fields.insert(key.clone(), field);
                    }
                }
                // Nothing else is expected; whatever is, keeps its place after the rest.
                fields.extend(rest);
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
        let mut response = Response::new(Value::from_json(data).unwrap());
        order(&Mutex::new(Some(document)), None, &mut response);
        serde_json::to_string(&response.data).unwrap()
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
}
