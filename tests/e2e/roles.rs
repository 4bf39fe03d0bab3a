//! Roles count only for the kind of organisation they are made for (the role × organisation-kind
//! table of docs/authorization.md): every role on every kind, and on an unregistered
//! organisation, through `viewer { roles tokenRoles }` and one role-gated operation per role
//! that gates one; the two attacks of issue 12 (an admin token on an unregistered organisation
//! number, an advisor token on a supplier); tokens naming their organisation by id (`oid`); and
//! revoking one token by its id (`jti`).

use std::collections::BTreeSet;
use std::time::Duration;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use velferd::auth::{OrgRef, Role, TokenSigner};
use velferd::ids::NodeType;

use crate::procurement::{larvik_to_competition, org_number};
use crate::support::*;

const VIEWER: &str = "{ viewer { authenticated roles tokenRoles organization { kind } } }";

/// The kinds of organisation a token can name, and a number nobody registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Operator,
    Municipality,
    Supplier,
    Programme,
    ResponseCentre,
    Unregistered,
}

const KINDS: [Kind; 6] =
    [Kind::Operator, Kind::Municipality, Kind::Supplier, Kind::Programme, Kind::ResponseCentre, Kind::Unregistered];

/// The table of docs/authorization.md, written out again so that the server's own table
/// (`Role::applies_to`) is checked against it, not against itself.
fn allowed(role: Role, kind: Kind) -> bool {
    use Kind as K;
    match (role, kind) {
        (_, K::Unregistered) => false,
        (Role::Integration, _) => true,
        (Role::Admin, K::Operator) | (Role::Advisor, K::Programme) | (Role::Operator, K::ResponseCentre) => true,
        (
            Role::ProcurementOfficer | Role::CaseWorker | Role::PrivacyOfficer | Role::MunicipalityAdmin,
            K::Municipality,
        ) => true,
        (Role::Supplier, K::Supplier) => true,
        (Role::Responder, K::Municipality | K::ResponseCentre) => true,
        _ => false,
    }
}

/// What a refusal of a claimed role says for `kind`.
fn refusal(role: Role, kind: Kind) -> String {
    let phrase = match kind {
        Kind::Operator => "the platform operator",
        Kind::Municipality => "a municipality",
        Kind::Supplier => "a supplier",
        Kind::Programme => "a programme",
        Kind::ResponseCentre => "a response centre",
        Kind::Unregistered => return "organisation not registered".into(),
    };
    format!("role `{role}` does not apply to {phrase}")
}

fn enum_name(role: Role) -> String {
    role.as_str().to_uppercase()
}

/// How a token names its organisation.
#[derive(Clone)]
enum Named {
    Number(String),
    Id(String),
}

/// One organisation of each kind, the programme without an organisation number (named by `oid`).
struct Cast {
    orgs: Vec<(Kind, Named)>,
}

impl Cast {
    async fn new(app: &TestApp) -> Cast {
        app.create_organization(
            json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": MUNICIPALITY_ORG,
            "municipalityNumber": "3805", "county": "Vestfold" }),
        )
        .await;
        app.create_organization(json!({ "kind": "SUPPLIER", "name": "Dignio AS", "orgNumber": SUPPLIER_ORG })).await;
        let centre = org_number(300);
        app.create_organization(
            json!({ "kind": "RESPONSE_CENTRE", "name": "Responssenter Vest", "orgNumber": centre }),
        )
        .await;
        let programme = programme_without_number(app, "Nasjonalt velferdsteknologiprogram").await;
        Cast {
            orgs: vec![
                (Kind::Operator, Named::Number(OPERATOR_ORG.into())),
                (Kind::Municipality, Named::Number(MUNICIPALITY_ORG.into())),
                (Kind::Supplier, Named::Number(SUPPLIER_ORG.into())),
                (Kind::Programme, Named::Id(programme)),
                (Kind::ResponseCentre, Named::Number(centre)),
                (Kind::Unregistered, Named::Number(org_number(301))),
            ],
        }
    }

    fn token(&self, app: &TestApp, kind: Kind, roles: &[Role]) -> String {
        let (_, named) = self.orgs.iter().find(|(k, _)| *k == kind).unwrap();
        match named {
            Named::Number(number) => app.token(number, roles),
            Named::Id(id) => app.token_for_id(id, roles),
        }
    }
}

