//! Who is asking: bearer JWTs checked with `jsonwebtoken`, turned into an [`Actor`], and the
//! [`Grant`] it has once its organisation is looked up.
//!
//! A request without a token is anonymous and sees public data only. A token that is present
//! but fails any check is refused (HTTP 401, `UNAUTHENTICATED`) — never downgraded to anonymous,
//! because a client that sent credentials expects them to count.
//!
//! A role counts only for the kinds of organisation it is made for ([`Role::applies_to`], the
//! table in `docs/authorization.md`): a token's claimed roles are kept private to this module,
//! and every authorization decision reads the effective roles of [`Grant`], computed once per
//! request from the claimed roles and the registered organisation's kind.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{JwtKey, JwtSettings};
use crate::errors::ApiError;
use crate::ids::NodeType;
use crate::organizations::{OrgNumber, OrganizationKind, model as organization};

/// What a person or machine may do. Authorization combines a role with the organisation the
/// token names: a case worker sees only their own municipality's recipients. A role counts
/// only for the kinds of organisation it is made for (see `docs/authorization.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Operates the platform: registers organisations, activates adapters. The platform
    /// operator's organisation only.
    Admin,
    /// Programme adviser (the supplier-development or national welfare-technology programme).
    Advisor,
    /// Runs procurements for a municipality.
    ProcurementOfficer,
    /// Assesses service recipients and their devices for a municipality.
    CaseWorker,
    /// Response-centre operator handling alerts.
    Operator,
    /// Reads the audit log of recipient data.
    PrivacyOfficer,
    /// A supplier's staff: tenders, adapters, own devices.
    Supplier,
    /// A machine token for an organisation's own integration (ingest, exports).
    Integration,
    /// Manages a municipality's own settings (escalation lines, webhooks, the journal-system
    /// URI, benefit assumptions): today the alert escalation lines and service agreements.
    MunicipalityAdmin,
    /// Goes out to the service recipient when an alert is handed over (utrykning): the
    /// municipality's home-care staff, or a response centre's own mobile team. Sees and
    /// accepts the alerts handed to its organisation.
    Responder,
}

impl Role {
    pub const ALL: [Role; 10] = [
        Role::Admin,
        Role::Advisor,
        Role::ProcurementOfficer,
        Role::CaseWorker,
        Role::Operator,
        Role::PrivacyOfficer,
        Role::Supplier,
        Role::Integration,
        Role::MunicipalityAdmin,
        Role::Responder,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Advisor => "advisor",
            Role::ProcurementOfficer => "procurement_officer",
            Role::CaseWorker => "case_worker",
            Role::Operator => "operator",
            Role::PrivacyOfficer => "privacy_officer",
            Role::Supplier => "supplier",
            Role::Integration => "integration",
            Role::MunicipalityAdmin => "municipality_admin",
            Role::Responder => "responder",
        }
    }

    /// Whether the role counts for an organisation of `kind`: the role × organisation-kind table
    /// of `docs/authorization.md`. Exhaustive on both, so a new role or kind must be placed.
    pub fn applies_to(self, kind: OrganizationKind) -> bool {
        use OrganizationKind as K;
        match self {
            Role::Admin => kind == K::Operator,
            Role::Advisor => kind == K::Programme,
            Role::Operator => kind == K::ResponseCentre,
            Role::ProcurementOfficer | Role::CaseWorker | Role::PrivacyOfficer | Role::MunicipalityAdmin => {
                kind == K::Municipality
            }
            Role::Supplier => kind == K::Supplier,
            // Home-care staff of a municipality, or a response centre's own mobile team.
            Role::Responder => matches!(kind, K::Municipality | K::ResponseCentre),
            // Municipalities' own systems, response centres, suppliers and programmes all integrate.
            Role::Integration => match kind {
                K::Municipality | K::Supplier | K::Programme | K::ResponseCentre | K::Operator => true,
            },
        }
    }
}

/// "a municipality", for messages that say why a role does not count.
fn kind_phrase(kind: OrganizationKind) -> &'static str {
    match kind {
        OrganizationKind::Municipality => "a municipality",
        OrganizationKind::Supplier => "a supplier",
        OrganizationKind::Programme => "a programme",
        OrganizationKind::ResponseCentre => "a response centre",
        OrganizationKind::Operator => "the platform operator",
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            let known: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown role {s:?}; known roles: {}", known.join(", "))
        })
    }
}

