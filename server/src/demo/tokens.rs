//! Naming an organisation by its name, so that a newcomer can mint a token for every role of
//! every demo organisation without looking anything up: `velferd token --org-name "…"` and the
//! table `velferd demo tokens` prints. An organisation with a number is named by it in the token
//! (`org`); one without (a programme, a foreign supplier, the response centre, the platform
//! operator) by its Velferd id (`oid`), so no organisation number is ever invented.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::auth::{OrgRef, Role};
use crate::organizations::OrganizationKind;
use crate::organizations::model::{Column, Entity, Model};

/// Why a name did not resolve to one organisation.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("no organisation is named {0:?} in this database (`velferd demo tokens` lists them)")]
    Unknown(String),
    #[error("{0} organisations are named {1:?}; name it by --org or --oid")]
    Ambiguous(usize, String),
    #[error("{0}")]
    Db(String),
}

/// The token reference of the organisation named exactly `name`: its organisation number when
/// it has one, its Velferd id otherwise.
pub async fn resolve<C: ConnectionTrait>(db: &C, name: &str) -> Result<(Model, OrgRef), NameError> {
    let rows =
        Entity::find().filter(Column::Name.eq(name.trim())).all(db).await.map_err(|e| NameError::Db(e.to_string()))?;
    match rows.as_slice() {
        [] => Err(NameError::Unknown(name.trim().to_string())),
        [org] => Ok((org.clone(), org_ref(org))),
        many => Err(NameError::Ambiguous(many.len(), name.trim().to_string())),
    }
}

fn org_ref(org: &Model) -> OrgRef {
    match org.org_number.as_deref().and_then(|n| n.parse().ok()) {
        Some(number) => OrgRef::Number(number),
        None => OrgRef::Id(org.id),
    }
}

/// The roles that count for an organisation of `kind`, the machine role last.
pub fn roles_for(kind: OrganizationKind) -> Vec<Role> {
    let mut roles: Vec<Role> = Role::ALL.into_iter().filter(|r| r.applies_to(kind)).collect();
    roles.sort_by_key(|r| *r == Role::Integration);
    roles
}

/// One ready command: who it acts for and what to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCommand {
    pub organization: String,
    pub kind: OrganizationKind,
    pub role: Role,
    pub command: String,
}

/// A `velferd token` command for every role of every organisation in the database, operator
/// first, then by kind and name.
pub async fn commands<C: ConnectionTrait>(db: &C) -> Result<Vec<TokenCommand>, NameError> {
    let mut orgs = Entity::find().order_by_asc(Column::Name).all(db).await.map_err(|e| NameError::Db(e.to_string()))?;
    let rank = |kind: OrganizationKind| match kind {
        OrganizationKind::Operator => 0,
        OrganizationKind::ResponseCentre => 1,
        OrganizationKind::Municipality => 2,
        OrganizationKind::Supplier => 3,
        OrganizationKind::Programme => 4,
    };
    orgs.sort_by_key(|o| rank(o.kind));
    let mut out = Vec::new();
    for org in orgs {
        for role in roles_for(org.kind) {
            out.push(TokenCommand {
                organization: org.name.clone(),
                kind: org.kind,
                role,
                command: format!("velferd token --org-name {} --role {}", shell_quote(&org.name), role.as_str()),
            });
        }
    }
    Ok(out)
}

/// `name` as one shell word: bare when it is plain, in double quotes otherwise.
fn shell_quote(name: &str) -> String {
    let plain = name.chars().all(|c| c.is_alphanumeric() || "-_.,".contains(c));
    if plain { name.to_string() } else { format!("\"{}\"", name.replace(['"', '\\', '$', '`'], "")) }
}

/// The table `velferd demo tokens` prints.
pub fn table(commands: &[TokenCommand]) -> String {
    let mut out = String::from(
        "# Every role of every organisation (run with VELFERD_JWT_SECRET and the server's database).\n\
         # Organisations without an organisation number are named in the token by their Velferd id.\n",
    );
    let mut last = None;
    for c in commands {
        if last.as_deref() != Some(c.organization.as_str()) {
            out.push_str(&format!("\n# {} ({:?})\n", c.organization, c.kind));
            last = Some(c.organization.clone());
        }
        out.push_str(&c.command);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_spaces_and_parentheses_are_quoted_once() {
        assert_eq!(shell_quote("Dignio"), "Dignio");
        assert_eq!(shell_quote("Bø kommune (Telemark)"), "\"Bø kommune (Telemark)\"");
    }

    #[test]
    fn every_kind_has_a_human_role_and_the_machine_role_last() {
        for kind in [
            OrganizationKind::Municipality,
            OrganizationKind::Supplier,
            OrganizationKind::Programme,
            OrganizationKind::ResponseCentre,
            OrganizationKind::Operator,
        ] {
            let roles = roles_for(kind);
            assert!(roles.len() >= 2, "{kind:?}: {roles:?}");
            assert_eq!(roles.last(), Some(&Role::Integration));
        }
    }
}
