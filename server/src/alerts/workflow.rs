//! The response centre's workflow and who takes part in it: which alerts a caller sees, the one
//! transition function every step goes through, service agreements, escalation lines and
//! products' monitoring intervals. No GraphQL here.
//!
//! Who sees an alert (anything else answers like a missing alert):
//! * `case_worker` of the alert's municipality: all of its alerts;
//! * `operator` of a response centre with a service agreement with the municipality that is in
//!   force today;
//! * `responder` of the organisation the alert is handed to.

use chrono::{NaiveDate, Utc};
use sea_orm::sea_query::{Expr, Query as SqlQuery};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, Set,
    TryIntoModel,
};
use velferd_plugins::Severity;

use super::live::{AlertNotice, Notices};
use super::model::{
    AlertOutcome, AlertStatus, StepKind, alert, alert_escalation, device_watch, product_monitoring, service_agreement,
};
use super::rules::{self, Actor};
use crate::audit;
use crate::auth::{Caller, Grant, Role};
use crate::errors::{ApiError, Invalid, RuleViolation, ensure, refuse};
use crate::organizations::{OrganizationKind, model as organization};
use crate::text::CareNote;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, RuleViolation)]
pub enum AlertError {
    #[error(transparent)]
    #[violation(transparent)]
    Invalid(#[from] Invalid),
    #[error("an alert that is {from:?} cannot be {action}")]
    #[violation(field = "alertId", code = "ILLEGAL_ALERT_TRANSITION")]
    IllegalTransition { from: AlertStatus, action: &'static str },
    #[error("as {role} you cannot {action} this alert: {why}")]
    #[violation(field = "alertId", code = "ALERT_ROLE_REFUSED")]
    RoleRefused { role: Role, action: &'static str, why: &'static str },
    #[error("{0} is not the municipality nor a response centre serving it today")]
    #[violation(field = "responderId", code = "RESPONDER_NOT_SERVING")]
    ResponderNotServing(String),
    #[error("{outcome:?} is set by Velferd when the device reports it, not by people")]
    #[violation(field = "outcome", code = "OUTCOME_RESERVED")]
    OutcomeReserved { outcome: AlertOutcome },
    #[error("{0} is not a response centre")]
    #[violation(field = "responseCentreId", code = "NOT_A_RESPONSE_CENTRE")]
    NotAResponseCentre(String),
    #[error("the period must not end before it starts")]
    #[violation(field = "validTo", code = "INVALID_PERIOD")]
    InvalidPeriod,
    #[error("this response centre already serves the municipality from {from} to {to}, which overlaps")]
    #[violation(field = "validFrom", code = "SERVICE_AGREEMENT_OVERLAPS")]
    Overlaps { from: NaiveDate, to: NaiveDate },
    #[error("the next line must be the municipality itself or a response centre with a service agreement with it")]
    #[violation(field = "nextLineId", code = "NEXT_LINE_NOT_SERVING")]
    NextLineNotServing,
}

pub type AlertResult<T> = crate::errors::RuleResult<T, AlertError>;

/// The caller's standing towards alerts.
#[derive(Debug, Clone)]
pub struct AlertViewer {
    pub subject: String,
    pub org_id: i64,
    pub operator: bool,
    pub case_worker: bool,
    pub responder: bool,
}

impl AlertViewer {
    /// The viewer, for a caller with a registered organisation (roles may be none: it sees
    /// nothing).
    pub fn of(grant: &Grant) -> Option<AlertViewer> {
        let org = grant.organization()?;
        let principal = grant.principal()?;
        Some(AlertViewer {
            subject: principal.subject.clone(),
            org_id: org.id,
            operator: grant.has_role(Role::Operator),
            case_worker: grant.has_role(Role::CaseWorker),
            responder: grant.has_role(Role::Responder),
        })
    }

    /// The alerts the viewer sees, as a filter on `alert`, today.
    pub fn condition(&self, today: NaiveDate) -> Condition {
        let mut any = Condition::any();
        if self.case_worker {
            any = any.add(alert::Column::MunicipalityId.eq(self.org_id));
        }
        if self.responder {
            any = any.add(alert::Column::ResponderId.eq(self.org_id));
        }
        if self.operator {
            let served = SqlQuery::select()
                .column(service_agreement::Column::MunicipalityId)
                .from(service_agreement::Entity)
                .and_where(service_agreement::Column::ResponseCentreId.eq(self.org_id))
                .and_where(service_agreement::Column::ValidFrom.lte(today))
                .and_where(service_agreement::Column::ValidTo.gte(today))
                .to_owned();
            any = any.add(alert::Column::MunicipalityId.in_subquery(served));
        }
        // No role: nothing (an empty `any` is false).
        any
    }

    /// The role under which the viewer sees `alert` today, or `None`: it may not.
    pub async fn sees<C: ConnectionTrait>(&self, db: &C, alert: &alert::Model) -> Result<Option<Role>, DbErr> {
        if self.case_worker && alert.municipality_id == self.org_id {
            return Ok(Some(Role::CaseWorker));
        }
        if self.operator && serves(db, self.org_id, alert.municipality_id, today()).await? {
            return Ok(Some(Role::Operator));
        }
        if self.responder && alert.responder_id == Some(self.org_id) {
            return Ok(Some(Role::Responder));
        }
        Ok(None)
    }

    /// Whose alert changes the viewer may hear, by the scope they are announced with (the
    /// alert's municipality and its responder): [`AlertViewer::sees`] decides each one, this
    /// only spares the viewer the others. A response centre's desk depends on its service
    /// agreements, read per alert: it hears every change.
    pub fn interest(&self) -> crate::live::Interest {
        if self.operator {
            return crate::live::Interest::Everything;
        }
        crate::live::Interest::Scoped {
            municipality: self.case_worker.then_some(self.org_id),
            organization: self.responder.then_some(self.org_id),
        }
    }

    /// Writes the audit entry for serving `alert` under `role`, when it names a recipient. A
    /// read of an alert that is no longer open is flagged for the privacy officer's review: the
    /// reader has no open alert to justify looking at the recipient's data.
    pub async fn audit<C: ConnectionTrait>(
        &self,
        db: &C,
        alert: &alert::Model,
        role: Role,
        operation: &'static str,
    ) -> Result<(), DbErr> {
        match self.access(alert, role, operation) {
            Some(access) => audit::record(db, access).await,
            None => Ok(()),
        }
    }

    /// The same entry as [`AlertViewer::audit`], written by `recorder` with those of every
    /// other console served the same change: for live deliveries, which have no transaction.
    pub async fn audit_live(&self, recorder: &audit::Recorder, alert: &alert::Model, role: Role) -> Result<(), DbErr> {
        match self.access(alert, role, "alert.live") {
            Some(access) => recorder.record(access).await,
            None => Ok(()),
        }
    }

    fn access(&self, alert: &alert::Model, role: Role, operation: &'static str) -> Option<audit::Access<'_>> {
        Some(audit::Access {
            subject: &self.subject,
            organization_id: self.org_id,
            role,
            municipality_id: alert.municipality_id,
            recipient_id: alert.recipient_id?,
            operation,
            object_type: "Alert",
            object_id: alert.id,
            purpose: audit::Purpose::Alert(alert.id),
            decision: if operation == "alert.read" && alert.resolved_at.is_some() {
                audit::Decision::GrantedFlagged
            } else {
                audit::Decision::Granted
            },
        })
    }
}

pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// Whether response centre `centre` serves `municipality` on `day`.
pub async fn serves<C: ConnectionTrait>(db: &C, centre: i64, municipality: i64, day: NaiveDate) -> Result<bool, DbErr> {
    Ok(service_agreement::Entity::find()
        .filter(service_agreement::Column::ResponseCentreId.eq(centre))
        .filter(service_agreement::Column::MunicipalityId.eq(municipality))
        .filter(service_agreement::Column::ValidFrom.lte(day))
        .filter(service_agreement::Column::ValidTo.gte(day))
        .count(db)
        .await?
        > 0)
}

/// The kinds of note, each a VKP follow-up event code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, async_graphql::Enum)]
pub enum NoteKind {
    /// VKP 6, årsak.
    Cause,
    /// VKP 7, tiltak.
    Measure,
    /// VKP 8, samtale.
    Conversation,
    /// VKP 9, aksjon.
    Dispatch,
    /// VKP 10, annen aktør.
    OtherParty,
}

impl NoteKind {
    fn step(self) -> StepKind {
        match self {
            NoteKind::Cause => StepKind::NoteCause,
            NoteKind::Measure => StepKind::NoteMeasure,
            NoteKind::Conversation => StepKind::NoteConversation,
            NoteKind::Dispatch => StepKind::NoteDispatch,
            NoteKind::OtherParty => StepKind::NoteOtherParty,
        }
    }
}

/// What a person does to an alert.
#[derive(Debug, Clone)]
pub enum Action {
    /// Take it (an operator or the municipality's case worker).
    Acknowledge,
    /// Hand it to a responder organisation: the municipality or a centre serving it.
    HandOver { responder_id: i64, note: Option<CareNote> },
    /// The responder takes responsibility.
    Accept,
    /// Sign it off with an outcome.
    Resolve { outcome: AlertOutcome, note: Option<CareNote> },
    /// Add a note.
    Note { kind: NoteKind, text: CareNote },
}

impl Action {
    fn verb(&self) -> &'static str {
        match self {
            Action::Acknowledge => "acknowledged",
            Action::HandOver { .. } => "handed to a responder",
            Action::Accept => "accepted",
            Action::Resolve { .. } => "resolved",
            Action::Note { .. } => "given a note",
        }
    }

    fn operation(&self) -> &'static str {
        match self {
            Action::Acknowledge => "alert.acknowledge",
            Action::HandOver { .. } => "alert.hand_over",
            Action::Accept => "alert.accept",
            Action::Resolve { .. } => "alert.resolve",
            Action::Note { .. } => "alert.note",
        }
    }

    /// The status the action leads to from `from` (the same for a note), or `None`: illegal.
    pub fn next(&self, from: AlertStatus) -> Option<AlertStatus> {
        use AlertStatus::*;
        match (self, from) {
            (Action::Acknowledge, Raised) => Some(Acknowledged),
            (Action::HandOver { .. }, Acknowledged) => Some(HandedToResponder),
            (Action::Accept, HandedToResponder) => Some(ResponderAccepted),
            (Action::Resolve { .. }, Acknowledged | HandedToResponder | ResponderAccepted) => Some(Resolved),
            (Action::Note { .. }, Acknowledged | HandedToResponder | ResponderAccepted | Resolved) => Some(from),
            _ => None,
        }
    }

    /// Whether `role` (the one the caller sees the alert under) may take this action.
    fn allowed(&self, role: Role, status: AlertStatus) -> Result<(), &'static str> {
        let desk = matches!(role, Role::Operator | Role::CaseWorker);
        match self {
            Action::Acknowledge | Action::HandOver { .. } if !desk => {
                Err("the operator or the municipality's case worker takes and hands over alerts")
            }
            Action::Accept if role != Role::Responder => Err("only the responder it is handed to accepts it"),
            Action::Resolve { .. } if role == Role::Responder && status != AlertStatus::ResponderAccepted => {
                Err("a responder signs off an alert it has accepted")
            }
            _ => Ok(()),
        }
    }
}

