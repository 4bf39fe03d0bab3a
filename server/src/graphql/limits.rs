//! Query limits, cost-based throttling and cost reporting, checked after validation and before
//! anything executes.
//!
//! async-graphql computes every query's complexity and depth during validation; its own
//! `limit_*` checks refuse with a bare message. We enforce the limits here instead so the
//! refusal carries a code and the numbers (`extensions.cost`, `extensions.limit`). A query within
//! them is then charged its cost to the caller's bucket (`crate::throttle`), or refused
//! `THROTTLED` with the seconds to wait. Every response reports `extensions.cost`, with the
//! caller's `throttleStatus`, as Shopify's API does, and its refusals go to the refusal log
//! (`crate::refusals`).
//!
//! The same extension gives every error a code (also those async-graphql raises outside the
//! other hooks), counts operations and errors in the server's metrics, charges the response
//! budget ([`ResponseBudget`]) and puts the answer's fields in selection order
//! (`graphql::order`). It is the schema's only extension, on purpose: with any extension at all
//! async-graphql passes every field and list item through each extension's `resolve` hook
//! (a boxed future each), so every extension is a cost per field.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest, NextRequest,
    NextResolve, NextSubscribe, NextValidation, ResolveInfo,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Name, Request, Response, ServerError, ServerResult, ValidationResult, Value, Variables};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::errors::ApiError;
use super::guard::{self, DocumentLimits};
use super::order::Plan;
use crate::app::AppState;
use crate::telemetry::Metrics;
use crate::throttle::{CallerKey, Refused, ThrottleStatus};

#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
    /// Bounds on the document itself, checked before it is parsed and validated.
    pub document: DocumentLimits,
    /// What one operation's response may weigh when no [`ResponseBudget`] comes with the
    /// request (over WebSocket; HTTP shares one budget across a batch).
    pub max_response_bytes: usize,
}

/// The bytes the responses of one HTTP request may weigh, shared by the operations of a batch.
///
/// Every resolved leaf (scalar or enum) is charged its JSON size and every field its key as it
/// is resolved; once the budget is spent, the remaining fields are not resolved and the
/// operation answers `RESPONSE_TOO_LARGE` alone. So the values held in memory stay near the
/// budget whatever the query, and the HTTP handler's serialisation, which counts exactly, is
/// the last word.
#[derive(Debug)]
pub struct ResponseBudget {
    limit: usize,
    used: std::sync::atomic::AtomicUsize,
}

impl ResponseBudget {
    pub fn new(limit: usize) -> Arc<ResponseBudget> {
        Arc::new(ResponseBudget { limit, used: std::sync::atomic::AtomicUsize::new(0) })
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The bytes charged so far: the answer's size as JSON, give or take its `extensions`.
    pub fn used(&self) -> usize {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Charges `bytes`; false once the budget is spent.
    fn spend(&self, bytes: usize) -> bool {
        let before = self.used.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
        before.saturating_add(bytes) <= self.limit
    }

    fn exceeded(&self) -> bool {
        self.used.load(std::sync::atomic::Ordering::Relaxed) > self.limit
    }

    fn reset(&self) {
        self.used.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// The refusal of a response over the budget.
    pub fn error(&self) -> ServerError {
        let mut error = ServerError::new(
            format!(
                "the response would exceed {} bytes; ask for smaller pages, fewer fields or fewer operations per batch",
                self.limit
            ),
            None,
        );
        let extensions = error.extensions.get_or_insert_with(Default::default);
        extensions.set("code", "RESPONSE_TOO_LARGE");
        extensions.set("limit", self.limit as u64);
        error
    }
}

/// The size of `value` written as JSON, near enough to budget by (escapes are not counted).
fn json_size(value: &Value) -> usize {
    match value {
        Value::Null => 4,
        Value::Boolean(_) => 5,
        Value::Number(n) => number_size(n),
        Value::String(s) => s.len() + 2,
        Value::Enum(name) => name.len() + 2,
        Value::Binary(bytes) => bytes.len().saturating_mul(4) + 2,
        Value::List(items) => items.iter().fold(2, |sum, item| sum.saturating_add(json_size(item) + 1)),
        Value::Object(fields) => {
            fields.iter().fold(2, |sum, (key, item)| sum.saturating_add(key.len() + 4).saturating_add(json_size(item)))
        }
    }
}

/// The length of `n` as JSON, counted without writing it anywhere.
fn number_size(n: &serde_json::Number) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(0);
    let _ = std::fmt::write(&mut count, format_args!("{n}"));
    count.0
}

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryLimitsExtension {
            limits: *self,
            typenames: std::sync::atomic::AtomicUsize::new(0),
            budget: std::sync::OnceLock::new(),
            order: std::sync::OnceLock::new(),
            operation: Arc::new(Operation { started: Some(Instant::now()), ..Operation::default() }),
            throttling: Arc::new(Throttling::default()),
        })
    }
}