/// The claims Velferd issues and accepts. `exp`, `iss`, `aud` and `sub` are required, and
/// exactly one of `org` and `oid`; `nbf` is checked when present.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// The organisation number of the organisation the subject acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<OrgNumber>,
    /// The organisation's Velferd id (`Organization.id`), for organisations without an
    /// organisation number: programmes, foreign suppliers, the platform operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oid: Option<String>,
    pub roles: BTreeSet<Role>,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub iat: u64,
    /// The token's own id: `tokenRevoke` can revoke this one token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
}

/// The organisation a token names: by its organisation number (`org`) or its Velferd row, as
/// decoded from the `oid` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrgRef {
    Number(OrgNumber),
    Id(i64),
}

impl OrgRef {
    pub fn as_string(&self) -> String {
        self.to_string()
    }
}

/// The organisation number, or the global id (`Organization.id`) as the token carried it.
impl fmt::Display for OrgRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrgRef::Number(number) => write!(f, "{number}"),
            OrgRef::Id(row) => f.write_str(&crate::ids::global_id(NodeType::Organization, *row)),
        }
    }
}

/// Longest `jti` accepted (the width of its revocation column).
pub const MAX_TOKEN_ID_CHARS: usize = 200;

/// An authenticated subject acting for an organisation. The roles its token claims are private
/// to this module: what the subject may do is [`Grant`]'s to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub org: OrgRef,
    claimed: BTreeSet<Role>,
    /// The token's `exp` (seconds since the Unix epoch): a WebSocket signed in with it ends then
    /// (plus [`TokenVerifier::leeway`]).
    pub expires_at: u64,
    /// The token's `iat`: a revocation covers the tokens issued up to its time.
    pub issued_at: u64,
    /// The token's `jti`, when it has one.
    pub token_id: Option<String>,
}

/// Who is asking, as every resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Anonymous,
    Authenticated(Principal),
}

impl Actor {
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Actor::Anonymous => None,
            Actor::Authenticated(p) => Some(p),
        }
    }
}

/// What the caller may do: its identity, its registered organisation and its effective roles —
/// the token's roles that apply to that organisation's kind. Built once per request (and per
/// WebSocket connection) by [`Grant::resolve`], the one place roles are computed; a token of
/// an unregistered organisation is authenticated but has no role.
#[derive(Debug, Clone)]
pub struct Grant {
    actor: Actor,
    organization: Option<organization::Model>,
    roles: BTreeSet<Role>,
}

impl Grant {
    pub fn anonymous() -> Grant {
        Grant { actor: Actor::Anonymous, organization: None, roles: BTreeSet::new() }
    }

    /// Looks up the organisation the token names and keeps the claimed roles that apply to it.
    pub async fn resolve<C: sea_orm::ConnectionTrait>(db: &C, actor: Actor) -> Result<Grant, ApiError> {
        let Some(principal) = actor.principal() else { return Ok(Grant::anonymous()) };
        let organization = match principal.org {
            OrgRef::Number(number) => crate::organizations::find_by_org_number(db, number).await?,
            OrgRef::Id(row) => crate::organizations::find_by_id(db, row).await?,
        };
        Ok(Grant::with_organization(actor, organization))
    }

    /// The grant [`Grant::resolve`] would build, when `organization` (read by the caller for
    /// its own purpose, e.g. a product's supplier) is the one the token names; `None` when it
    /// is not, or the caller is anonymous. Saves a lookup on paths that read the organisation
    /// anyway (every ingest request).
    pub fn of_named_organization(actor: Actor, organization: &organization::Model) -> Option<Grant> {
        let names_it = match actor.principal()?.org {
            OrgRef::Number(number) => organization.org_number.as_deref() == Some(number.to_string().as_str()),
            OrgRef::Id(row) => organization.id == row,
        };
        names_it.then(|| Grant::with_organization(actor, Some(organization.clone())))
    }

    /// The claimed roles that apply to `organization`'s kind; none for an unregistered one.
    fn with_organization(actor: Actor, organization: Option<organization::Model>) -> Grant {
        let roles = match (actor.principal(), &organization) {
            (Some(principal), Some(org)) => {
                principal.claimed.iter().copied().filter(|r| r.applies_to(org.kind)).collect()
            }
            _ => BTreeSet::new(),
        };
        Grant { actor, organization, roles }
    }

    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    pub fn principal(&self) -> Option<&Principal> {
        self.actor.principal()
    }

