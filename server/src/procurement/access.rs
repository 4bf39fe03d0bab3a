//! Who may see what of a procurement. The rule table is in `docs/authorization.md`; this is
//! its one implementation, used by connections (as SQL), `node`, `nodes` and the OCDS endpoint
//! alike so every path gives the same answer. It knows no GraphQL: callers build a [`Viewer`].

use chrono::Utc;
use sea_orm::{ColumnTrait, Condition};

use super::model::{ParticipantRole, participant, procurement, tender};
use crate::auth::{Grant, Role};
use crate::errors::ApiError;

/// Who is asking, whatever the way in: built once per request at the edge (the GraphQL session,
/// the HTTP handler's actor), so the rules below know no transport.
#[derive(Debug, Clone)]
pub struct Viewer {
    /// Signed in for a registered organisation: a token of an unregistered one reads as
    /// anonymous callers do.
    pub signed_in: bool,
    /// Signed in, but for an organisation that is not registered: told so when refused.
    unregistered: bool,
    /// The registered organisation the viewer acts for.
    pub org_id: Option<i64>,
    roles: Vec<Role>,
}

impl Viewer {
    /// The viewer of a caller, with its effective roles.
    pub fn new(grant: &Grant) -> Viewer {
        Viewer {
            signed_in: grant.organization().is_some(),
            unregistered: grant.principal().is_some() && grant.organization().is_none(),
            org_id: grant.organization().map(|o| o.id),
            roles: grant.roles().collect(),
        }
    }

    /// The platform operator reading everything, for exports made by the platform itself.
    pub fn platform_admin() -> Viewer {
        Viewer { signed_in: true, unregistered: false, org_id: None, roles: vec![Role::Admin] }
    }

    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The inside of a procurement (participants, totals, phase history, the needs and
    /// dialogue phases) is for signed-in users: a rule about the viewer alone, so it needs none
    /// of the procurement's rows.
    pub fn require_signed_in(&self) -> Result<(), ApiError> {
        if self.signed_in {
            Ok(())
        } else if self.unregistered {
            Err(ApiError::Forbidden("organisation not registered".into()))
        } else {
            Err(ApiError::Unauthenticated("sign in to see the inside of a procurement".into()))
        }
    }

    /// The read rule for one procurement: anonymous viewers see those with a published notice;
    /// everyone signed in sees all.
    pub fn can_see(&self, p: &procurement::Model) -> bool {
        self.signed_in || p.notice_published_on.is_some()
    }

    /// The same rule as [`Viewer::can_see`], as a SQL condition for lists.
    pub fn visible_procurements(&self) -> Condition {
        if self.signed_in {
            Condition::all()
        } else {
            Condition::all().add(procurement::Column::NoticePublishedOn.is_not_null())
        }
    }
}

impl Viewer {
    /// Which memberships a list filter may match on (`procurements(filter: { municipality,
    /// county })`), so a filter never reveals what the viewer cannot read. Signed-in viewers
    /// see every participant; anonymous ones only the buyers (the lead and participants), whom
    /// the published notice and the OCDS export name anyway — never followers.
    pub fn visible_memberships(&self) -> Condition {
        if self.signed_in {
            Condition::all()
        } else {
            Condition::all().add(participant::Column::Role.is_in([ParticipantRole::Lead, ParticipantRole::Participant]))
        }
    }
}

/// The viewer's standing towards one procurement.
#[derive(Debug, Clone)]
pub struct Access {
    viewer: Viewer,
    /// A procurement officer of the lead municipality.
    lead_officer: bool,
    membership: Option<ParticipantRole>,
    deadline_passed: bool,
}

impl Access {
    /// `participants` are the procurement's; they matter only when the viewer has an organisation.
    pub fn of<'a>(
        viewer: &Viewer,
        p: &procurement::Model,
        participants: impl IntoIterator<Item = &'a participant::Model>,
    ) -> Access {
        let membership =
            viewer.org_id.and_then(|org| participants.into_iter().find(|m| m.organization_id == org)).map(|m| m.role);
        Access {
            viewer: viewer.clone(),
            lead_officer: viewer.org_id == Some(p.lead_id) && viewer.has_role(Role::ProcurementOfficer),
            membership,
            deadline_passed: p.tender_deadline.is_some_and(|d| d.with_timezone(&Utc) <= Utc::now()),
        }
    }

    /// The procurement itself: see [`Viewer::can_see`].
    pub fn can_see(&self, p: &procurement::Model) -> bool {
        self.viewer.can_see(p)
    }

    /// Participants, totals, phase history, the needs and dialogue phases: for signed-in users.
    pub fn require_signed_in(&self) -> Result<(), ApiError> {
        self.viewer.require_signed_in()
    }

    /// Solution sketches: the procurement's municipalities and advisers see all; a supplier its
    /// own only.
    pub fn can_see_sketch_of(&self, supplier_id: i64) -> bool {
        self.membership.is_some()
            || self.viewer.has_role(Role::Advisor)
            || self.viewer.has_role(Role::Admin)
            || self.viewer.org_id == Some(supplier_id)
    }

    /// Sealed bids: the submitting supplier always; the lead's procurement officers after the
    /// deadline; nobody else, ever.
    pub fn can_see_tender(&self, t: &tender::Model) -> bool {
        self.viewer.org_id == Some(t.supplier_id) || (self.lead_officer && self.deadline_passed)
    }

    /// Scores and rankings: the lead's procurement officers, after the deadline.
    pub fn can_see_evaluation(&self) -> bool {
        self.lead_officer && self.deadline_passed
    }

    /// A call-off: the municipality that placed it, the agreement's supplier, the lead's
    /// procurement officers and platform admins.
    pub fn can_see_call_off(&self, municipality_id: i64, supplier_id: i64) -> bool {
        let org = self.viewer.org_id;
        self.viewer.has_role(Role::Admin)
            || self.lead_officer
            || org == Some(municipality_id)
            || org == Some(supplier_id)
    }
}
