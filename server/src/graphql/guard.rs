//! Bounds on a GraphQL document, checked before async-graphql parses or validates it.
//!
//! async-graphql's validation (and its recursion-depth check, which runs inside parsing) walks
//! every fragment spread into its fragment, so the work it does grows with the *expanded*
//! document: fragment `F(k)` spreading `F(k-1)` twice makes a 1 KB document of 2^k selections
//! (26 levels took 21 s of CPU). Its parser recurses once per nested bracket, so a deeply nested
//! list in an argument is a stack to exhaust. The cost and depth limits run only after all that.
//!
//! So, in this order and each in time linear in the request:
//! 1. [`scan`] counts the query's tokens and its bracket nesting without parsing it;
//! 2. [`measure`] weighs the parsed document as validation would expand it, with one memoised
//!    weight per fragment (a fragment spread twice costs one multiplication, not two walks), and
//!    counts its fragments and directives;
//! 3. [`check_variables`] bounds the lists in the variables.
//!
//! Any refusal carries a code and the numbers, and leaves validation unstarted.

use std::collections::HashMap;

use async_graphql::parser::types::{Directive, ExecutableDocument, Selection, SelectionSet};
use async_graphql::{Positioned, ServerError, Value, Variables};

/// Most values one list may hold, in the document or in the variables, whatever the argument.
/// Each list argument has its own, tighter bound (`crate::errors::MAX_ENTRIES` for mutation
/// inputs); this one holds by construction for arguments added later.
pub const MAX_LIST_VALUES: usize = 1000;

/// The limits of [`scan`] and [`measure`] (`VELFERD_GRAPHQL_MAX_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentLimits {
    pub max_tokens: usize,
    pub max_nesting: usize,
    pub max_selections: usize,
    pub max_fragments: usize,
    pub max_directives: usize,
}

/// Why a document is refused before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub code: &'static str,
    pub message: String,
    /// What was counted (at least `limit + 1`; counting stops there) and the limit.
    pub counted: u64,
    pub limit: u64,
}

impl Refused {
    fn new(code: &'static str, what: &str, counted: u64, limit: usize) -> Refused {
        Refused {
            code,
            message: format!("the document {what} exceeds the limit of {limit}; send a smaller document"),
            counted,
            limit: limit as u64,
        }
    }

    /// Fragments that spread each other in a cycle, which validation refuses too.
    fn cycle(fragment: &str) -> Refused {
        Refused {
            code: "GRAPHQL_VALIDATION_FAILED",
            message: format!("fragment \"{fragment}\" spreads itself, directly or through others"),
            counted: 0,
            limit: 0,
        }
    }

    pub fn into_server_error(self) -> ServerError {
        let mut error = ServerError::new(self.message, None);
        let extensions = error.extensions.get_or_insert_with(Default::default);
        extensions.set("code", self.code);
        if self.limit > 0 {
            extensions.set("counted", self.counted);
            extensions.set("limit", self.limit);
        }
        error
    }
}

/// Counts the query's tokens and the nesting of its brackets (`{`, `[`, `(`), skipping strings
/// and comments, and stops at the first limit passed: no allocation, one pass, no parse.
pub fn scan(query: &str, limits: &DocumentLimits) -> Result<(), Refused> {
    let bytes = query.as_bytes();
    let (mut i, mut tokens, mut depth) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
                continue;
            }
            b'"' if bytes[i..].starts_with(b"\"\"\"") => {
                i += 3;
                while i < bytes.len() && !bytes[i..].starts_with(b"\"\"\"") {
                    i += if bytes[i..].starts_with(b"\\\"\"\"") { 4 } else { 1 };
                }
                i += 3;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'{' | b'[' | b'(' => {
                depth += 1;
                if depth > limits.max_nesting {
                    return Err(Refused::new("MAX_NESTING_EXCEEDED", "nesting", depth as u64, limits.max_nesting));
                }
                i += 1;
            }
            b'}' | b']' | b')' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => i += 3,
            b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len()
                    && matches!(bytes[i], b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'+' | b'-')
                {
                    i += 1;
                }
            }
            _ => i += 1,
        }
        tokens += 1;
        if tokens > limits.max_tokens {
            return Err(Refused::new("MAX_TOKENS_EXCEEDED", "token count", tokens as u64, limits.max_tokens));
        }
    }
    Ok(())
}