    /// The registered organisation the caller acts for.
    pub fn organization(&self) -> Option<&organization::Model> {
        self.organization.as_ref()
    }

    /// Whether the caller holds `role` for its organisation.
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The effective roles.
    pub fn roles(&self) -> impl Iterator<Item = Role> + '_ {
        self.roles.iter().copied()
    }

    /// What this grant lets its holder see, written out: anonymous or not, the organisation
    /// and the effective and claimed roles — everything but who holds it and which token. Two
    /// grants with the same rights are shown the same by every read, which decides by the
    /// organisation and roles alone; only the audit log names the subject, and what was served
    /// while recording an access is never shared ([`crate::audit::noting_records`]).
    pub fn rights(&self) -> String {
        let roles = |roles: &mut dyn Iterator<Item = Role>| roles.map(Role::as_str).collect::<Vec<_>>().join(",");
        match self.principal() {
            None => "anonymous".to_string(),
            Some(principal) => format!(
                "org={:?} roles={} claimed={}",
                self.organization.as_ref().map(|o| o.id),
                roles(&mut self.roles()),
                roles(&mut principal.claimed.iter().copied()),
            ),
        }
    }

    /// The roles the token claims, to explain a refusal to the caller (`viewer { tokenRoles }`);
    /// never to decide one.
    pub fn token_roles(&self) -> Vec<Role> {
        self.principal().map(|p| p.claimed.iter().copied().collect()).unwrap_or_default()
    }

    /// The caller, if it holds `role`; otherwise why not: anonymous callers are told to
    /// authenticate, an unregistered organisation that it is not registered, a role claimed for
    /// the wrong kind of organisation that it does not apply there.
    pub fn require(&self, role: Role, what: &str) -> Result<&Principal, ApiError> {
        self.require_any(&[role], what)
    }

    /// The caller, if it holds one of `roles`; otherwise why not, as [`Grant::require`].
    pub fn require_any(&self, roles: &[Role], what: &str) -> Result<&Principal, ApiError> {
        let Some(principal) = self.principal() else {
            return Err(ApiError::Unauthenticated(format!("sign in with a token to {what}")));
        };
        if roles.iter().any(|r| self.roles.contains(r)) {
            return Ok(principal);
        }
        let Some(org) = &self.organization else {
            return Err(ApiError::Forbidden("organisation not registered".into()));
        };
        if let Some(role) = roles.iter().find(|r| principal.claimed.contains(r)) {
            return Err(ApiError::Forbidden(format!("role `{role}` does not apply to {}", kind_phrase(org.kind))));
        }
        let needed: Vec<String> = roles.iter().map(|r| format!("`{r}`")).collect();
        Err(ApiError::Forbidden(format!("your roles do not allow you to {what} (needs {})", needed.join(" or "))))
    }

    /// For reads open to every signed-in organisation: its registered organisation, or
    /// `UNAUTHENTICATED` ("sign in to see {what}") for anonymous callers and `FORBIDDEN`
    /// ("organisation not registered") for a token of an unregistered one, which sees only
    /// what anonymous callers see.
    pub fn require_registered(&self, what: &str) -> Result<&organization::Model, ApiError> {
        match (&self.actor, &self.organization) {
            (_, Some(org)) => Ok(org),
            (Actor::Anonymous, None) => Err(ApiError::Unauthenticated(format!("sign in to see {what}"))),
            (Actor::Authenticated(_), None) => Err(ApiError::Forbidden("organisation not registered".into())),
        }
    }

    /// The caller of a mutation that needs `role`, with its registered organisation.
    pub fn caller(&self, role: Role, what: &str) -> Result<Caller, ApiError> {
        let principal = self.require(role, what)?;
        let org = self.organization.clone().ok_or_else(|| ApiError::internal("a role without an organisation"))?;
        let org_number = org.org_number.clone().unwrap_or_else(|| principal.org.to_string());
        Ok(Caller { subject: principal.subject.clone(), org_number, org, role })
    }
}

