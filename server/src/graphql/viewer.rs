//! `viewer`: who the request acts as.

use async_graphql::{Context, Object, SimpleObject};

use super::context::session;
use crate::auth::{OrgRef, Role};
use crate::organizations::Organization;

/// Who the request acts as.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Viewer {
    /// False for requests without a token.
    pub authenticated: bool,
    /// The token's subject (`sub`).
    pub subject: Option<String>,
    /// Organisation number of the organisation the viewer acts for: the token's `org` claim, or
    /// the number of the registered organisation its `oid` claim names.
    pub org_number: Option<String>,
    /// The roles the viewer holds: those its token claims that apply to its organisation's
    /// kind (none when the organisation is not registered). Every decision uses these.
    pub roles: Vec<Role>,
    /// The roles the token claims, whether they apply or not: to explain a refusal.
    pub token_roles: Vec<Role>,
}

#[async_graphql::ComplexObject]
impl Viewer {
    /// The organisation the viewer acts for, when it is registered.
    async fn organization(&self, ctx: &Context<'_>) -> Option<Organization> {
        session(ctx).organization().cloned().map(Organization)
    }
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The caller: anonymous, or the subject, organisation and roles of its token.
    async fn viewer(&self, ctx: &Context<'_>) -> Viewer {
        let access = &session(ctx).grant;
        match access.principal() {
            None => {
                Viewer { authenticated: false, subject: None, org_number: None, roles: vec![], token_roles: vec![] }
            }
            Some(p) => Viewer {
                authenticated: true,
                subject: Some(p.subject.clone()),
                org_number: match p.org {
                    OrgRef::Number(number) => Some(number.to_string()),
                    OrgRef::Id(_) => access.organization().and_then(|o| o.org_number.clone()),
                },
                roles: access.roles().collect(),
                token_roles: access.token_roles(),
            },
        }
    }
}