/// What [`measure`] found in a document it accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Measure {
    /// Selections as validation expands them, weighted by their arguments and directives.
    pub selections: u64,
    /// `__typename` selections of the operations, expanded: async-graphql's cost leaves them out.
    pub typenames: u64,
}

/// One fragment's or operation's own selections, before its spreads are expanded.
#[derive(Default)]
struct Local<'a> {
    weight: u64,
    typenames: u64,
    /// The fragments it spreads, with how many times.
    spreads: HashMap<&'a str, u64>,
}

/// Weighs `doc` as validation will walk it; refuses it when a limit is passed, when a list
/// literal holds more than [`MAX_LIST_VALUES`] values, or when fragments spread each other in
/// a cycle (validation refuses cycles too, but this count must not loop on them).
pub fn measure(doc: &ExecutableDocument, limits: &DocumentLimits) -> Result<Measure, Refused> {
    if doc.fragments.len() > limits.max_fragments {
        return Err(Refused::new(
            "MAX_FRAGMENTS_EXCEEDED",
            "fragment count",
            doc.fragments.len() as u64,
            limits.max_fragments,
        ));
    }
    let mut directives = 0usize;
    let mut locals: HashMap<&str, Local<'_>> = HashMap::with_capacity(doc.fragments.len());
    for (name, fragment) in &doc.fragments {
        let mut local = Local::default();
        directives += fragment.node.directives.len();
        local.weight = local.weight.saturating_add(directive_weight(&fragment.node.directives)?);
        walk(&fragment.node.selection_set.node, &mut local, &mut directives)?;
        locals.insert(name.as_str(), local);
    }
    let mut operations = Vec::new();
    for (_, operation) in doc.operations.iter() {
        let mut local = Local::default();
        directives += operation.node.directives.len();
        local.weight = local.weight.saturating_add(directive_weight(&operation.node.directives)?);
        for variable in &operation.node.variable_definitions {
            if let Some(default) = &variable.node.default_value {
                local.weight = local.weight.saturating_add(value_weight(&default.node)?);
            }
        }
        walk(&operation.node.selection_set.node, &mut local, &mut directives)?;
        operations.push(local);
    }
    if directives > limits.max_directives {
        return Err(Refused::new(
            "MAX_DIRECTIVES_EXCEEDED",
            "directive count",
            directives as u64,
            limits.max_directives,
        ));
    }

    let expanded = expand(&locals)?;
    let too_many = |counted: u64| {
        Refused::new("MAX_SELECTIONS_EXCEEDED", "expanded selection count", counted, limits.max_selections)
    };
    let mut total = Measure::default();
    let add = |local: &Local<'_>| {
        let (mut weight, mut typenames) = (local.weight, local.typenames);
        for (name, times) in &local.spreads {
            // A spread of an unknown fragment weighs nothing here; validation refuses it.
            let (w, t) = expanded.get(name).copied().unwrap_or_default();
            weight = weight.saturating_add(times.saturating_mul(w));
            typenames = typenames.saturating_add(times.saturating_mul(t));
        }
        (weight, typenames)
    };
    for operation in &operations {
        let (weight, typenames) = add(operation);
        total.selections = total.selections.saturating_add(weight);
        total.typenames = total.typenames.saturating_add(typenames);
    }
    // Validation also walks each fragment definition on its own.
    for local in locals.values() {
        total.selections = total.selections.saturating_add(add(local).0);
    }
    if total.selections > limits.max_selections as u64 {
        return Err(too_many(total.selections));
    }
    Ok(total)
}

/// Each fragment's expanded weight and `__typename` count, fragments in dependency order, with
/// an explicit stack (a chain of spreads must not become a deep recursion). Each spread is
/// looked at once.
fn expand<'a>(locals: &HashMap<&'a str, Local<'a>>) -> Result<HashMap<&'a str, (u64, u64)>, Refused> {
    let mut open: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut expanded: HashMap<&str, (u64, u64)> = HashMap::with_capacity(locals.len());
    for &root in locals.keys() {
        if expanded.contains_key(root) {
            continue;
        }
        // Each frame: a fragment, its spread targets, and how many of them are done.
        let targets = |name: &str| locals[name].spreads.keys().copied().filter(|t| locals.contains_key(t)).collect();
        let mut stack: Vec<(&str, Vec<&str>, usize)> = vec![(root, targets(root), 0)];
        open.insert(root);
        while let Some((name, pending, next)) = stack.last_mut() {
            if let Some(&target) = pending.get(*next) {
                *next += 1;
                if expanded.contains_key(target) {
                    continue;
                }
                if open.contains(target) {
                    return Err(Refused::cycle(target));
                }
                open.insert(target);
                stack.push((target, targets(target), 0));
                continue;
            }
            let local = &locals[*name];
            let (mut weight, mut typenames) = (local.weight, local.typenames);
            for (target, times) in &local.spreads {
                let (w, t) = expanded.get(target).copied().unwrap_or_default();
                weight = weight.saturating_add(times.saturating_mul(w));
                typenames = typenames.saturating_add(times.saturating_mul(t));
            }
            let name = *name;
            expanded.insert(name, (weight, typenames));
            open.remove(name);
            stack.pop();
        }
    }
    Ok(expanded)
}