/// The authenticated caller of a mutation, with its registered organisation: what the rules of
/// every area judge a change by.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    /// The organisation's number, or its global id when it has none.
    pub org_number: String,
    pub org: crate::organizations::model::Model,
    /// The role the caller acts under here: what the audit log records.
    pub role: Role,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// Largest `Authorization` value read: Velferd's tokens are a few hundred bytes, and a larger
/// one would be decoded and its signature computed before it could be refused.
pub const MAX_AUTHORIZATION_BYTES: usize = 8 * 1024;

/// Checks bearer tokens against the configured key, issuer and audience, with the algorithm
/// pinned by configuration (a token's own `alg` header is never trusted to choose).
#[derive(Clone)]
pub struct TokenVerifier {
    key: DecodingKey,
    validation: Validation,
    leeway: Duration,
    revocations: Option<std::sync::Arc<crate::organizations::revocations::Revocations>>,
    /// Shared by the verifier's clones (every worker's).
    verified: std::sync::Arc<VerifiedTokens>,
}

/// Tokens whose signature and claims have been checked, by their text. Checking an EdDSA
/// signature takes tens of microseconds — about a twentieth of a single ingest message's CPU —
/// and a supplier's platform or a portal sends the same token with every request. Only tokens
/// that passed are kept, so the set holds no more than what the issuer signed and callers use;
/// it is emptied when it reaches [`MAX_VERIFIED_TOKENS`]. What changes with time is checked at
/// every use, as for a token seen the first time: expiry and `nbf` (with the same leeway), and
/// revocation.
#[derive(Default)]
struct VerifiedTokens {
    tokens: std::sync::Mutex<std::collections::HashMap<Box<str>, Verified>>,
}

struct Verified {
    principal: Principal,
    not_before: Option<u64>,
}

/// Most tokens kept verified at once.
const MAX_VERIFIED_TOKENS: usize = 10_000;

impl VerifiedTokens {
    fn get(&self, token: &str) -> Option<(Principal, Option<u64>)> {
        let tokens = self.tokens.lock().expect("not poisoned");
        tokens.get(token).map(|v| (v.principal.clone(), v.not_before))
    }

    fn keep(&self, token: &str, principal: &Principal, not_before: Option<u64>) {
        let mut tokens = self.tokens.lock().expect("not poisoned");
        if tokens.len() >= MAX_VERIFIED_TOKENS {
            tokens.clear();
        }
        tokens.insert(token.into(), Verified { principal: principal.clone(), not_before });
    }
}

