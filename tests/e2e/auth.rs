use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use velferd::auth::Role;

use crate::support::*;

const VIEWER: &str = "{ viewer { authenticated subject orgNumber roles } }";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn good_claims() -> Value {
    json!({
        "sub": "kari", "org": MUNICIPALITY_ORG, "roles": ["case_worker"],
        "iss": "velferd", "aud": "velferd", "iat": now(), "nbf": now() - 10, "exp": now() + 600,
    })
}

fn hs256(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret)).unwrap()
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// The classic `alg: none` token: claims with no signature.
fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.")
}

async fn assert_refused(app: &TestApp, case: &str, authorization: &str) {
    let response = app
        .client
        .post(app.url("/graphql"))
        .header("Authorization", authorization)
        .json(&json!({ "query": VIEWER }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401, "{case}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(first_error_code(&body), "UNAUTHENTICATED", "{case}: {body}");
    assert!(body["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()), "{case}: {body}");
    assert!(body.get("data").is_none(), "{case}: a refused token must not run the query: {body}");
}

on_both_backends! {
    /// Without a token a request is anonymous; with one it acts for the token's organisation
    /// and claims its roles — for every role (which of them count for which kind of
    /// organisation is `roles.rs`'s to show).
    async fn anonymous_and_every_role_are_recognised(app) {
        let data = app.graphql(None, VIEWER, json!({})).await;
        assert_eq!(data["viewer"], json!({ "authenticated": false, "subject": null, "orgNumber": null, "roles": [] }));
        let roles: Vec<&str> = ["ADMIN", "ADVISOR", "PROCUREMENT_OFFICER", "CASE_WORKER", "OPERATOR", "PRIVACY_OFFICER", "SUPPLIER", "INTEGRATION", "MUNICIPALITY_ADMIN", "RESPONDER"].to_vec();
        assert_eq!(roles.len(), Role::ALL.len());
        for (role, name) in Role::ALL.into_iter().zip(roles) {
            let token = app.token(SUPPLIER_ORG, &[role]);
            let data = app.graphql(Some(&token), "{ viewer { authenticated orgNumber roles tokenRoles } }", json!({})).await;
            assert_eq!(data["viewer"]["authenticated"], true);
            assert_eq!(data["viewer"]["orgNumber"], SUPPLIER_ORG);
            assert_eq!(data["viewer"]["tokenRoles"], json!([name]), "{role}");
            // The supplier is not registered: the token holds no role.
            assert_eq!(data["viewer"]["roles"], json!([]), "{role}");
        }
    }
}

on_both_backends! {
    /// Every kind of bad token is refused with 401 and `UNAUTHENTICATED`, never treated as
    /// anonymous.
    async fn bad_tokens_are_refused_with_401(app) {
        let secret = SECRET.as_bytes();
        let claims = good_claims();
        // Sanity: the good claims pass, so each case below fails for its own reason.
        let data = app.graphql(Some(&hs256(&claims, secret)), VIEWER, json!({})).await;
        assert_eq!(data["viewer"]["subject"], "kari");

        let cases: Vec<(&str, String)> = vec![
            ("alg none", unsigned(&claims)),
            ("expired", hs256(&with(claims.clone(), "exp", json!(now() - 3600)), secret)),
            ("not yet valid", hs256(&with(claims.clone(), "nbf", json!(now() + 3600)), secret)),
            ("wrong issuer", hs256(&with(claims.clone(), "iss", json!("someone-else")), secret)),
            ("wrong audience", hs256(&with(claims.clone(), "aud", json!("another-api")), secret)),
            ("bad signature", hs256(&claims, b"another-secret-that-is-also-32-bytes-long")),
            ("missing org", hs256(&without(claims.clone(), "org"), secret)),
            ("missing roles", hs256(&without(claims.clone(), "roles"), secret)),
            ("empty roles", hs256(&with(claims.clone(), "roles", json!([])), secret)),
            ("unknown role", hs256(&with(claims.clone(), "roles", json!(["root"])), secret)),
            ("org fails modulus 11", hs256(&with(claims.clone(), "org", json!("974760674")), secret)),
            ("missing exp", hs256(&without(claims.clone(), "exp"), secret)),
            ("missing sub", hs256(&without(claims.clone(), "sub"), secret)),
            ("garbage", "not-a-jwt".to_string()),
        ];
        for (case, token) in cases {
            assert_refused(&app, case, &format!("Bearer {token}")).await;
        }
        assert_refused(&app, "not a bearer scheme", "Basic a2FyaTpzZWNyZXQ=").await;
    }
}

fn fixture(name: &str) -> String {
    format!("{}/../tests/e2e/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A SQLite server signing and verifying `algorithm` tokens with the key pair
/// `fixtures/{keys}-public.pem` and `fixtures/{keys}-private.pem`, and the `extra` settings.
async fn spawn_with_keys(algorithm: &str, keys: &str, extra: &[(&'static str, &str)]) -> TestApp {
    let mut pairs = vec![
        ("VELFERD_JWT_ALGORITHM", algorithm.to_string()),
        ("VELFERD_JWT_PUBLIC_KEY_FILE", fixture(&format!("{keys}-public.pem"))),
        ("VELFERD_JWT_PRIVATE_KEY_FILE", fixture(&format!("{keys}-private.pem"))),
    ];
    pairs.extend(extra.iter().map(|(name, value)| (*name, value.to_string())));
    TestApp::spawn_with(Backend::Sqlite, Options { pairs, demo: false }).await.unwrap()
}

/// With RS256 configured, RS256 tokens pass and an HS256 token is refused — including one
/// "signed" with the public key as an HMAC secret (the algorithm-confusion attack).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_server_refuses_hs256_tokens() {
    let app = spawn_with_keys("RS256", "rs256", &[]).await;
    let good = app.admin_token();
    assert!(jsonwebtoken::decode_header(&good).unwrap().alg == Algorithm::RS256);
    let data = app.graphql(Some(&good), VIEWER, json!({})).await;
    assert_eq!(data["viewer"]["roles"], json!(["ADMIN"]));

    let public_pem = std::fs::read(fixture("rs256-public.pem")).unwrap();
    assert_refused(
        &app,
        "HS256 with the public key as secret",
        &format!("Bearer {}", hs256(&good_claims(), &public_pem)),
    )
    .await;
    assert_refused(&app, "HS256 with the dev secret", &format!("Bearer {}", hs256(&good_claims(), SECRET.as_bytes())))
        .await;
}

/// EdDSA works as the production alternative to RS256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_tokens_are_accepted_when_configured() {
    let app = spawn_with_keys("EdDSA", "ed25519", &[("VELFERD_ENV", "production")]).await;
    let token = app.admin_token();
    let data = app.graphql(Some(&token), VIEWER, json!({})).await;
    assert_eq!(data["viewer"]["roles"], json!(["ADMIN"]));
    assert_refused(&app, "HS256 on an EdDSA server", &format!("Bearer {}", hs256(&good_claims(), SECRET.as_bytes())))
        .await;
}

on_both_backends! {
    /// Role checks: only an admin of the platform operator registers organisations; anonymous
    /// callers are told to sign in, others that their roles do not allow it. Nothing is
    /// written either way (the operator's own organisation exists from the start).
    async fn only_admins_register_organisations(app) {
        let mutation = "mutation($input: OrganizationCreateInput!) { organizationCreate(input: $input) { organization { id } } }";
        let input = json!({ "input": { "kind": "SUPPLIER", "name": "Evondos Oy", "orgNumber": SUPPLIER_ORG } });
        let (status, body) = app.graphql_raw(None, mutation, input.clone()).await;
        assert_eq!(status, 200);
        assert_eq!(first_error_code(&body), "UNAUTHENTICATED", "{body}");
        for role in Role::ALL.into_iter().filter(|r| *r != Role::Admin) {
            let token = app.token(OPERATOR_ORG, &[role]);
            let (_, body) = app.graphql_raw(Some(&token), mutation, input.clone()).await;
            assert_eq!(first_error_code(&body), "FORBIDDEN", "{role}: {body}");
        }
        let data = app.graphql(None, "{ organizations { totalCount nodes { kind } } }", json!({})).await;
        assert_eq!(data["organizations"], json!({ "totalCount": 1, "nodes": [{ "kind": "OPERATOR" }] }));
    }
}

const REVOKE: &str = "mutation($input: TokenRevokeInput!) { tokenRevoke(input: $input) { revocation { orgNumber subject reason } userErrors { field code message } } }";

on_both_backends! {
    /// A leaked token is revoked before it expires: every token of its subject and organisation
    /// issued up to then is refused (401) on every endpoint, while tokens of other subjects and
    /// organisations, and tokens issued later, work.
    async fn a_revoked_subjects_tokens_are_refused_and_later_ones_work(app) {
        app.create_organization(json!({ "kind": "SUPPLIER", "name": "Leaky AS", "orgNumber": SUPPLIER_ORG })).await;
        let leaked = app.token(SUPPLIER_ORG, &[Role::Integration, Role::Supplier]);
        assert_eq!(app.graphql_raw(Some(&leaked), "{ __typename }", json!({})).await.0, 200);

        let admin = app.admin_token();
        let input = json!({ "orgNumber": SUPPLIER_ORG, "subject": "test-user", "reason": "found in a build log" });
        let data = app.graphql(Some(&admin), REVOKE, json!({ "input": input })).await;
        assert_eq!(data["tokenRevoke"]["userErrors"], json!([]), "{data}");
        assert_eq!(data["tokenRevoke"]["revocation"]["subject"], "test-user");

        let (status, body) = app.graphql_raw(Some(&leaked), "{ __typename }", json!({})).await;
        assert_eq!((status, first_error_code(&body)), (401, "UNAUTHENTICATED"), "{body}");
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("revoked"), "{body}");
        let ingest = app.client.post(app.url("/ingest/some-product")).bearer_auth(&leaked).body("{}").send().await.unwrap();
        assert_eq!(ingest.status(), 401);
        // The same subject of another organisation (the admin's own token) is not affected.
        assert_eq!(app.graphql_raw(Some(&admin), "{ __typename }", json!({})).await.0, 200);
        // A token issued after the revocation works.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let fresh = app.token(SUPPLIER_ORG, &[Role::Integration]);
        assert_eq!(app.graphql_raw(Some(&fresh), "{ __typename }", json!({})).await.0, 200);

        // Only admins revoke; bad input is refused on its field.
        let (_, body) = app.graphql_raw(Some(&fresh), REVOKE, json!({ "input": input })).await;
        assert_eq!(first_error_code(&body), "FORBIDDEN", "{body}");
        for (input, code, field) in [
            (json!({ "orgNumber": "123", "subject": "x" }), "INVALID_ORG_NUMBER", "orgNumber"),
            (json!({ "orgNumber": SUPPLIER_ORG, "subject": "  " }), "INVALID_TEXT", "subject"),
            (json!({ "orgNumber": SUPPLIER_ORG, "subject": "x", "reason": "r".repeat(501) }), "INVALID_TEXT", "reason"),
        ] {
            let data = app.graphql(Some(&admin), REVOKE, json!({ "input": input })).await;
            let error = &data["tokenRevoke"]["userErrors"][0];
            assert_eq!((error["code"].as_str(), &error["field"]), (Some(code), &json!(["input", field])), "{data}");
        }
    }
}

on_both_backends! {
    /// A revocation made on another instance (here: written straight into the shared database)
    /// is applied by this one within seconds, without a restart.
    async fn a_revocation_made_by_another_instance_is_applied_within_seconds(app) {
        use sea_orm::{ActiveModelTrait, Set};
        use velferd::organizations::revocations::token_revocation;
        let token = app.token(SUPPLIER_ORG, &[Role::Integration]);
        assert_eq!(app.graphql_raw(Some(&token), "{ __typename }", json!({})).await.0, 200);
        let now = chrono::Utc::now();
        token_revocation::ActiveModel {
            org_number: Set(SUPPLIER_ORG.into()),
            subject: Set("test-user".into()),
            issued_up_to: Set(now.timestamp()),
            reason: Set(None),
            revoked_by: Set("another instance".into()),
            revoked_at: Set(now.fixed_offset()),
            ..Default::default()
        }
        .insert(app.db().write())
        .await
        .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            if app.graphql_raw(Some(&token), "{ __typename }", json!({})).await.0 == 401 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the revocation was never applied");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }
}