/// Adds a selection set's own selections to `local`. Recursion follows the document's nesting,
/// which [`scan`] bounded.
fn walk<'a>(set: &'a SelectionSet, local: &mut Local<'a>, directives: &mut usize) -> Result<(), Refused> {
    for selection in &set.items {
        let node_directives = selection.node.directives();
        *directives += node_directives.len();
        let mut weight = 1u64.saturating_add(directive_weight(node_directives)?);
        match &selection.node {
            Selection::Field(field) => {
                if field.node.name.node == "__typename" {
                    local.typenames = local.typenames.saturating_add(1);
                }
                for (_, value) in &field.node.arguments {
                    weight = weight.saturating_add(argument_weight(&value.node)?);
                }
                walk(&field.node.selection_set.node, local, directives)?;
            }
            Selection::FragmentSpread(spread) => {
                let count = local.spreads.entry(spread.node.fragment_name.node.as_str()).or_default();
                *count = count.saturating_add(1);
            }
            Selection::InlineFragment(inline) => walk(&inline.node.selection_set.node, local, directives)?,
        }
        local.weight = local.weight.saturating_add(weight);
    }
    Ok(())
}

fn directive_weight(directives: &[Positioned<Directive>]) -> Result<u64, Refused> {
    let mut weight = 0u64;
    for directive in directives {
        weight = weight.saturating_add(1);
        for (_, value) in &directive.node.arguments {
            weight = weight.saturating_add(argument_weight(&value.node)?);
        }
    }
    Ok(weight)
}

/// An argument as written: a variable weighs as one value (its value is bounded by
/// [`check_variables`]).
fn argument_weight(value: &async_graphql_value::Value) -> Result<u64, Refused> {
    use async_graphql_value::Value as Written;
    match value {
        Written::List(items) => list_weight(items, argument_weight),
        Written::Object(fields) => entries_weight(fields.values(), argument_weight),
        _ => Ok(1),
    }
}

/// The values in an argument, each checked against every field it is passed to: a list counts
/// each entry. Refuses a list literal of more than [`MAX_LIST_VALUES`] values.
fn value_weight(value: &Value) -> Result<u64, Refused> {
    match value {
        Value::List(items) => list_weight(items, value_weight),
        Value::Object(fields) => entries_weight(fields.values(), value_weight),
        _ => Ok(1),
    }
}

/// A list's weight (see [`entries_weight`]); refuses one of more than [`MAX_LIST_VALUES`] values.
fn list_weight<V>(items: &[V], weigh: fn(&V) -> Result<u64, Refused>) -> Result<u64, Refused> {
    if items.len() > MAX_LIST_VALUES {
        return Err(too_long_list(items.len()));
    }
    entries_weight(items.iter(), weigh)
}

/// One for a list or an object itself, and the weight of each entry.
fn entries_weight<'v, V: 'v>(
    mut entries: impl Iterator<Item = &'v V>,
    weigh: fn(&V) -> Result<u64, Refused>,
) -> Result<u64, Refused> {
    entries.try_fold(1u64, |weight, entry| Ok(weight.saturating_add(weigh(entry)?)))
}

fn too_long_list(len: usize) -> Refused {
    Refused {
        code: "BAD_USER_INPUT",
        message: format!("a list holds {len} values; at most {MAX_LIST_VALUES} are allowed"),
        counted: len as u64,
        limit: MAX_LIST_VALUES as u64,
    }
}