/// Runs `action` on alert `alert_id` for `viewer` (holding only the roles the action takes):
/// the one transition function. An alert the
/// caller may not see answers `NOT_FOUND`; an illegal step changes nothing.
pub async fn act<C: ConnectionTrait>(
    db: &C,
    viewer: &AlertViewer,
    alert_id: i64,
    action: Action,
) -> AlertResult<(alert::Model, Notices)> {
    let not_found = || refuse(Invalid::not_found("alertId", "no such alert"));
    let Some(current) = alert::Entity::find_by_id(alert_id).one(db).await? else { return not_found() };
    let Some(role) = viewer.sees(db, &current).await? else { return not_found() };
    if let Err(why) = action.allowed(role, current.status) {
        return refuse(AlertError::RoleRefused { role, action: action.verb(), why });
    }
    let Some(to) = action.next(current.status) else {
        return refuse(AlertError::IllegalTransition { from: current.status, action: action.verb() });
    };
    let now = Utc::now().fixed_offset();
    let actor = Actor { subject: viewer.subject.clone(), organization_id: Some(viewer.org_id), role: Some(role) };
    // The status moves only from the one it was read in: a concurrent step (or the device
    // cancelling) makes this one illegal rather than doubled.
    let mut update = alert::Entity::update_many()
        .col_expr(alert::Column::Status, Expr::value(to))
        .filter(alert::Column::Id.eq(current.id))
        .filter(alert::Column::Status.eq(current.status));
    let (kind, note, outcome) = match &action {
        Action::Acknowledge => {
            rules::settle_deadlines(db, current.id, &["acknowledge"]).await?;
            (StepKind::Acknowledged, None, None)
        }
        Action::HandOver { responder_id, note } => {
            let responder = responder_for(db, current.municipality_id, *responder_id).await?;
            update = update.col_expr(alert::Column::ResponderId, Expr::value(responder.id));
            let (_, accept, _) = rules::escalation_of(db, current.municipality_id, &current.severity).await?;
            rules::add_deadline(db, current.id, "accept", accept).await?;
            let text = match note {
                Some(note) => format!("to {}: {note}", responder.name),
                None => format!("to {}", responder.name),
            };
            (StepKind::HandedToResponder, Some(text), None)
        }
        Action::Accept => {
            rules::settle_deadlines(db, current.id, &["accept"]).await?;
            (StepKind::ResponderAccepted, None, None)
        }
        Action::Resolve { outcome, note } => {
            ensure(outcome.chosen_by_people(), AlertError::OutcomeReserved { outcome: *outcome })?;
            update = update
                .col_expr(alert::Column::Outcome, Expr::value(*outcome))
                .col_expr(alert::Column::OpenKey, Expr::value(Option::<String>::None))
                .col_expr(alert::Column::ResolvedAt, Expr::value(now));
            rules::settle_deadlines(db, current.id, &[]).await?;
            (StepKind::Resolved, note.as_ref().map(|n| n.to_string()), Some(*outcome))
        }
        Action::Note { kind, text } => (kind.step(), Some(text.to_string()), None),
    };
    if update.exec(db).await?.rows_affected == 0 {
        return refuse(AlertError::IllegalTransition { from: current.status, action: action.verb() });
    }
    rules::add_step(db, current.id, kind, &actor, note, outcome, now).await?;
    let changed = alert::Entity::find_by_id(current.id)
        .one(db)
        .await?
        .ok_or_else(|| ApiError::internal("an alert vanished in its own transaction"))?;
    viewer.audit(db, &changed, role, action.operation()).await?;
    Ok((changed.clone(), vec![AlertNotice::changed(changed)]))
}