/// One operation's caller and what its bucket said, for `extensions.cost` and the refusal log.
#[derive(Default)]
struct Throttling {
    /// Who asks: put in the request's data by the HTTP handler, in the session's by the
    /// WebSocket's `connection_init`. `None` where neither runs (the SDL printer).
    caller: std::sync::OnceLock<CallerKey>,
    /// The cost measured in validation, and the depth.
    requested: Mutex<Option<(usize, usize)>>,
    /// The caller's bucket when the operation was charged (or refused), else when first asked.
    status: Mutex<Option<ThrottleStatus>>,
}

impl Throttling {
    /// The caller's bucket as last seen, read now the first time.
    fn status(&self, state: Option<&AppState>) -> Option<ThrottleStatus> {
        let mut status = self.status.lock().expect("not poisoned");
        if status.is_none()
            && let (Some(state), Some(caller)) = (state, self.caller.get())
        {
            *status = Some(state.throttle.status(caller));
        }
        *status
    }

    /// Gives `response` its `extensions.cost` and counts its refusals in the refusal log.
    fn finish(&self, state: Option<&AppState>, limits: &QueryLimits, response: &mut Response) {
        let requested = *self.requested.lock().expect("not poisoned");
        // Built as a `Value` directly, with names made once: this runs for every response. The
        // keys in alphabetical order, as they always came.
        let names = cost_names();
        let number = |n: usize| Value::from(n as u64);
        let or_null = |n: Option<usize>| n.map_or(Value::Null, number);
        let mut cost = async_graphql::indexmap::IndexMap::with_capacity(6);
        // The whole requested cost is charged; what the operation actually resolved is not
        // measured, so nothing is refunded.
        cost.insert(names.actual.clone(), Value::Null);
        cost.insert(names.depth.clone(), or_null(requested.map(|(_, depth)| depth)));
        cost.insert(names.maximum_depth.clone(), number(limits.max_depth));
        cost.insert(names.maximum.clone(), number(limits.max_complexity));
        // Null when the operation was refused before its cost was measured: nothing was charged.
        cost.insert(names.requested.clone(), or_null(requested.map(|(complexity, _)| complexity)));
        if let Some(status) = self.status(state) {
            let mut throttle = async_graphql::indexmap::IndexMap::with_capacity(3);
            throttle.insert(names.currently_available.clone(), Value::from(status.currently_available));
            throttle.insert(names.maximum_available.clone(), Value::from(status.maximum_available));
            throttle.insert(names.restore_rate.clone(), Value::from(status.restore_rate));
            cost.insert(names.throttle_status.clone(), Value::Object(throttle));
        }
        response.extensions.insert("cost".into(), Value::Object(cost));
        if let (Some(state), Some(caller)) = (state, self.caller.get()) {
            let mut codes: Vec<&str> = response.errors.iter().filter_map(code_of).collect();
            codes.sort_unstable();
            codes.dedup();
            for code in codes {
                state.refusals.record(caller, code);
            }
        }
    }
}

/// The keys of `extensions.cost`, made once.
struct CostNames {
    requested: Name,
    actual: Name,
    maximum: Name,
    depth: Name,
    maximum_depth: Name,
    throttle_status: Name,
    maximum_available: Name,
    currently_available: Name,
    restore_rate: Name,
}

