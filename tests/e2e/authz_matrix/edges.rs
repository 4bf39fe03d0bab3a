//! Every edge of the running server's schema that yields a `Node`, read from `__schema`: each
//! (parent type, field) pair whose type, unwrapped from non-null and list, is a node type or a
//! connection of one, followed through objects that are not nodes (`UserStory.ranking.response`,
//! `Procurement.participants.nodes.organization`) down to the node they yield.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::support::TestApp;

const INTROSPECTION: &str = "{ __schema { queryType { name } subscriptionType { name }
    types { kind name interfaces { name }
      fields { name args { name defaultValue type { ...T } } type { ...T } } } } }
    fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } }";

/// `first:` on a connection right under the parent, and on one nested inside another object.
const PAGE: u32 = 25;
const NESTED_PAGE: u32 = 5;

pub struct Schema {
    pub query: String,
    pub subscription: Option<String>,
    types: BTreeMap<String, TypeDef>,
}

struct TypeDef {
    kind: String,
    interfaces: Vec<String>,
    fields: Vec<Field>,
}

struct Field {
    name: String,
    /// (name, required without a default)
    args: Vec<(String, bool)>,
    /// The named type under non-null and list wrappers.
    named: String,
}

fn named(ty: &Value) -> String {
    match ty["name"].as_str() {
        Some(name) => name.to_string(),
        None => named(&ty["ofType"]),
    }
}

/// One step of a path: a field and the arguments written for it.
#[derive(Clone, Debug)]
pub struct Step {
    pub field: String,
    pub args: String,
}

/// A way from a parent object (a node type, or a root type) to objects of a node type.
#[derive(Clone, Debug)]
pub struct Edge {
    pub parent: String,
    pub target: String,
    pub steps: Vec<Step>,
}

impl Edge {
    /// `Procurement.tenders.nodes`, `Query.devices.edges.node`.
    pub fn label(&self) -> String {
        let fields: Vec<&str> = self.steps.iter().map(|s| s.field.as_str()).collect();
        format!("{}.{}", self.parent, fields.join("."))
    }

    /// The selection, under `alias`: `alias: tenders(first: 25) { nodes { id } }`.
    pub fn selection(&self, alias: &str) -> String {
        let mut inner = "id".to_string();
        for (i, step) in self.steps.iter().enumerate().rev() {
            let name = if i == 0 { format!("{alias}: {}", step.field) } else { step.field.clone() };
            inner = format!("{name}{} {{ {inner} }}", step.args);
        }
        inner
    }

    /// The ids this edge's selection answered, under `value` (the aliased field's value).
    pub fn ids(&self, value: &Value) -> Vec<String> {
        let mut level = vec![value.clone()];
        for step in &self.steps[1..] {
            level = flatten(level).into_iter().map(|v| v[&step.field].clone()).collect();
        }
        flatten(level).into_iter().filter_map(|v| v["id"].as_str().map(str::to_string)).collect()
    }
}

fn flatten(values: Vec<Value>) -> Vec<Value> {
    let mut out = Vec::new();
    for value in values {
        match value {
            Value::Array(items) => out.extend(flatten(items)),
            Value::Null => {}
            other => out.push(other),
        }
    }
    out
}

