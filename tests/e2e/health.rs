use crate::support::*;

on_both_backends! {
    /// The process answers, and readiness reports the database reachable and migrated.
    async fn health_and_readiness_answer(app) {
        let health = app.client.get(app.url("/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        let body: serde_json::Value = ready.json().await.unwrap();
        assert_eq!(body["status"], "ready");
    }
}