fn cost_names() -> &'static CostNames {
    static NAMES: std::sync::LazyLock<CostNames> = std::sync::LazyLock::new(|| CostNames {
        requested: Name::new("requestedQueryCost"),
        actual: Name::new("actualQueryCost"),
        maximum: Name::new("maximumQueryCost"),
        depth: Name::new("depth"),
        maximum_depth: Name::new("maximumDepth"),
        throttle_status: Name::new("throttleStatus"),
        maximum_available: Name::new("maximumAvailable"),
        currently_available: Name::new("currentlyAvailable"),
        restore_rate: Name::new("restoreRate"),
    });
    &NAMES
}

fn code_of(error: &ServerError) -> Option<&str> {
    match error.extensions.as_ref()?.get("code")? {
        Value::String(code) => Some(code.as_str()),
        _ => None,
    }
}

struct QueryLimitsExtension {
    limits: QueryLimits,
    /// `__typename` selections of the document, expanded, added to its cost.
    typenames: std::sync::atomic::AtomicUsize,
    /// The budget this operation charges, looked up (or made) once: `resolve` runs for every
    /// field.
    budget: std::sync::OnceLock<Arc<ResponseBudget>>,
    /// The selection order of the operation's answer, made from the document as it is parsed
    /// (`prepare_request`), applied by `execute` (for a subscription, to each item).
    order: std::sync::OnceLock<Plan>,
    operation: Arc<Operation>,
    throttling: Arc<Throttling>,
}

impl QueryLimitsExtension {
    /// The request's budget (HTTP: one for the whole batch), else one of this operation's own
    /// of `max_response_bytes`. The first hook to ask decides: over HTTP that is `execute`,
    /// which sees the request's data.
    fn budget(&self, ctx: &ExtensionContext<'_>) -> &Arc<ResponseBudget> {
        self.budget.get_or_init(|| {
            ctx.data_opt::<Arc<ResponseBudget>>()
                .cloned()
                .unwrap_or_else(|| ResponseBudget::new(self.limits.max_response_bytes))
        })
    }
}

/// What the metrics need to know of one operation, gathered across the hooks.
#[derive(Default)]
struct Operation {
    started: Option<Instant>,
    /// The `operationName` the client sent.
    requested: Mutex<Option<String>>,
    /// Set when the document validated.
    validated: std::sync::atomic::AtomicBool,
    /// The name of the operation that ran (query or mutation), `Some(None)` when anonymous.
    executed: Mutex<Option<Option<String>>>,
    /// Whether the operation selection failed (an unknown or missing `operationName`).
    selection_failed: std::sync::atomic::AtomicBool,
    recorded: std::sync::atomic::AtomicBool,
}

impl Operation {
    /// Counts the operation once, under its name only when its document validated and the name
    /// selected an operation in it.
    fn record(&self, metrics: &Metrics, timed: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        if self.recorded.swap(true, Relaxed) {
            return;
        }
        let executed = self.executed.lock().expect("not poisoned").clone();
        let name = match executed {
            Some(name) => Some(name),
            None if self.validated.load(Relaxed) && !self.selection_failed.load(Relaxed) => {
                Some(self.requested.lock().expect("not poisoned").clone())
            }
            None => None,
        };
        let elapsed = self.started.filter(|_| timed).map(|started| started.elapsed());
        metrics.graphql_operation(name.as_ref().map(Option::as_deref), elapsed);
    }

    /// Codes and counts the errors of one response.
    fn finish_errors(&self, metrics: Option<&Metrics>, response: &mut Response) {
        for error in &mut response.errors {
            crate::errors::clip_message(&mut error.message);
            if is_operation_selection_error(error) {
                self.selection_failed.store(true, std::sync::atomic::Ordering::Relaxed);
                error.extensions.get_or_insert_with(Default::default).set("code", "GRAPHQL_VALIDATION_FAILED");
            }
            classify(error);
            if let Some(metrics) = metrics {
                let code = error.extensions.as_ref().and_then(|e| e.get("code")).and_then(|code| match code {
                    Value::String(code) => Some(code.as_str()),
                    _ => None,
                });
                metrics.graphql_error(code);
            }
        }
    }
}