impl TokenVerifier {
    pub fn new(settings: &JwtSettings) -> TokenVerifier {
        let key = match (&settings.key, settings.algorithm) {
            (JwtKey::Secret(secret), _) => DecodingKey::from_secret(secret),
            (JwtKey::Pem { public, .. }, Algorithm::RS256) => {
                DecodingKey::from_rsa_pem(public).expect("key checked when settings were parsed")
            }
            (JwtKey::Pem { public, .. }, _) => {
                DecodingKey::from_ed_pem(public).expect("key checked when settings were parsed")
            }
        };
        let mut validation = Validation::new(settings.algorithm);
        validation.set_issuer(&[&settings.issuer]);
        validation.set_audience(&[&settings.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = settings.leeway.as_secs();
        TokenVerifier { key, validation, leeway: settings.leeway, revocations: None, verified: Default::default() }
    }

    /// The clock skew allowed past a token's `exp` (`VELFERD_JWT_LEEWAY_SECONDS`).
    /// The verifier, refusing the tokens `revocations` names.
    pub fn with_revocations(
        self,
        revocations: std::sync::Arc<crate::organizations::revocations::Revocations>,
    ) -> TokenVerifier {
        TokenVerifier { revocations: Some(revocations), ..self }
    }

    pub fn leeway(&self) -> Duration {
        self.leeway
    }

    /// Reads an `Authorization` header value. `None` means no header: anonymous.
    pub fn actor_from_header(&self, header: Option<&str>) -> Result<Actor, AuthError> {
        let Some(value) = header else { return Ok(Actor::Anonymous) };
        if value.len() > MAX_AUTHORIZATION_BYTES {
            return Err(AuthError(format!(
                "Authorization header is {} bytes; at most {MAX_AUTHORIZATION_BYTES} are accepted",
                value.len()
            )));
        }
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| AuthError("Authorization header must be `Bearer <token>`".into()))?;
        self.verify(token.trim()).map(Actor::Authenticated)
    }

    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`TokenVerifier::verify`] at `now` (seconds since the epoch), which decides whether a
    /// token verified before has expired since or become valid.
    fn verify_at(&self, token: &str, now: u64) -> Result<Principal, AuthError> {
        let principal = match self.verified.get(token) {
            Some((principal, not_before)) => {
                let leeway = self.validation.leeway;
                if principal.expires_at < now.saturating_sub(leeway) {
                    return Err(AuthError(describe(&ErrorKind::ExpiredSignature)));
                }
                if not_before.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
                    return Err(AuthError(describe(&ErrorKind::ImmatureSignature)));
                }
                principal
            }
            None => {
                let (principal, not_before) = self.check_signature(token)?;
                self.verified.keep(token, &principal, not_before);
                principal
            }
        };
        if self.revocations.as_ref().is_some_and(|r| r.revokes(&principal)) {
            return Err(AuthError("token has been revoked; ask for a new one".into()));
        }
        Ok(principal)
    }

    /// The token's signature, issuer, audience, times and claims checked; its `nbf`.
    fn check_signature(&self, token: &str) -> Result<(Principal, Option<u64>), AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError(describe(e.kind())))?;
        let claims = data.claims;
        if claims.roles.is_empty() {
            return Err(AuthError("token names no roles".into()));
        }
        if claims.sub.trim().is_empty() {
            return Err(AuthError("token has an empty subject".into()));
        }
        let org = match (claims.org, claims.oid.as_deref()) {
            (Some(number), None) => OrgRef::Number(number),
            (None, Some(oid)) => OrgRef::Id(
                crate::ids::row_id(oid, NodeType::Organization)
                    .ok_or_else(|| AuthError("token's `oid` is not an organisation id".into()))?,
            ),
            (Some(_), Some(_)) => {
                return Err(AuthError("token names its organisation twice (`org` and `oid`); name it once".into()));
            }
            (None, None) => {
                return Err(AuthError("token names no organisation: it needs an `org` or an `oid` claim".into()));
            }
        };
        if claims.jti.as_ref().is_some_and(|id| id.is_empty() || id.chars().count() > MAX_TOKEN_ID_CHARS) {
            return Err(AuthError(format!("token's `jti` must be 1 to {MAX_TOKEN_ID_CHARS} characters")));
        }
        let principal = Principal {
            subject: claims.sub,
            org,
            claimed: claims.roles,
            expires_at: claims.exp,
            issued_at: claims.iat,
            token_id: claims.jti,
        };
        Ok((principal, claims.nbf))
    }
}

fn describe(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token has expired".into(),
        ErrorKind::ImmatureSignature => "token is not valid yet (nbf)".into(),
        ErrorKind::InvalidIssuer => "token issuer is not accepted".into(),
        ErrorKind::InvalidAudience => "token audience is not accepted".into(),
        ErrorKind::InvalidSignature => "token signature does not verify".into(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "token algorithm is not the one this server accepts".into()
        }
        ErrorKind::MissingRequiredClaim(claim) => format!("token lacks the `{claim}` claim"),
        ErrorKind::Json(e) => format!("token claims are malformed: {e}"),
        ErrorKind::InvalidToken | ErrorKind::Base64(_) | ErrorKind::Utf8(_) => "token is malformed".into(),
        _ => "token is not accepted".into(),
    }
}

/// Mints tokens for `velferd token` and for tests.
pub struct TokenSigner {
    key: EncodingKey,
    algorithm: Algorithm,
    issuer: String,
    audience: String,
}

impl TokenSigner {
    pub fn new(settings: &JwtSettings) -> Result<TokenSigner, AuthError> {
        let key = match &settings.key {
            JwtKey::Secret(secret) => EncodingKey::from_secret(secret),
            JwtKey::Pem { private: None, .. } => {
                return Err(AuthError(format!(
                    "VELFERD_JWT_PRIVATE_KEY_FILE is required to mint {:?} tokens",
                    settings.algorithm
                )));
            }
            JwtKey::Pem { private: Some(pem), .. } => match settings.algorithm {
                Algorithm::RS256 => EncodingKey::from_rsa_pem(pem),
                _ => EncodingKey::from_ed_pem(pem),
            }
            .map_err(|e| AuthError(format!("VELFERD_JWT_PRIVATE_KEY_FILE: not a usable private key ({e})")))?,
        };
        Ok(TokenSigner {
            key,
            algorithm: settings.algorithm,
            issuer: settings.issuer.clone(),
            audience: settings.audience.clone(),
        })
    }

