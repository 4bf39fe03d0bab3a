//! Requests to a server known only by its address (`http://host:port`): one started as a
//! process, by the demo, or by a benchmark, where there is no [`crate::support::TestApp`] to
//! ask. Plain reqwest, so the benchmarks share it (`#[path]` from server/benches).

use serde_json::{Value, json};

/// The JSON body `request` is answered with, whatever its status.
pub async fn body(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// A GraphQL request to `base`, as `token` or anonymous; the whole response body.
pub async fn graphql(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    query: &str,
    variables: Value,
) -> Value {
    let mut request = client.post(format!("{base}/graphql")).json(&json!({ "query": query, "variables": variables }));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    body(request).await
}

/// Posts one device message (`content_type`) for `product` to `base`'s ingest endpoint as
/// `token`.
pub async fn ingest(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    product: &str,
    content_type: &str,
    message: impl Into<reqwest::Body>,
) -> reqwest::Response {
    client
        .post(format!("{base}/ingest/{product}"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(message)
        .send()
        .await
        .unwrap()
}