/// The responder organisation of a hand-over: the municipality itself, or a response centre
/// serving it today.
async fn responder_for<C: ConnectionTrait>(
    db: &C,
    municipality_id: i64,
    responder_id: i64,
) -> AlertResult<organization::Model> {
    let Some(org) = organization::Entity::find_by_id(responder_id).one(db).await? else {
        return refuse(Invalid::not_found("responderId", "no such organisation"));
    };
    let serving = org.id == municipality_id
        || (org.kind == OrganizationKind::ResponseCentre && serves(db, org.id, municipality_id, today()).await?);
    ensure(serving, AlertError::ResponderNotServing(org.name.clone()))?;
    Ok(org)
}

/// A new service agreement, checked at the edge.
pub struct NewServiceAgreement {
    pub response_centre_id: i64,
    pub call_off_id: Option<i64>,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
}

/// The municipality (the caller's organisation) lets a response centre serve it over a period,
/// optionally under one of its call-offs.
pub async fn create_service_agreement<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    new: NewServiceAgreement,
) -> AlertResult<service_agreement::Model> {
    let Some(centre) = organization::Entity::find_by_id(new.response_centre_id).one(db).await? else {
        return refuse(Invalid::not_found("responseCentreId", "no such organisation"));
    };
    ensure(centre.kind == OrganizationKind::ResponseCentre, AlertError::NotAResponseCentre(centre.name.clone()))?;
    ensure(new.valid_to >= new.valid_from, AlertError::InvalidPeriod)?;
    if let Some(call_off_id) = new.call_off_id {
        // Another municipality's call-off answers like a missing one.
        let own = crate::agreements::find_call_off(db, call_off_id)
            .await?
            .is_some_and(|c| c.municipality_id == caller.org.id);
        ensure(own, Invalid::not_found("callOffId", "no such call-off of yours"))?;
    }
    let overlapping = service_agreement::Entity::find()
        .filter(service_agreement::Column::ResponseCentreId.eq(centre.id))
        .filter(service_agreement::Column::MunicipalityId.eq(caller.org.id))
        .filter(service_agreement::Column::ValidFrom.lte(new.valid_to))
        .filter(service_agreement::Column::ValidTo.gte(new.valid_from))
        .one(db)
        .await?;
    if let Some(other) = overlapping {
        return refuse(AlertError::Overlaps { from: other.valid_from, to: other.valid_to });
    }
    Ok(service_agreement::ActiveModel {
        response_centre_id: Set(centre.id),
        municipality_id: Set(caller.org.id),
        call_off_id: Set(new.call_off_id),
        valid_from: Set(new.valid_from),
        valid_to: Set(new.valid_to),
        created_by: Set(caller.subject.chars().take(200).collect()),
        created_at: Set(Utc::now().fixed_offset()),
        ..Default::default()
    }
    .insert(db)
    .await?)
}

