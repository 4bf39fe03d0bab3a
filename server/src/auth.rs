//! Who is asking: bearer JWTs checked with `jsonwebtoken`, turned into an [`Actor`].
//!
//! A request without a token is anonymous and sees public data only. A token that is present
//! but fails any check is refused (HTTP 401, `UNAUTHENTICATED`) — never downgraded to anonymous,
//! because a client that sent credentials expects them to count.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::{JwtKey, JwtSettings};
use crate::organizations::OrgNumber;

/// What a person or machine may do. Authorization combines a role with the organisation the
/// token names: a case worker sees only their own municipality's recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, async_graphql::Enum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Operates the platform: registers organisations, activates adapters.
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
}

impl Role {
    pub const ALL: [Role; 8] = [
        Role::Admin,
        Role::Advisor,
        Role::ProcurementOfficer,
        Role::CaseWorker,
        Role::Operator,
        Role::PrivacyOfficer,
        Role::Supplier,
        Role::Integration,
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
        }
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

/// The claims Velferd issues and accepts. `exp`, `iss`, `aud` and `sub` are required;
/// `nbf` is checked when present.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    /// The organisation number of the organisation the subject acts for.
    pub org: OrgNumber,
    pub roles: BTreeSet<Role>,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub iat: u64,
}

/// An authenticated subject acting for an organisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub org: OrgNumber,
    pub roles: BTreeSet<Role>,
    /// The token's `exp` (seconds since the Unix epoch): a WebSocket signed in with it ends then
    /// (plus [`TokenVerifier::leeway`]).
    pub expires_at: u64,
    /// The token's `iat`: a revocation covers the tokens issued up to its time.
    pub issued_at: u64,
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

    pub fn has_role(&self, role: Role) -> bool {
        self.principal().is_some_and(|p| p.roles.contains(&role))
    }
}

/// The authenticated caller of a mutation, with its registered organisation: what the rules of
/// every area judge a change by.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub org_number: String,
    pub org: crate::organizations::model::Model,
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
        TokenVerifier { key, validation, leeway: settings.leeway, revocations: None }
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
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| AuthError(describe(e.kind())))?;
        let claims = data.claims;
        if claims.roles.is_empty() {
            return Err(AuthError("token names no roles".into()));
        }
        if claims.sub.trim().is_empty() {
            return Err(AuthError("token has an empty subject".into()));
        }
        if self.revocations.as_ref().is_some_and(|r| r.revokes(&claims.org.as_string(), &claims.sub, claims.iat)) {
            return Err(AuthError("token has been revoked; ask for a new one".into()));
        }
        Ok(Principal {
            subject: claims.sub,
            org: claims.org,
            roles: claims.roles,
            expires_at: claims.exp,
            issued_at: claims.iat,
        })
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

    pub fn mint(&self, subject: &str, org: OrgNumber, roles: BTreeSet<Role>, ttl: Duration) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: subject.to_string(),
            org,
            roles,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            exp: now + ttl.as_secs(),
            nbf: Some(now),
            iat: now,
        };
        jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.key).expect("claims always serialise")
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
}