    /// A token for `org` (by number or Velferd id) with a fresh random `jti`.
    pub fn mint(&self, subject: &str, org: impl Into<OrgRef>, roles: BTreeSet<Role>, ttl: Duration) -> String {
        self.mint_with_id(subject, org, roles, ttl).0
    }

    /// [`TokenSigner::mint`], also answering the token's `jti` (to revoke that token alone).
    pub fn mint_with_id(
        &self,
        subject: &str,
        org: impl Into<OrgRef>,
        roles: BTreeSet<Role>,
        ttl: Duration,
    ) -> (String, String) {
        let now = jsonwebtoken::get_current_timestamp();
        let jti = fresh_token_id();
        let (org, oid) = match org.into() {
            OrgRef::Number(number) => (Some(number), None),
            OrgRef::Id(row) => (None, Some(crate::ids::global_id(NodeType::Organization, row))),
        };
        let claims = Claims {
            sub: subject.to_string(),
            org,
            oid,
            roles,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl.as_secs(),
            nbf: Some(now),
            iat: now,
            jti: Some(jti.clone()),
        };
        let token =
            jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.key).expect("claims always serialise");
        (token, jti)
    }
}

/// A token id unique across instances and restarts: a hash of the time, the process, a counter
/// and the standard library's per-process random hasher keys. It needs to be unique, not secret
/// (the signature protects the token).
fn fresh_token_id() -> String {
    use sha2::{Digest, Sha256};
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    let keyed = std::collections::hash_map::RandomState::new().hash_one(count);
    let mut hash = Sha256::new();
    for part in
        [&nanos.to_be_bytes()[..], &std::process::id().to_be_bytes(), &count.to_be_bytes(), &keyed.to_be_bytes()]
    {
        hash.update(part);
    }
    format!("{:x}", hash.finalize())[..32].to_string()
}

impl From<OrgNumber> for OrgRef {
    fn from(number: OrgNumber) -> OrgRef {
        OrgRef::Number(number)
    }
}

