//! Who may see what of a procurement. The rule table is in `docs/authorization.md`; this is
//! its one implementation, used by connections, `node` and `nodes` alike so every path gives
//! the same answer.

use async_graphql::Context;
use chrono::Utc;

use super::model::{ParticipantRole, procurement, tender};
use crate::auth::Role;
use crate::errors::ApiError;
use crate::graphql::context::{load_one, session};
use crate::graphql::loaders::ParticipantsOf;

/// The viewer's standing towards one procurement.
#[derive(Debug, Clone)]
pub struct Access {
    pub authenticated: bool,
    pub org_id: Option<i64>,
    pub admin: bool,
    pub advisor: bool,
    /// A procurement officer of the lead municipality.
    pub lead_officer: bool,
    pub membership: Option<ParticipantRole>,
    deadline_passed: bool,
}

impl Access {
    pub async fn of(ctx: &Context<'_>, p: &procurement::Model) -> Result<Access, ApiError> {
        let session = session(ctx);
        let org_id = session.organization_id().await?;
        let membership = match org_id {
            Some(org) => load_one(ctx, ParticipantsOf(p.id))
                .await?
                .unwrap_or_default()
                .into_iter()
                .find(|m| m.organization_id == org)
                .map(|m| m.role),
            None => None,
        };
        Ok(Access {
            authenticated: session.actor.principal().is_some(),
            org_id,
            admin: session.has_role(Role::Admin),
            advisor: session.has_role(Role::Advisor),
            lead_officer: org_id == Some(p.lead_id) && session.has_role(Role::ProcurementOfficer),
            membership,
            deadline_passed: p.tender_deadline.is_some_and(|d| d.with_timezone(&Utc) <= Utc::now()),
        })
    }

    /// Anonymous callers see procurements with a published notice; everyone signed in sees all.
    pub fn can_see(&self, p: &procurement::Model) -> bool {
        self.authenticated || p.notice_published_on.is_some()
    }

    /// Participants, totals, phase history, the needs and dialogue phases: for signed-in users.
    pub fn require_signed_in(&self) -> Result<(), ApiError> {
        if self.authenticated {
            Ok(())
        } else {
            Err(ApiError::Unauthenticated("sign in to see the inside of a procurement".into()))
        }
    }

    /// Solution sketches: the procurement's municipalities and advisers see all; a supplier its
    /// own only.
    pub fn can_see_sketch_of(&self, supplier_id: i64) -> bool {
        self.membership.is_some() || self.advisor || self.admin || self.org_id == Some(supplier_id)
    }

    /// Sealed bids: the submitting supplier always; the lead's procurement officers after the
    /// deadline; nobody else, ever.
    pub fn can_see_tender(&self, t: &tender::Model) -> bool {
        self.org_id == Some(t.supplier_id) || (self.lead_officer && self.deadline_passed)
    }

    /// Scores and rankings: the lead's procurement officers, after the deadline.
    pub fn can_see_evaluation(&self) -> bool {
        self.lead_officer && self.deadline_passed
    }

    /// A call-off: the municipality that placed it, the agreement's supplier, the lead's
    /// procurement officers and platform admins.
    pub fn can_see_call_off(&self, municipality_id: i64, supplier_id: i64) -> bool {
        self.admin || self.lead_officer || self.org_id == Some(municipality_id) || self.org_id == Some(supplier_id)
    }
}
