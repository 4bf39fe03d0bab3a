//! Query limits and cost reporting, checked after validation and before anything executes.
//!
//! async-graphql computes every query's complexity and depth during validation; its own
//! `limit_*` checks refuse with a bare message. We enforce the limits here instead so the
//! refusal carries a code and the numbers (`extensions.cost`, `extensions.limit`), and so every
//! successful response reports its cost in `extensions.cost`, as Shopify's API does.

use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextSubscribe, NextValidation,
};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Response, ServerError, ServerResult, ValidationResult, Value, Variables};

use super::errors::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct QueryLimits {
    pub max_depth: usize,
    pub max_complexity: usize,
}

impl ExtensionFactory for QueryLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(QueryLimitsExtension { limits: *self, measured: Mutex::new(None) })
    }
}

struct QueryLimitsExtension {
    limits: QueryLimits,
    measured: Mutex<Option<(usize, usize)>>,
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
    /// Subscription responses get their error codes as query responses do.
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream)
            .map(|mut response| {
                response.errors.iter_mut().for_each(classify);
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
        let result = next
            .run(ctx)
            .await
            .map_err(|errors| {
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
        let QueryLimits { max_depth, max_complexity } = self.limits;
        if result.depth > max_depth {
            let mut error = ServerError::new(
                format!("query depth {} exceeds the limit of {max_depth}", result.depth),
                None,
            );
            let ext = error.extensions.get_or_insert_with(Default::default);
            ext.set("code", "MAX_DEPTH_EXCEEDED");
            ext.set("depth", result.depth as u64);
            ext.set("limit", max_depth as u64);
            return Err(vec![error]);
        }
        if result.complexity > max_complexity {
            let mut error = ServerError::new(
                format!(
                    "query cost {} exceeds the limit of {max_complexity}; ask for smaller pages (`first`/`last`) or fewer fields",
                    result.complexity
                ),
                None,
            );
            let ext = error.extensions.get_or_insert_with(Default::default);
            ext.set("code", "MAX_COST_EXCEEDED");
            ext.set("cost", result.complexity as u64);
            ext.set("limit", max_complexity as u64);
            return Err(vec![error]);
        }
        *self.measured.lock().expect("not poisoned") = Some((result.complexity, result.depth));
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let mut response = next.run(ctx, operation_name).await;
        for error in &mut response.errors {
            classify(error);
        }
        let measured = *self.measured.lock().expect("not poisoned");
        match measured {
            Some((complexity, depth)) => response.extension(
                "cost",
                Value::from_json(serde_json::json!({
                    "requestedQueryCost": complexity,
                    "maximumQueryCost": self.limits.max_complexity,
                    "depth": depth,
                    "maximumDepth": self.limits.max_depth,
                }))
                .expect("plain JSON"),
            ),
            None => response,
        }
    }
}