/// The errors async-graphql raises when `operationName` names no operation of the document, or
/// is missing where the document has several. It raises them after validation and before
/// execution, outside every hook but `request`/`subscribe`, with no code and no source: the
/// message is all that tells them apart (a test pins it, so an upgrade that rewords them fails).
fn is_operation_selection_error(error: &ServerError) -> bool {
    error.extensions.as_ref().is_none_or(|e| e.get("code").is_none())
        && error.source.is_none()
        && (error.message.starts_with("Unknown operation named ")
            || error.message == "Operation name required in request.")
}

fn metrics_of(ctx: &ExtensionContext<'_>) -> Option<Arc<Metrics>> {
    ctx.data_opt::<AppState>().map(|state| state.metrics.clone())
}

fn with_code(mut error: ServerError, code: &str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
    error
}

/// Gives every resolver error its `extensions.code`: from the [`ApiError`] it came from, or
/// `BAD_USER_INPUT` for what async-graphql reports itself (argument coercion). A database error
/// that escaped without going through `ApiError` is masked, never shown.
fn classify(error: &mut ServerError) {
    if error.extensions.as_ref().is_some_and(|e| e.get("code").is_some()) {
        return;
    }
    let code = if let Some(api) = error.source::<ApiError>() {
        api.code()
    } else if error.source::<sea_orm::DbErr>().is_some() {
        let masked = ApiError::internal(&error.message);
        error.message = masked.to_string();
        masked.code()
    } else {
        "BAD_USER_INPUT"
    };
    error.extensions.get_or_insert_with(Default::default).set("code", code);
}