impl Schema {
    pub async fn introspect(app: &TestApp, token: &str) -> Schema {
        let data = app.graphql(Some(token), INTROSPECTION, json!({})).await;
        let schema = &data["__schema"];
        let mut types = BTreeMap::new();
        for t in schema["types"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap().to_string();
            let interfaces = t["interfaces"]
                .as_array()
                .map(|list| list.iter().map(|i| i["name"].as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            let fields = t["fields"]
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|f| Field {
                            name: f["name"].as_str().unwrap().to_string(),
                            args: f["args"]
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|a| {
                                    let required = a["type"]["kind"] == "NON_NULL" && a["defaultValue"].is_null();
                                    (a["name"].as_str().unwrap().to_string(), required)
                                })
                                .collect(),
                            named: named(&f["type"]),
                        })
                        .collect()
                })
                .unwrap_or_default();
            types.insert(name, TypeDef { kind: t["kind"].as_str().unwrap().to_string(), interfaces, fields });
        }
        Schema {
            query: schema["queryType"]["name"].as_str().unwrap().to_string(),
            subscription: schema["subscriptionType"]["name"].as_str().map(str::to_string),
            types,
        }
    }

    /// Every object type implementing `Node`.
    pub fn node_types(&self) -> Vec<String> {
        self.types
            .iter()
            .filter(|(_, t)| t.kind == "OBJECT" && t.interfaces.iter().any(|i| i == "Node"))
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn is_node(&self, name: &str) -> bool {
        self.types.get(name).is_some_and(|t| t.kind == "OBJECT" && t.interfaces.iter().any(|i| i == "Node"))
    }

    /// The node type a connection type lists, when `name` is a connection (`nodes` and `edges`).
    fn connection_of(&self, name: &str) -> Option<String> {
        let t = self.types.get(name)?;
        let nodes = t.fields.iter().find(|f| f.name == "nodes")?;
        t.fields.iter().any(|f| f.name == "edges").then(|| nodes.named.clone())
    }

    pub fn has_field(&self, ty: &str, field: &str) -> bool {
        self.types.get(ty).is_some_and(|t| t.fields.iter().any(|f| f.name == field))
    }

    /// Every edge from `parent` (a node type or a root type). `node` and `nodes` on the query
    /// root are left to the caller (they take ids, not a walk); `arguments` gives the value of a
    /// required argument (`Query.deviceProduct(slug:)`), and an edge with a required argument it
    /// does not know fails the test.
    pub fn edges_from(&self, parent: &str, arguments: &dyn Fn(&str, &str, &str) -> Option<String>) -> Vec<Edge> {
        let mut out = Vec::new();
        self.walk(parent, parent, &mut Vec::new(), &mut vec![parent.to_string()], arguments, &mut out);
        out
    }

    fn walk(
        &self,
        parent: &str,
        ty: &str,
        prefix: &mut Vec<Step>,
        on_path: &mut Vec<String>,
        arguments: &dyn Fn(&str, &str, &str) -> Option<String>,
        out: &mut Vec<Edge>,
    ) {
        let Some(def) = self.types.get(ty) else { panic!("type {ty} is not in the schema") };
        for field in &def.fields {
            if prefix.is_empty() && ty == self.query && (field.name == "node" || field.name == "nodes") {
                continue;
            }
            let Some(kind) = self.types.get(&field.named).map(|t| t.kind.as_str()) else { continue };
            if matches!(kind, "SCALAR" | "ENUM") {
                continue;
            }
            let mut args = Vec::new();
            for (name, required) in &field.args {
                if name == "first" {
                    args.push(format!("first: {}", if prefix.is_empty() { PAGE } else { NESTED_PAGE }));
                } else if *required {
                    match arguments(ty, &field.name, name) {
                        Some(value) => args.push(format!("{name}: {value}")),
                        None => panic!(
                            "{ty}.{}({name}:) is required and the matrix has no value for it: add one to ROOT_ARGUMENTS",
                            field.name
                        ),
                    }
                }
            }
            let args = if args.is_empty() { String::new() } else { format!("({})", args.join(", ")) };
            prefix.push(Step { field: field.name.clone(), args });
            if self.is_node(&field.named) || field.named == "Node" {
                out.push(Edge { parent: parent.to_string(), target: field.named.clone(), steps: prefix.clone() });
            } else if let Some(listed) = self.connection_of(&field.named) {
                if self.is_node(&listed) {
                    for via in [&["nodes"][..], &["edges", "node"][..]] {
                        let mut steps = prefix.clone();
                        steps.extend(via.iter().map(|f| Step { field: f.to_string(), args: String::new() }));
                        out.push(Edge { parent: parent.to_string(), target: listed.clone(), steps });
                    }
                } else if !on_path.contains(&listed) {
                    prefix.push(Step { field: "nodes".into(), args: String::new() });
                    on_path.push(listed.clone());
                    self.walk(parent, &listed, prefix, on_path, arguments, out);
                    on_path.pop();
                    prefix.pop();
                }
            } else if kind == "OBJECT" {
                if !on_path.contains(&field.named) {
                    on_path.push(field.named.clone());
                    self.walk(parent, &field.named, prefix, on_path, arguments, out);
                    on_path.pop();
                }
            } else {
                panic!("{ty}.{} yields {} ({kind}): the matrix cannot classify it", field.name, field.named);
            }
            prefix.pop();
        }
    }
}