/// Refuses variables holding a list of more than [`MAX_LIST_VALUES`] values, at any depth.
/// serde_json already bounded their nesting when the request was read.
pub fn check_variables(variables: &Variables) -> Result<(), Refused> {
    fn check(value: &async_graphql::Value) -> Result<(), Refused> {
        match value {
            async_graphql::Value::List(items) => {
                if items.len() > MAX_LIST_VALUES {
                    return Err(too_long_list(items.len()));
                }
                items.iter().try_for_each(check)
            }
            async_graphql::Value::Object(fields) => fields.values().try_for_each(check),
            _ => Ok(()),
        }
    }
    variables.values().try_for_each(check)
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_graphql::parser::parse_query;
    use proptest::prelude::*;

    const LIMITS: DocumentLimits = DocumentLimits {
        max_tokens: 20_000,
        max_nesting: 64,
        max_selections: 10_000,
        max_fragments: 100,
        max_directives: 100,
    };

    /// `F(k)` spreads `F(k-1)` twice: 2^levels selections in about 40 bytes a level.
    fn bomb(levels: usize) -> String {
        let mut query = format!("query {{ ...F{levels} }}\nfragment F0 on Query {{ __typename }}\n");
        for k in 1..=levels {
            query.push_str(&format!("fragment F{k} on Query {{ ...F{} ...F{} }}\n", k - 1, k - 1));
        }
        query
    }

    #[test]
    fn a_fragment_bomb_is_weighed_without_being_expanded() {
        let doc = parse_query(bomb(60)).unwrap();
        assert_eq!(doc.fragments.len(), 61);
        let refused = measure(&doc, &LIMITS).unwrap_err();
        assert_eq!(refused.code, "MAX_SELECTIONS_EXCEEDED");
        assert!(refused.counted > 1 << 60, "{refused:?}");
    }

    #[test]
    fn small_documents_pass_with_their_typenames_counted() {
        let doc =
            parse_query("query { a: __typename ...F } fragment F on Query { __typename x(ids: [1, 2]) }").unwrap();
        let measured = measure(&doc, &LIMITS).unwrap();
        assert_eq!(measured.typenames, 2);
        assert!(measured.selections >= 4, "{measured:?}");
    }

    #[test]
    fn cycles_are_refused_not_followed() {
        let doc = parse_query("query { ...A } fragment A on Query { ...B } fragment B on Query { ...A }").unwrap();
        assert_eq!(measure(&doc, &LIMITS).unwrap_err().code, "GRAPHQL_VALIDATION_FAILED");
    }

    #[test]
    fn scan_counts_tokens_and_nesting_but_not_strings_or_comments() {
        let limits = DocumentLimits { max_tokens: 8, max_nesting: 2, ..LIMITS };
        assert!(scan("{ a(x: \"{{{{ [[[[ a b c d e f\") } # {{{{ g h i j", &limits).is_ok());
        assert_eq!(scan("{ a b c d e f g h }", &limits).unwrap_err().code, "MAX_TOKENS_EXCEEDED");
        assert_eq!(scan("{ a(x: [[1]]) }", &limits).unwrap_err().code, "MAX_NESTING_EXCEEDED");
        assert!(scan("{ a(x: \"\"\" {{{ \\\"\"\" {{{ \"\"\") }", &limits).is_ok());
    }

    #[test]
    fn long_lists_are_refused_in_the_document_and_the_variables() {
        let list = vec!["1"; MAX_LIST_VALUES + 1].join(",");
        let doc = parse_query(format!("{{ a(x: [{list}]) }}")).unwrap();
        assert_eq!(measure(&doc, &LIMITS).unwrap_err().code, "BAD_USER_INPUT");
        let variables = Variables::from_json(serde_json::json!({ "f": { "kinds": vec!["x"; MAX_LIST_VALUES + 1] } }));
        assert_eq!(check_variables(&variables).unwrap_err().code, "BAD_USER_INPUT");
        let fine = Variables::from_json(serde_json::json!({ "f": { "kinds": vec!["x"; MAX_LIST_VALUES] } }));
        assert!(check_variables(&fine).is_ok());
    }

    /// A random fragment graph: fragment `i` may spread only fragments `j < i` (no cycles), in
    /// fields, inline fragments and under directives; the operation spreads some of them.
    #[derive(Debug, Clone)]
    enum Item {
        Field { directive: bool, children: Vec<Item> },
        Typename,
        Spread { target: usize, directive: bool },
        Inline { directive: bool, children: Vec<Item> },
    }

    fn item(fragments: usize) -> impl Strategy<Value = Item> {
        let leaf = prop_oneof![
            any::<bool>().prop_map(|directive| Item::Field { directive, children: vec![] }),
            Just(Item::Typename),
            (0..fragments.max(1), any::<bool>()).prop_map(|(target, directive)| Item::Spread { target, directive }),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                (any::<bool>(), prop::collection::vec(inner.clone(), 1..4))
                    .prop_map(|(directive, children)| Item::Field { directive, children }),
                (any::<bool>(), prop::collection::vec(inner, 1..4))
                    .prop_map(|(directive, children)| Item::Inline { directive, children }),
            ]
        })
    }

    fn render(items: &[Item], own: usize, out: &mut String) {
        for item in items {
            match item {
                Item::Field { directive, children } => {
                    out.push_str("f(a: [1, {b: 2}])");
                    if *directive {
                        out.push_str(" @include(if: true)");
                    }
                    if !children.is_empty() {
                        out.push_str(" { ");
                        render(children, own, out);
                        out.push_str(" }");
                    }
                }
                Item::Typename => out.push_str("__typename"),
                // Only earlier fragments: the graph stays acyclic, as validation requires.
                Item::Spread { target, directive } if *target < own => {
                    out.push_str(&format!("...F{target}"));
                    if *directive {
                        out.push_str(" @skip(if: false)");
                    }
                }
                Item::Spread { .. } => out.push_str("__typename"),
                Item::Inline { directive, children } => {
                    out.push_str("... on Query");
                    if *directive {
                        out.push_str(" @include(if: true)");
                    }
                    out.push_str(" { ");
                    render(children, own, out);
                    out.push_str(" }");
                }
            }
            out.push(' ');
        }
    }

    /// Selections (weighted by argument values and directives) a naive walk visits, following
    /// every spread, as validation does; stops counting past `cap` so the test stays fast.
    fn naive(doc: &ExecutableDocument, set: &SelectionSet, count: &mut u64, cap: u64) {
        for selection in &set.items {
            if *count > cap {
                return;
            }
            // Each selection weighs as the guard weighs it on its own; only the expansion of
            // spreads is left to this walk.
            *count += 1 + directive_weight(selection.node.directives()).unwrap();
            match &selection.node {
                Selection::Field(field) => {
                    for (_, value) in &field.node.arguments {
                        *count += argument_weight(&value.node).unwrap();
                    }
                    naive(doc, &field.node.selection_set.node, count, cap);
                }
                Selection::FragmentSpread(spread) => {
                    let fragment = &doc.fragments[&spread.node.fragment_name.node];
                    naive(doc, &fragment.node.selection_set.node, count, cap);
                }
                Selection::InlineFragment(inline) => naive(doc, &inline.node.selection_set.node, count, cap),
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// The guard's count is never below what validation's walk visits: either it refuses,
        /// or the walk (capped at the limit) stays within the count.
        #[test]
        fn the_guard_never_undercounts(
            bodies in prop::collection::vec(prop::collection::vec(item(12), 1..5), 1..12),
            root in prop::collection::vec(item(12), 1..4),
            max_selections in 50usize..5_000,
        ) {
            let mut query = String::from("query { ");
            render(&root, bodies.len(), &mut query);
            query.push_str("}\n");
            for (i, body) in bodies.iter().enumerate() {
                query.push_str(&format!("fragment F{i} on Query {{ "));
                render(body, i, &mut query);
                query.push_str("}\n");
            }
            let doc = parse_query(&query).unwrap();
            let limits = DocumentLimits { max_selections, ..LIMITS };
            let mut walked = 0;
            // What validation walks: each operation, and each fragment definition on its own.
            for (_, operation) in doc.operations.iter() {
                naive(&doc, &operation.node.selection_set.node, &mut walked, max_selections as u64);
            }
            for fragment in doc.fragments.values() {
                naive(&doc, &fragment.node.selection_set.node, &mut walked, max_selections as u64);
            }
            match measure(&doc, &limits) {
                Ok(measured) => prop_assert!(measured.selections >= walked, "{} < {walked}\n{query}", measured.selections),
                Err(refused) => {
                    prop_assert_eq!(refused.code, "MAX_SELECTIONS_EXCEEDED");
                    prop_assert!(refused.counted > max_selections as u64);
                }
            }
        }
    }
}