/// Longest time an escalation setting or a monitoring interval may be: a week.
pub const MAX_SECONDS: i32 = 7 * 24 * 3600;

/// A whole number of seconds from 1 to a week.
pub fn seconds(field: &'static str, value: i32) -> Result<i32, Invalid> {
    if (1..=MAX_SECONDS).contains(&value) {
        Ok(value)
    } else {
        Err(Invalid::new(field, "INVALID_DURATION", format!("{field} must be 1 to {MAX_SECONDS} seconds")))
    }
}

/// A municipality's escalation line for one severity, checked at the edge.
pub struct EscalationLine {
    pub severity: Severity,
    pub acknowledge_seconds: i32,
    pub accept_seconds: i32,
    pub next_line_id: Option<i64>,
}

/// Sets the caller's municipality's escalation line for a severity.
pub async fn set_escalation<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    line: EscalationLine,
) -> AlertResult<alert_escalation::Model> {
    let municipality = caller.org.id;
    // Naming the municipality itself is the same as naming none.
    let next_line = line.next_line_id.filter(|id| *id != municipality);
    if let Some(id) = next_line {
        let Some(org) = organization::Entity::find_by_id(id).one(db).await? else {
            return refuse(Invalid::not_found("nextLineId", "no such organisation"));
        };
        let agreements = service_agreement::Entity::find()
            .filter(service_agreement::Column::ResponseCentreId.eq(org.id))
            .filter(service_agreement::Column::MunicipalityId.eq(municipality))
            .filter(service_agreement::Column::ValidTo.gte(today()))
            .count(db)
            .await?;
        ensure(org.kind == OrganizationKind::ResponseCentre && agreements > 0, AlertError::NextLineNotServing)?;
    }
    let existing = alert_escalation::Entity::find()
        .filter(alert_escalation::Column::MunicipalityId.eq(municipality))
        .filter(alert_escalation::Column::Severity.eq(line.severity.name()))
        .one(db)
        .await?;
    let mut row: alert_escalation::ActiveModel = match existing {
        Some(row) => row.into(),
        None => alert_escalation::ActiveModel {
            municipality_id: Set(municipality),
            severity: Set(line.severity.name().to_string()),
            ..Default::default()
        },
    };
    row.acknowledge_seconds = Set(line.acknowledge_seconds);
    row.accept_seconds = Set(line.accept_seconds);
    row.next_line_id = Set(next_line);
    row.updated_by = Set(caller.subject.chars().take(200).collect());
    row.updated_at = Set(Utc::now().fixed_offset());
    let saved: alert_escalation::ActiveModel = row.save(db).await?;
    Ok(saved.try_into_model()?)
}