/// Registers a programme with no organisation number, as the demo data holds them (the API
/// requires a number, so straight into the database); its global id.
async fn programme_without_number(app: &TestApp, name: &str) -> String {
    use sea_orm::{ActiveModelTrait, Set};
    use velferd::organizations::{OrganizationKind, model as organization};
    let row = organization::ActiveModel {
        kind: Set(OrganizationKind::Programme),
        name: Set(name.into()),
        org_number: Set(None),
        created_at: Set(chrono::Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(app.db().write())
    .await
    .unwrap();
    velferd::ids::global_id(NodeType::Organization, row.id)
}

/// Runs the one operation `role` gates (none for `privacy_officer` yet): `Ok` when the role gate let it through (a rule then refuses the
/// deliberately bad input, so nothing is written), `Err((code, message))` when it was refused.
async fn gated(app: &TestApp, role: Role, token: &str) -> Option<Result<(), (String, String)>> {
    let (mutation, field, input) = match role {
        Role::Admin => (
            "mutation($input: OrganizationCreateInput!) { organizationCreate(input: $input) { userErrors { code } } }",
            "organizationCreate",
            json!({ "kind": "SUPPLIER", "name": "Probe AS", "orgNumber": "123" }),
        ),
        Role::Advisor => (
            "mutation($input: LearningNetworkCreateInput!) { learningNetworkCreate(input: $input) { userErrors { code } } }",
            "learningNetworkCreate",
            json!({ "name": " " }),
        ),
        Role::ProcurementOfficer => (
            "mutation($input: ProcurementCreateInput!) { procurementCreate(input: $input) { userErrors { code } } }",
            "procurementCreate",
            json!({ "title": " ", "category": "MEDICATION_SUPPORT" }),
        ),
        Role::CaseWorker => (
            "mutation($input: DeviceRegisterInput!) { deviceRegister(input: $input) { userErrors { code } } }",
            "deviceRegister",
            json!({ "product": "no-such-product", "serial": "X-1" }),
        ),
        Role::Supplier => (
            "mutation($input: SigningKeyRegisterInput!) { signingKeyRegister(input: $input) { userErrors { code } } }",
            "signingKeyRegister",
            json!({ "publicKey": "not a key", "proof": "not a proof" }),
        ),
        Role::Integration => {
            let response =
                app.client.post(app.url("/ingest/no-such-product")).bearer_auth(token).body("{}").send().await.unwrap();
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap();
            return Some(match status {
                404 => Ok(()),
                403 => {
                    Err((first_error_code(&body).to_string(), body["errors"][0]["message"].as_str().unwrap().into()))
                }
                other => panic!("ingest answered {other}: {body}"),
            });
        }
        Role::Operator => (
            "mutation($input: AlertInput!) { alertAcknowledge(input: $input) { userErrors { code } } }",
            "alertAcknowledge",
            json!({ "alertId": "no-such-alert" }),
        ),
        Role::Responder => (
            "mutation($input: AlertInput!) { alertAccept(input: $input) { userErrors { code } } }",
            "alertAccept",
            json!({ "alertId": "no-such-alert" }),
        ),
        Role::MunicipalityAdmin => (
            "mutation($input: AlertEscalationSetInput!) { alertEscalationSet(input: $input) { userErrors { code } } }",
            "alertEscalationSet",
            json!({ "severity": "CRITICAL", "acknowledgeWithinSeconds": 0, "acceptWithinSeconds": 60 }),
        ),
        Role::PrivacyOfficer => return None,
    };
    let (status, body) = app.graphql_raw(Some(token), mutation, json!({ "input": input })).await;
    assert_eq!(status, 200, "{role}: {body}");
    Some(match body.get("errors") {
        None => {
            let errors = &body["data"][field]["userErrors"];
            assert!(
                errors.as_array().is_some_and(|e| !e.is_empty()),
                "{role}: the probe must be refused by a rule: {body}"
            );
            Ok(())
        }
        Some(errors) => Err((first_error_code(&body).to_string(), errors[0]["message"].as_str().unwrap().to_string())),
    })
}

on_both_backends! {
    /// Every role on every kind of organisation and on an unregistered one: `viewer { roles }`
    /// holds the role exactly where the table allows it, `tokenRoles` always, and the operation
    /// the role gates runs there and is refused everywhere else with `FORBIDDEN` saying why.
    async fn every_role_counts_only_for_the_kinds_of_organisation_the_table_allows(app) {
        let cast = Cast::new(&app).await;
        let mut probed = 0;
        for kind in KINDS {
            for role in Role::ALL {
                let token = cast.token(&app, kind, &[role]);
                let data = app.graphql(Some(&token), VIEWER, json!({})).await;
                let expected = if allowed(role, kind) { json!([enum_name(role)]) } else { json!([]) };
                assert_eq!(data["viewer"]["authenticated"], true, "{role} on {kind:?}");
                assert_eq!(data["viewer"]["roles"], expected, "{role} on {kind:?}: {data}");
                assert_eq!(data["viewer"]["tokenRoles"], json!([enum_name(role)]), "{role} on {kind:?}");
                assert_eq!(data["viewer"]["organization"].is_null(), kind == Kind::Unregistered, "{data}");

                let Some(outcome) = gated(&app, role, &token).await else { continue };
                probed += 1;
                if allowed(role, kind) {
                    assert_eq!(outcome, Ok(()), "{role} on {kind:?}");
                } else {
                    let (code, message) = outcome.expect_err(&format!("{role} on {kind:?} must be refused"));
                    assert_eq!(code, "FORBIDDEN", "{role} on {kind:?}");
                    assert!(message.starts_with(&refusal(role, kind)), "{role} on {kind:?}: {message}");
                }
            }
        }
        // Every role but `privacy_officer` gates an operation.
        assert_eq!(probed, (Role::ALL.len() - 1) * KINDS.len());

        // A token with roles for several kinds holds those that apply; the refusal names the one
        // asked for.
        let token = cast.token(&app, Kind::Municipality, &[Role::CaseWorker, Role::Admin, Role::Supplier]);
        let data = app.graphql(Some(&token), VIEWER, json!({})).await;
        assert_eq!(data["viewer"]["roles"], json!(["CASE_WORKER"]));
        assert_eq!(data["viewer"]["tokenRoles"], json!(["ADMIN", "CASE_WORKER", "SUPPLIER"]));
        let refused = gated(&app, Role::Admin, &token).await.unwrap().unwrap_err();
        assert_eq!(refused, ("FORBIDDEN".into(), "role `admin` does not apply to a municipality".into()));
        // A role the token does not claim at all is refused as before.
        let refused = gated(&app, Role::Supplier, &cast.token(&app, Kind::Supplier, &[Role::Integration])).await.unwrap();
        let (code, message) = refused.unwrap_err();
        assert_eq!(code, "FORBIDDEN");
        assert!(message.contains("needs `supplier`"), "{message}");
    }
}

on_both_backends! {
    /// A token of an unregistered organisation is signed in but reads only what anonymous
    /// callers read: a procurement without a notice stays hidden, the inside of a public one
    /// answers `FORBIDDEN` "organisation not registered".
    async fn a_token_of_an_unregistered_organisation_reads_as_anonymous_callers_do(app) {
        app.create_organization(json!({ "kind": "MUNICIPALITY", "name": "Larvik kommune", "orgNumber": MUNICIPALITY_ORG,
            "municipalityNumber": "3805", "county": "Vestfold" }))
            .await;
        let officer = app.token(MUNICIPALITY_ORG, &[Role::ProcurementOfficer]);
        let data = app.graphql(Some(&officer),
            "mutation { procurementCreate(input: { title: \"Trygghetsalarmer\", category: SAFETY_ALARM }) { procurement { id } userErrors { code } } }",
            json!({})).await;
        assert_eq!(data["procurementCreate"]["userErrors"], json!([]), "{data}");

        let stranger = app.token(&org_number(301), &[Role::ProcurementOfficer, Role::Admin]);
        let query = "{ viewer { authenticated orgNumber } procurements { totalCount } organizations { totalCount } }";
        let anonymous = app.graphql(None, query, json!({})).await;
        let unregistered = app.graphql(Some(&stranger), query, json!({})).await;
        assert_eq!(unregistered["viewer"], json!({ "authenticated": true, "orgNumber": org_number(301) }));
        assert_eq!(unregistered["procurements"], anonymous["procurements"]);
        assert_eq!(unregistered["procurements"]["totalCount"], 0);
        assert_eq!(unregistered["organizations"], anonymous["organizations"]);
        // The registered officer sees it: the count above is not empty for want of data.
        let own = app.graphql(Some(&officer), query, json!({})).await;
        assert_eq!(own["procurements"]["totalCount"], 1);

        for read in ["{ devices { totalCount } }", "{ learningArenas { totalCount } }"] {
            let (status, body) = app.graphql_raw(Some(&stranger), read, json!({})).await;
            assert_eq!(status, 200);
            assert_eq!(first_error_code(&body), "FORBIDDEN", "{read}: {body}");
            assert_eq!(body["errors"][0]["message"], "organisation not registered", "{read}: {body}");
        }
    }
}

on_both_backends! {
    /// Issue 12, finding 5: an `admin` token for an organisation number nobody registered
    /// created an organisation and read every device, event and dead letter. Now it holds no
    /// role: it creates nothing and reads none of them, while the operator's admin does.
    async fn an_admin_token_of_an_unregistered_organisation_creates_and_reads_nothing(app) {
        let (fleet, _) = crate::devices::fleet_with_an_event_and_a_dead_letter(&app).await;

        let reads = "{ devices { totalCount } deviceEvents { totalCount } deadLetters { totalCount nodes { bodyText } } }";
        let operator = app.graphql(Some(&app.admin_token()), reads, json!({})).await;
        assert!(operator["devices"]["totalCount"].as_i64().unwrap() > 0, "{operator}");
        assert!(operator["deviceEvents"]["totalCount"].as_i64().unwrap() > 0, "{operator}");
        assert_eq!(operator["deadLetters"]["totalCount"], 1, "{operator}");

        let before = app.graphql(None, "{ organizations { totalCount } }", json!({})).await;
        // An unregistered number, and a municipality other than the devices' owner.
        for org in [org_number(777), fleet.other_municipality.clone()] {
            let admin = app.token(&org, &[Role::Admin]);
            let (_, body) = app.graphql_raw(Some(&admin),
                "mutation { organizationCreate(input: { kind: SUPPLIER, name: \"Squatter AS\", orgNumber: \"923609024\" }) { organization { id } } }",
                json!({})).await;
            assert_eq!(first_error_code(&body), "FORBIDDEN", "{body}");
            assert!(body["data"]["organizationCreate"].is_null(), "{body}");
            for read in ["{ devices { totalCount } }", "{ deviceEvents { totalCount } }", "{ deadLetters { totalCount nodes { bodyText } } }"] {
                let (_, body) = app.graphql_raw(Some(&admin), read, json!({})).await;
                let refused = first_error_code(&body) == "FORBIDDEN"
                    || body["data"].as_object().is_some_and(|d| d.values().all(|c| c["totalCount"] == 0));
                assert!(refused, "{org}: {read}: {body}");
            }
        }
        // The unregistered one is told why.
        let (_, body) = app.graphql_raw(Some(&app.token(&org_number(777), &[Role::Admin])), "{ deadLetters { totalCount } }", json!({})).await;
        assert_eq!(body["errors"][0]["message"], "organisation not registered", "{body}");
        assert_eq!(app.graphql(None, "{ organizations { totalCount } }", json!({})).await, before);
    }
}

on_both_backends! {
    /// Issue 12, finding 5: an `advisor` token on a supplier read a competitor's solution
    /// sketches and every members-only experience report. On a supplier `advisor` counts for
    /// nothing: the supplier sees its own sketch only and no members-only report, while an
    /// adviser of a programme sees them all.
    async fn an_advisor_token_on_a_supplier_reads_no_competitors_sketch_nor_members_only_report(app) {
        let story = larvik_to_competition(&app, 3600).await;
        let data = app.graphql(Some(&story.lead_po),
            "mutation($input: ExperienceReportPublishInput!) { experienceReportPublish(input: $input) { userErrors { code message } } }",
            json!({ "input": { "procurementId": story.procurement, "title": "Interne erfaringer", "public": false,
                "summary": "Bare for kommunene.", "lessons": [{ "phase": "NEEDS", "text": "Start tidlig." }] } })).await;
        assert_eq!(data["experienceReportPublish"]["userErrors"], json!([]), "{data}");

        let programme = org_number(200);
        app.create_organization(json!({ "kind": "PROGRAMME", "name": "Leverandørutviklingsprogrammet", "orgNumber": programme })).await;
        let query = "query($id: ID!) { node(id: $id) { ... on Procurement { solutionSketches { nodes { title } } } }
                     experienceReports { nodes { title } } }";
        let read = async |token: &str| {
            let data = app.graphql(Some(token), query, json!({ "id": story.procurement })).await;
            let titles = |list: &Value| -> Vec<String> {
                let mut t: Vec<String> = list.as_array().unwrap().iter().map(|n| n["title"].as_str().unwrap().to_string()).collect();
                t.sort();
                t
            };
            (titles(&data["node"]["solutionSketches"]["nodes"]), titles(&data["experienceReports"]["nodes"]))
        };
        let adviser = app.token(&programme, &[Role::Advisor]);
        assert_eq!(read(&adviser).await, (vec!["Dignio Prescriba".into(), "Evondos E300".into()], vec!["Interne erfaringer".into()]));

        let dignio_org = org_number(100);
        for roles in [&[Role::Advisor][..], &[Role::Advisor, Role::Supplier], &[Role::Advisor, Role::Admin, Role::Supplier]] {
            let dignio = app.token(&dignio_org, roles);
            let (sketches, reports) = read(&dignio).await;
            assert_eq!(sketches, ["Dignio Prescriba"], "{roles:?}: its own sketch only");
            assert!(reports.is_empty(), "{roles:?}: {reports:?}");
        }
    }
}

on_both_backends! {
    /// Organisations without an organisation number are named by their Velferd id (`oid`): a
    /// programme's adviser runs a learning network. A token naming both `org` and `oid`, neither,
    /// or an `oid` that is no organisation's, is refused with 401.
    async fn a_programme_without_a_number_acts_through_an_oid_token(app) {
        let programme = programme_without_number(&app, "Nasjonalt velferdsteknologiprogram").await;
        let adviser = app.token_for_id(&programme, &[Role::Advisor]);
        let data = app.graphql(Some(&adviser), "{ viewer { orgNumber roles organization { id kind } } }", json!({})).await;
        assert_eq!(data["viewer"], json!({ "orgNumber": null, "roles": ["ADVISOR"], "organization": { "id": programme, "kind": "PROGRAMME" } }));
        let data = app.graphql(Some(&adviser),
            "mutation { learningNetworkCreate(input: { name: \"Velferdsteknologi Vest\" }) { learningNetwork { coordinator { id } } userErrors { code } } }",
            json!({})).await;
        assert_eq!(data["learningNetworkCreate"]["learningNetwork"]["coordinator"]["id"], programme.as_str(), "{data}");

        // The operator can be named by id as well as by number.
        let operator = app.graphql(None, &format!("{{ organization(orgNumber: \"{OPERATOR_ORG}\") {{ id kind }} }}"), json!({})).await;
        assert_eq!(operator["organization"]["kind"], "OPERATOR");
        let admin = app.token_for_id(operator["organization"]["id"].as_str().unwrap(), &[Role::Admin]);
        let data = app.graphql(Some(&admin), "{ viewer { orgNumber roles } }", json!({})).await;
        assert_eq!(data["viewer"], json!({ "orgNumber": OPERATOR_ORG, "roles": ["ADMIN"] }));

        let now = jsonwebtoken::get_current_timestamp();
        let claims = |org: Option<&str>, oid: Option<&str>| {
            let mut claims = json!({ "sub": "kari", "roles": ["advisor"], "iss": "velferd", "aud": "velferd", "iat": now, "exp": now + 600 });
            if let Some(org) = org { claims["org"] = json!(org); }
            if let Some(oid) = oid { claims["oid"] = json!(oid); }
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
        };
        let procurement_id = velferd::ids::global_id(NodeType::Procurement, 1);
        for (case, token, says) in [
            ("both", claims(Some(MUNICIPALITY_ORG), Some(&programme)), "twice"),
            ("neither", claims(None, None), "no organisation"),
            ("another type's id", claims(None, Some(&procurement_id)), "not an organisation id"),
            ("garbage", claims(None, Some("not-an-id")), "not an organisation id"),
        ] {
            let (status, body) = app.graphql_raw(Some(&token), "{ viewer { authenticated } }", json!({})).await;
            assert_eq!((status, first_error_code(&body)), (401, "UNAUTHENTICATED"), "{case}: {body}");
            assert!(body["errors"][0]["message"].as_str().unwrap().contains(says), "{case}: {body}");
        }
        // An `oid` naming no registered organisation is signed in without roles.
        let nobody = app.token_for_id(&velferd::ids::global_id(NodeType::Organization, 999_999), &[Role::Advisor]);
        let data = app.graphql(Some(&nobody), "{ viewer { authenticated roles tokenRoles } }", json!({})).await;
        assert_eq!(data["viewer"], json!({ "authenticated": true, "roles": [], "tokenRoles": ["ADVISOR"] }));
    }
}

const REVOKE: &str = "mutation($input: TokenRevokeInput!) { tokenRevoke(input: $input) { revocation { orgNumber organizationId subject tokenId } userErrors { field code message } } }";

fn mint(app: &TestApp, subject: &str, org: OrgRef, roles: &[Role]) -> (String, String) {
    let signer = TokenSigner::new(&app.settings.jwt).unwrap();
    signer.mint_with_id(subject, org, roles.iter().copied().collect::<BTreeSet<_>>(), Duration::from_secs(600))
}

async fn status(app: &TestApp, token: &str) -> (u16, String) {
    let (status, body) = app.graphql_raw(Some(token), "{ __typename }", json!({})).await;
    (status, body["errors"][0]["message"].as_str().unwrap_or_default().to_string())
}

on_both_backends! {
    /// One leaked token is revoked by its id (`jti`) and the subject's other tokens work; a
    /// subject's revocation by organisation id covers tokens naming the organisation by
    /// number and by id alike.
    async fn one_token_is_revoked_by_its_id_and_a_subject_by_organisation_id(app) {
        let supplier = app.create_organization(json!({ "kind": "SUPPLIER", "name": "Dignio AS", "orgNumber": SUPPLIER_ORG })).await;
        let row = velferd::ids::row_id(&supplier, NodeType::Organization).unwrap();
        let number: velferd::organizations::OrgNumber = SUPPLIER_ORG.parse().unwrap();
        let (leaked, leaked_id) = mint(&app, "robot", OrgRef::Number(number), &[Role::Integration]);
        let (sibling, sibling_id) = mint(&app, "robot", OrgRef::Number(number), &[Role::Integration]);
        assert_ne!(leaked_id, sibling_id, "every token has its own id");
        assert_eq!(status(&app, &leaked).await.0, 200);

        let admin = app.admin_token();
        let data = app.graphql(Some(&admin), REVOKE, json!({ "input": { "tokenId": leaked_id, "reason": "in a log" } })).await;
        assert_eq!(data["tokenRevoke"]["userErrors"], json!([]), "{data}");
        assert_eq!(data["tokenRevoke"]["revocation"]["tokenId"], leaked_id.as_str());
        let (code, message) = status(&app, &leaked).await;
        assert_eq!(code, 401);
        assert!(message.contains("revoked"), "{message}");
        assert_eq!(status(&app, &sibling).await.0, 200, "the subject's other token works");
        let ingest = app.client.post(app.url("/ingest/some-product")).bearer_auth(&leaked).body("{}").send().await.unwrap();
        assert_eq!(ingest.status(), 401);

        // By organisation id: tokens naming it by number and by id are both refused.
        let (by_id, _) = mint(&app, "robot", OrgRef::Id(row), &[Role::Integration]);
        assert_eq!(status(&app, &by_id).await.0, 200);
        let data = app.graphql(Some(&admin), REVOKE, json!({ "input": { "organizationId": supplier, "subject": "robot" } })).await;
        assert_eq!(data["tokenRevoke"]["revocation"], json!({ "orgNumber": SUPPLIER_ORG, "organizationId": supplier, "subject": "robot", "tokenId": null }), "{data}");
        assert_eq!(status(&app, &by_id).await.0, 401);
        assert_eq!(status(&app, &sibling).await.0, 401);
        // Another subject of the same organisation is not affected.
        let (other, _) = mint(&app, "another-robot", OrgRef::Id(row), &[Role::Integration]);
        assert_eq!(status(&app, &other).await.0, 200);

        // A revocation by number covers tokens naming the organisation by id, too.
        let (second, _) = mint(&app, "second-robot", OrgRef::Id(row), &[Role::Integration]);
        let data = app.graphql(Some(&admin), REVOKE, json!({ "input": { "orgNumber": SUPPLIER_ORG, "subject": "second-robot" } })).await;
        assert_eq!(data["tokenRevoke"]["userErrors"], json!([]), "{data}");
        assert_eq!(status(&app, &second).await.0, 401);

        // Revocations are read back from the database by a restarted server.
        let app = app.respawn_with(&[]).await;
        assert_eq!(status(&app, &leaked).await.0, 401);
        assert_eq!(status(&app, &by_id).await.0, 401);
        assert_eq!(status(&app, &other).await.0, 200);

        let admin = app.admin_token();
        for (input, code, field) in [
            (json!({ "tokenId": "x", "subject": "robot", "orgNumber": SUPPLIER_ORG }), "INVALID_REVOCATION", "tokenId"),
            (json!({ "subject": "robot" }), "INVALID_REVOCATION", "orgNumber"),
            (json!({ "subject": "robot", "orgNumber": SUPPLIER_ORG, "organizationId": supplier }), "INVALID_REVOCATION", "orgNumber"),
            (json!({ "subject": "robot", "organizationId": velferd::ids::global_id(NodeType::Organization, 999_999) }), "NOT_FOUND", "organizationId"),
            (json!({ "tokenId": " " }), "INVALID_TEXT", "tokenId"),
        ] {
            let data = app.graphql(Some(&admin), REVOKE, json!({ "input": input })).await;
            let error = &data["tokenRevoke"]["userErrors"][0];
            assert_eq!((error["code"].as_str(), &error["field"]), (Some(code), &json!(["input", field])), "{input}: {data}");
        }
    }
}

const OPERATORS: &str = "{ organizations(filter: { kind: OPERATOR }) { totalCount nodes { name orgNumber } } }";

on_both_backends! {
    /// The platform operator is configured and created at start, once; `organizationCreate`
    /// refuses the kind. A restart renames it as configured; a configured number other than
    /// the registered one, or one another organisation holds, stops the start.
    async fn the_platform_operator_is_configured_created_at_start_and_never_registered(app) {
        let data = app.graphql(None, OPERATORS, json!({})).await;
        assert_eq!(data["organizations"], json!({ "totalCount": 1, "nodes": [{ "name": "Velferd platform operator", "orgNumber": OPERATOR_ORG }] }));
        let data = app.graphql(Some(&app.admin_token()),
            "mutation { organizationCreate(input: { kind: OPERATOR, name: \"Second operator\", orgNumber: \"923609016\" }) { organization { id } userErrors { field code } } }",
            json!({})).await;
        assert_eq!(data["organizationCreate"], json!({ "organization": null, "userErrors": [{ "field": ["input", "kind"], "code": "OPERATOR_RESERVED" }] }));

        let app = app.respawn_with(&[("VELFERD_OPERATOR_NAME", "Velferd drift")]).await;
        let data = app.graphql(None, OPERATORS, json!({})).await;
        assert_eq!(data["organizations"], json!({ "totalCount": 1, "nodes": [{ "name": "Velferd drift", "orgNumber": OPERATOR_ORG }] }));
        app.create_organization(json!({ "kind": "SUPPLIER", "name": "Dignio AS", "orgNumber": SUPPLIER_ORG })).await;

        for (number, says) in [(org_number(400), "registered with 991000003"), (SUPPLIER_ORG.to_string(), "already registered to Dignio AS")] {
            let settings = velferd::config::Settings::from_pairs([
                ("VELFERD_DATABASE_URL", app.settings.database_url.as_str()),
                ("VELFERD_BIND", "127.0.0.1:0"),
                ("VELFERD_JWT_SECRET", SECRET),
                ("VELFERD_AUDIT_KEY", crate::support::AUDIT_KEY),
                ("VELFERD_OPERATOR_ORG_NUMBER", number.as_str()),
            ])
            .unwrap();
            let error = velferd::start(&settings, false, 1).await.err().expect("the start is refused").to_string();
            assert!(error.contains("VELFERD_OPERATOR_ORG_NUMBER") && error.contains(says), "{error}");
        }
        let data = app.graphql(None, OPERATORS, json!({})).await;
        assert_eq!(data["organizations"]["totalCount"], 1);
    }
}

/// An operator set up without an organisation number is named by `oid`, and gets the number
/// once one is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_without_a_number_gets_the_configured_one() {
    let options = Options { pairs: vec![("VELFERD_OPERATOR_ORG_NUMBER", String::new())], demo: false };
    let app = TestApp::spawn_with(Backend::Sqlite, options).await.unwrap();
    let data =
        app.graphql(None, "{ organizations(filter: { kind: OPERATOR }) { nodes { id orgNumber } } }", json!({})).await;
    let operator = &data["organizations"]["nodes"][0];
    assert_eq!(operator["orgNumber"], Value::Null);
    let admin = app.token_for_id(operator["id"].as_str().unwrap(), &[Role::Admin]);
    let data = app.graphql(Some(&admin), "{ viewer { roles } }", json!({})).await;
    assert_eq!(data["viewer"]["roles"], json!(["ADMIN"]));

    let app = app.respawn_with(&[("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR_ORG)]).await;
    let data = app.graphql(None, OPERATORS, json!({})).await;
    assert_eq!(data["organizations"]["nodes"][0]["orgNumber"], OPERATOR_ORG);
    // Tokens naming it either way count.
    for token in [admin, app.admin_token()] {
        let data = app.graphql(Some(&token), "{ viewer { roles } }", json!({})).await;
        assert_eq!(data["viewer"]["roles"], json!(["ADMIN"]));
    }
}