#[async_graphql::async_trait::async_trait]
impl Extension for QueryLimitsExtension {
    /// Every operation over HTTP: codes the errors raised outside the other hooks, and counts
    /// the operation and its errors.
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        let metrics = metrics_of(ctx);
        self.operation.finish_errors(metrics.as_deref(), &mut response);
        self.throttling.finish(ctx.data_opt::<AppState>(), &self.limits, &mut response);
        if let Some(metrics) = &metrics {
            self.operation.record(metrics, true);
        }
        response
    }

    /// Bounds the document before async-graphql parses and validates it (see `guard`): the
    /// query text is scanned, then parsed here once (async-graphql reuses the parse) and weighed
    /// with its fragments expanded, and the variables' lists are bounded.
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        *self.operation.requested.lock().expect("not poisoned") = request.operation_name.clone();
        let caller = request.data.get(&std::any::TypeId::of::<CallerKey>()).and_then(|d| d.downcast_ref::<CallerKey>());
        if let Some(caller) = caller.or_else(|| ctx.data_opt::<CallerKey>()) {
            let _ = self.throttling.caller.set(caller.clone());
        }
        let limits = &self.limits.document;
        guard::scan(&request.query, limits).map_err(guard::Refused::into_server_error)?;
        guard::check_variables(&request.variables).map_err(guard::Refused::into_server_error)?;
        let document = request.parsed_query().map_err(|e| with_code(e, "GRAPHQL_PARSE_FAILED"))?;
        let measure = guard::measure(document, limits).map_err(guard::Refused::into_server_error)?;
        let typenames = usize::try_from(measure.typenames).unwrap_or(usize::MAX);
        self.typenames.store(typenames, std::sync::atomic::Ordering::Relaxed);
        // The operation's name as the client sent it, kept above (`request` is borrowed).
        let plan = Plan::of_operation(document, self.operation.requested.lock().expect("not poisoned").as_deref());
        if let Some(plan) = plan {
            let _ = self.order.set(plan);
        }
        next.run(ctx, request).await
    }

    /// Every operation over WebSocket: subscription responses get their error codes as query
    /// responses do; the operation is counted at its first response (a subscription's
    /// lifetime is not a latency, so it is counted without one), and is a live subscriber
    /// until its stream ends.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let metrics = metrics_of(ctx);
        let live = metrics.as_ref().map(Metrics::subscriber);
        let operation = self.operation.clone();
        let budget = self.budget(ctx).clone();
        let throttling = self.throttling.clone();
        let state = ctx.data_opt::<AppState>().cloned();
        let limits = self.limits;
        next.run(ctx, stream)
            .map(move |mut response| {
                let _live = &live;
                // Each event of a subscription has the whole budget.
                if budget.exceeded() {
                    response = Response::from_errors(vec![budget.error()]);
                }
                budget.reset();
                // The selection order was applied by `execute`, which runs for each item.
                operation.finish_errors(metrics.as_deref(), &mut response);
                throttling.finish(state.as_ref(), &limits, &mut response);
                if let Some(metrics) = &metrics {
                    let is_subscription =
                        operation.executed.lock().expect("not poisoned").is_none() && response.errors.is_empty();
                    operation.record(metrics, !is_subscription);
                }
                response
            })
            .boxed()
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables).await.map_err(|e| with_code(e, "GRAPHQL_PARSE_FAILED"))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    // A variable or argument value of the wrong shape is bad input, as in
                    // Apollo's convention; anything else is a malformed operation.
                    let code = if e.message.starts_with("Invalid value") {
                        "BAD_USER_INPUT"
                    } else {
                        "GRAPHQL_VALIDATION_FAILED"
                    };
                    with_code(e, code)
                })
                .collect::<Vec<_>>()
        })?;
        let mut result = result;
        // async-graphql's visitors skip `__typename`, so it would cost nothing: each one costs 1,
        // once per selection after fragments are expanded (not multiplied by page sizes).
        result.complexity = result.complexity.saturating_add(self.typenames.load(std::sync::atomic::Ordering::Relaxed));
        *self.throttling.requested.lock().expect("not poisoned") = Some((result.complexity, result.depth));
        let QueryLimits { max_depth, max_complexity, .. } = self.limits;
        if result.depth > max_depth {
            let mut error =
                ServerError::new(format!("query depth {} exceeds the limit of {max_depth}", result.depth), None);
            let ext = error.extensions.get_or_insert_with(Default::default);
            ext.set("code", "MAX_DEPTH_EXCEEDED");
            ext.set("depth", result.depth as u64);
            ext.set("limit", max_depth as u64);
            return Err(vec![error]);
        }
        if result.complexity > max_complexity {
            return Err(vec![over_cost(result.complexity, max_complexity, "")]);
        }
        self.charge(ctx, result.complexity)?;
        self.operation.validated.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(result)
    }

    /// Charges every resolved field to the response budget, and resolves nothing once it is
    /// spent. This runs for every field and list item: it looks nothing up.
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let budget = self.budget(ctx);
        if budget.exceeded() {
            return Err(budget.error());
        }
        // A list's items pass through here one by one: the list itself is charged only its
        // brackets, a leaf its whole value, an object its key (its fields are charged apart).
        // A leaf (scalar or enum, a JSON scalar too) is what validation allows no selection
        // set on, and an object what it requires one on.
        let in_list = info.parent_type.starts_with('[');
        let is_list = info.return_type.starts_with('[');
        let is_leaf = !is_list && info.field.selection_set.node.items.is_empty();
        let key = if in_list { 1 } else { info.alias.unwrap_or(info.name).len() + 4 };
        let value = next.run(ctx, info).await?;
        let size = match &value {
            Some(value) if is_leaf => key + json_size(value),
            Some(_) => key + 2,
            None => key + 4,
        };
        if budget.spend(size) { Ok(value) } else { Err(budget.error()) }
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        *self.operation.executed.lock().expect("not poisoned") = Some(operation_name.map(str::to_string));
        let budget = self.budget(ctx).clone();
        let mut response = next.run(ctx, operation_name).await;
        if budget.exceeded() {
            // What was resolved is dropped: the operation answers with the refusal alone.
            response = Response::from_errors(vec![budget.error()]);
        } else if let Some(plan) = self.order.get() {
            plan.apply(&mut response.data);
        }
        for error in &mut response.errors {
            classify(error);
        }
        // `extensions.cost` is added when the response is finished (`Throttling::finish`).
        response
    }
}