/// How often a product's devices must be heard from, checked at the edge.
pub struct Monitoring {
    pub product_id: i64,
    pub heartbeat_seconds: Option<i32>,
    pub test_seconds: Option<i32>,
}

/// Sets a product's heartbeat and test intervals (admin, at adapter review). Turning one off
/// drops the product's devices' watches of that kind.
pub async fn set_monitoring<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    monitoring: Monitoring,
) -> AlertResult<product_monitoring::Model> {
    let existing = product_monitoring::Entity::find()
        .filter(product_monitoring::Column::ProductId.eq(monitoring.product_id))
        .one(db)
        .await?;
    let mut row: product_monitoring::ActiveModel = match existing {
        Some(row) => row.into(),
        None => product_monitoring::ActiveModel { product_id: Set(monitoring.product_id), ..Default::default() },
    };
    row.heartbeat_seconds = Set(monitoring.heartbeat_seconds);
    row.test_seconds = Set(monitoring.test_seconds);
    row.set_by = Set(caller.subject.chars().take(200).collect());
    row.set_at = Set(Utc::now().fixed_offset());
    let saved: product_monitoring::ActiveModel = row.save(db).await?;
    let saved = saved.try_into_model()?;
    for (kind, on) in [("heartbeat", saved.heartbeat_seconds.is_some()), ("test", saved.test_seconds.is_some())] {
        if !on {
            let devices = SqlQuery::select()
                .column(crate::devices::model::device::Column::Id)
                .from(crate::devices::model::device::Entity)
                .and_where(crate::devices::model::device::Column::ProductId.eq(saved.product_id))
                .to_owned();
            device_watch::Entity::delete_many()
                .filter(device_watch::Column::Kind.eq(kind))
                .filter(device_watch::Column::DeviceId.in_subquery(devices))
                .exec(db)
                .await?;
        }
    }
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_action_moves_the_alert_one_step_and_no_further() {
        use AlertStatus::*;
        let note = || CareNote::parse("note", "ok").unwrap();
        let actions = [
            Action::Acknowledge,
            Action::HandOver { responder_id: 1, note: None },
            Action::Accept,
            Action::Resolve { outcome: AlertOutcome::Visit, note: None },
            Action::Note { kind: NoteKind::Cause, text: note() },
        ];
        let legal: Vec<(usize, AlertStatus, AlertStatus)> =
            [Raised, Acknowledged, HandedToResponder, ResponderAccepted, Resolved]
                .into_iter()
                .flat_map(|from| {
                    actions.iter().enumerate().filter_map(move |(i, a)| a.next(from).map(|to| (i, from, to)))
                })
                .collect();
        assert_eq!(
            legal,
            [
                (0, Raised, Acknowledged),
                (1, Acknowledged, HandedToResponder),
                (3, Acknowledged, Resolved),
                (4, Acknowledged, Acknowledged),
                (2, HandedToResponder, ResponderAccepted),
                (3, HandedToResponder, Resolved),
                (4, HandedToResponder, HandedToResponder),
                (3, ResponderAccepted, Resolved),
                (4, ResponderAccepted, ResponderAccepted),
                (4, Resolved, Resolved),
            ]
        );
    }
}