/// Parses `admin,supplier` into roles.
pub fn parse_roles(list: &str) -> Result<BTreeSet<Role>, String> {
    let roles = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(Role::from_str)
        .collect::<Result<BTreeSet<_>, _>>()?;
    if roles.is_empty() { Err("name at least one role".into()) } else { Ok(roles) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(leeway: Duration) -> JwtSettings {
        JwtSettings {
            algorithm: Algorithm::HS256,
            key: crate::config::JwtKey::Secret(b"a secret for the tests of this module".to_vec()),
            issuer: "velferd-test".into(),
            audience: "velferd-test".into(),
            leeway,
        }
    }

    /// A token verified once is not verified again, but what changes with time still counts:
    /// it expires, and one not valid yet stays refused until it is.
    #[test]
    fn a_verified_token_still_expires_and_waits_for_its_nbf() {
        let settings = settings(Duration::from_secs(5));
        let verifier = TokenVerifier::new(&settings);
        let signer = TokenSigner::new(&settings).unwrap();
        let org = OrgRef::Id(7);
        let roles = BTreeSet::from([Role::Integration]);
        let token = signer.mint("platform", org, roles, Duration::from_secs(60));
        let now = jsonwebtoken::get_current_timestamp();
        let first = verifier.verify(&token).unwrap();
        assert_eq!(verifier.verified.tokens.lock().unwrap().len(), 1, "kept once verified");
        assert_eq!(verifier.verify_at(&token, now + 30).unwrap(), first);
        // `exp` is now + 60, with 5 s of leeway.
        assert!(verifier.verify_at(&token, now + 64).is_ok());
        assert_eq!(verifier.verify_at(&token, now + 70).unwrap_err().0, "token has expired");
        // `nbf` is now, with 5 s of leeway.
        assert_eq!(verifier.verify_at(&token, now - 10).unwrap_err().0, "token is not valid yet (nbf)");
        // A clone (another worker's verifier) shares what was verified.
        assert_eq!(verifier.clone().verify_at(&token, now + 70).unwrap_err().0, "token has expired");
    }

    /// Only tokens that pass are kept: a forged one is checked, and refused, every time.
    #[test]
    fn refused_tokens_are_never_kept() {
        let settings = settings(Duration::ZERO);
        let verifier = TokenVerifier::new(&settings);
        let signer = TokenSigner::new(&settings).unwrap();
        let token =
            signer.mint("platform", OrgRef::Id(7), BTreeSet::from([Role::Integration]), Duration::from_secs(60));
        let (unsigned, signature) = token.rsplit_once('.').unwrap();
        let forged = format!("{unsigned}.{}", signature.chars().rev().collect::<String>());
        for _ in 0..2 {
            assert!(verifier.verify(&forged).is_err());
        }
        assert!(verifier.verified.tokens.lock().unwrap().is_empty());
        // A token of another audience passes its signature but not its claims.
        let other = TokenSigner::new(&JwtSettings { audience: "elsewhere".into(), ..settings.clone() }).unwrap();
        let elsewhere =
            other.mint("platform", OrgRef::Id(7), BTreeSet::from([Role::Integration]), Duration::from_secs(60));
        assert!(verifier.verify(&elsewhere).is_err());
        assert!(verifier.verified.tokens.lock().unwrap().is_empty());
    }

    /// The organisation read with a product stands in for the grant's own lookup only when it
    /// is the one the token names, by number or by row, and then grants what the lookup would.
    #[test]
    fn a_grant_takes_an_organisation_read_elsewhere_only_when_the_token_names_it() {
        use crate::organizations::model::{Model, OrganizationKind};
        let supplier = Model {
            id: 7,
            kind: OrganizationKind::Supplier,
            name: "Leverandør AS".into(),
            org_number: Some("974760673".into()),
            municipality_number: None,
            county: None,
            population: None,
            population_year: None,
            created_at: chrono::Utc::now().fixed_offset(),
        };
        let actor = |org: OrgRef| {
            Actor::Authenticated(Principal {
                subject: "platform".into(),
                org,
                claimed: BTreeSet::from([Role::Integration, Role::Supplier, Role::CaseWorker]),
                expires_at: 0,
                issued_at: 0,
                token_id: None,
            })
        };
        let number = |n: &str| OrgRef::Number(n.parse().unwrap());
        for named in [actor(OrgRef::Id(7)), actor(number("974760673"))] {
            let grant = Grant::of_named_organization(named, &supplier).expect("the token names it");
            assert_eq!(grant.organization().map(|o| o.id), Some(7));
            // The roles that apply to a supplier, as `Grant::resolve` keeps them.
            assert_eq!(grant.roles().collect::<Vec<_>>(), [Role::Supplier, Role::Integration]);
        }
        for other in [actor(OrgRef::Id(8)), actor(number("918082956")), Actor::Anonymous] {
            assert!(Grant::of_named_organization(other, &supplier).is_none());
        }
    }

    #[test]
    fn role_names_round_trip() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        assert!(parse_roles("admin,,supplier").unwrap().len() == 2);
        assert!(parse_roles("root").unwrap_err().contains("unknown role"));
        assert!(parse_roles(" , ").is_err());
    }

    #[test]
    fn admin_applies_only_to_the_operator_and_integration_everywhere() {
        use OrganizationKind as K;
        let kinds = [K::Municipality, K::Supplier, K::Programme, K::ResponseCentre, K::Operator];
        for kind in kinds {
            assert_eq!(Role::Admin.applies_to(kind), kind == K::Operator, "{kind:?}");
            assert!(Role::Integration.applies_to(kind), "{kind:?}");
        }
        // Every role but integration and responder applies to exactly one kind.
        for role in Role::ALL.into_iter().filter(|r| !matches!(r, Role::Integration | Role::Responder)) {
            assert_eq!(kinds.iter().filter(|k| role.applies_to(**k)).count(), 1, "{role}");
        }
        // Responders: a municipality's home-care staff or a response centre's mobile team.
        let responder: Vec<_> = kinds.iter().filter(|k| Role::Responder.applies_to(**k)).collect();
        assert_eq!(responder, [&K::Municipality, &K::ResponseCentre]);
    }
}