impl QueryLimitsExtension {
    /// Charges the validated operation's `cost` to its caller's bucket, before anything runs.
    fn charge(&self, ctx: &ExtensionContext<'_>, cost: usize) -> Result<(), Vec<ServerError>> {
        let (Some(state), Some(caller)) = (ctx.data_opt::<AppState>(), self.throttling.caller.get()) else {
            return Ok(());
        };
        let charged = state.throttle.charge(caller, cost as u64);
        let status = match charged {
            Ok(status) | Err(Refused::Throttled { status, .. } | Refused::OverCapacity { status }) => status,
        };
        *self.throttling.status.lock().expect("not poisoned") = Some(status);
        match charged {
            Ok(_) => Ok(()),
            Err(Refused::OverCapacity { status }) => {
                let why = " (the most your throttle bucket holds)";
                Err(vec![over_cost(cost, status.maximum_available as usize, why)])
            }
            Err(Refused::Throttled { status, wait }) => {
                let seconds = crate::throttle::retry_after_seconds(wait);
                let mut error = ServerError::new(
                    format!(
                        "throttled: this query costs {cost} and {} of {} points are available, restoring {} a second; try again in {seconds} s",
                        status.currently_available, status.maximum_available, status.restore_rate
                    ),
                    None,
                );
                let ext = error.extensions.get_or_insert_with(Default::default);
                ext.set("code", "THROTTLED");
                ext.set("cost", cost as u64);
                ext.set("retryAfterSeconds", seconds);
                Err(vec![error])
            }
        }
    }
}

/// The refusal of a query whose cost exceeds `limit`.
fn over_cost(cost: usize, limit: usize, why: &str) -> ServerError {
    let mut error = ServerError::new(
        format!(
            "query cost {cost} exceeds the limit of {limit}{why}; ask for smaller pages (`first`/`last`) or fewer fields"
        ),
        None,
    );
    let ext = error.extensions.get_or_insert_with(Default::default);
    ext.set("code", "MAX_COST_EXCEEDED");
    ext.set("cost", cost as u64);
    ext.set("limit", limit as u64);
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cost_extension_keeps_its_keys_in_alphabetical_order() {
        let throttling = Throttling::default();
        *throttling.requested.lock().unwrap() = Some((12, 3));
        *throttling.status.lock().unwrap() =
            Some(ThrottleStatus { maximum_available: 1000, currently_available: 988, restore_rate: 50 });
        let limits = QueryLimits {
            max_depth: 15,
            max_complexity: 10_000,
            document: DocumentLimits {
                max_tokens: 1,
                max_nesting: 1,
                max_selections: 1,
                max_fragments: 1,
                max_directives: 1,
            },
            max_response_bytes: 1,
        };
        let mut response = Response::new(Value::Null);
        throttling.finish(None, &limits, &mut response);
        assert_eq!(
            serde_json::to_string(&response.extensions["cost"]).unwrap(),
            r#"{"actualQueryCost":null,"depth":3,"maximumDepth":15,"maximumQueryCost":10000,"requestedQueryCost":12,"throttleStatus":{"currentlyAvailable":988,"maximumAvailable":1000,"restoreRate":50}}"#
        );
        let mut refused = Response::new(Value::Null);
        Throttling::default().finish(None, &limits, &mut refused);
        assert_eq!(
            serde_json::to_string(&refused.extensions["cost"]).unwrap(),
            r#"{"actualQueryCost":null,"depth":null,"maximumDepth":15,"maximumQueryCost":10000,"requestedQueryCost":null}"#
        );
    }

    #[test]
    fn numbers_are_measured_as_json_writes_them() {
        for n in [serde_json::json!(0), serde_json::json!(-17), serde_json::json!(u64::MAX), serde_json::json!(0.25)] {
            let serde_json::Value::Number(number) = &n else { unreachable!() };
            assert_eq!(number_size(number), n.to_string().len(), "{n}");
        }
    }
}
