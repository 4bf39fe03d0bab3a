//! `viewer`: who the request acts as.

use async_graphql::{Context, Object, Result, SimpleObject};

use super::context::{actor, state};
use crate::auth::Role;
use crate::organizations::{self, Organization};

/// Who the request acts as.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Viewer {
    /// False for requests without a token.
    pub authenticated: bool,
    /// The token's subject (`sub`).
    pub subject: Option<String>,
    /// Organisation number of the organisation the viewer acts for.
    pub org_number: Option<String>,
    pub roles: Vec<Role>,
}

#[async_graphql::ComplexObject]
impl Viewer {
    /// The organisation the viewer acts for, when it is registered.
    async fn organization(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        let Some(number) = actor(ctx).principal().map(|p| p.org) else { return Ok(None) };
        Ok(organizations::find_by_org_number(state(ctx).db.read(), number).await?.map(Organization))
    }
}

#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// The caller: anonymous, or the subject, organisation and roles of its token.
    async fn viewer(&self, ctx: &Context<'_>) -> Viewer {
        match actor(ctx).principal() {
            None => Viewer { authenticated: false, subject: None, org_number: None, roles: vec![] },
            Some(p) => Viewer {
                authenticated: true,
                subject: Some(p.subject.clone()),
                org_number: Some(p.org.to_string()),
                roles: p.roles.iter().copied().collect(),
            },
        }
    }
}
