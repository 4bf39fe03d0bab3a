//! GraphQL face of alerts: the operator's queue, the workflow mutations, service agreements,
//! escalation lines, products' monitoring intervals, and `alertRaised` / `alertChanged`.
//!
//! Who sees an alert is `workflow::AlertViewer`'s to say, the same for the queue, `node`, the
//! mutations and the subscriptions; an alert the caller may not see answers like a missing
//! one. Serving an alert that names a recipient writes one audit entry (purpose: the alert).

use async_graphql::{Context, ID, InputObject, MergedObject, Object, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use velferd_plugins::Severity;

use super::live::{self, NoticeKind};
use super::model::{AlertOutcome, AlertStatus, StepKind, VKP_EVENT_SYSTEM, alert, alert_step};
use super::rules::severity_of;
use super::workflow::{self, Action, AlertError, AlertViewer, NoteKind};
use crate::auth::Role;
use crate::devices::graphql::{Device, DeviceProduct, VkpCoding};
use crate::errors::{ApiError, Invalid, RuleResult};
use crate::graphql::connection::{Cursor, OrderDirection, Page, PageArgs, SortKey, page_sorted};
use crate::graphql::context::{load_existing, load_one, mutate, session, state};
use crate::graphql::errors::payload;
use crate::graphql::loaders::{AlertById, AlertRecipientById, DeviceById, ProductById, StepsOf};
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{FilterById, NodeType, input_row};
use crate::live::graphql::{Sequence, Shared};
use crate::organizations::Organization;
use crate::text::CareNote;
use velferd_macros::{connections, row_fields};

mod settings;

pub use settings::*;
// `Query`, `Mutation` and `Subscription` name the area's roots for the area table, `crate::areas!`.
pub use self::AlertMutations as Mutation;
pub use self::AlertQueries as Query;
pub use self::AlertSubscription as Subscription;

/// The area's queries: the queue, then the settings that route and escalate it.
#[derive(MergedObject, Default)]
pub struct AlertQueries(AlertQuery, AlertSettingsQuery);

/// The area's mutations: the workflow steps, then the settings.
#[derive(MergedObject, Default)]
pub struct AlertMutations(AlertMutation, AlertSettingsMutation);

/// An event that needs a human (or a device's silence), with its handling.
#[derive(Clone)]
pub struct Alert(pub alert::Model);

#[row_fields]
#[Object]
impl Alert {
    pub async fn id(&self) -> ID;

    /// The event kind that raised it, named as in the WIT (`alarm-button`, `dose-missed` …), or
    /// `device-offline` / `test-transmission-missed` when Velferd derived it from silence.
    async fn kind(&self) -> &str;

    async fn severity(&self) -> Severity {
        severity_of(&self.0.severity)
    }

    /// The VKP alert code (`vkp-alert-code-v090`), where the kind has one.
    async fn vkp(&self) -> Option<VkpCoding> {
        let code = self.0.vkp_code.clone()?;
        Some(VkpCoding { system: velferd_plugins::event::VKP_ALERT_SYSTEM.to_string(), code })
    }

    async fn status(&self) -> AlertStatus;

    /// How it ended, once resolved.
    async fn outcome(&self) -> Option<AlertOutcome>;

    async fn municipality(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.municipality_id).await
    }

    /// The serial of the device that raised it: what the response centre calls back.
    async fn device_serial(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(load_existing(ctx, DeviceById(self.0.device_id), "device").await?.serial)
    }

    async fn device_product(&self, ctx: &Context<'_>) -> Result<DeviceProduct> {
        let device = load_existing(ctx, DeviceById(self.0.device_id), "device").await?;
        Ok(DeviceProduct(load_existing(ctx, ProductById(device.product_id), "device product").await?))
    }

    /// The device, for the municipality that owns it; null for everyone else.
    async fn device(&self, ctx: &Context<'_>) -> Result<Option<Device>> {
        if session(ctx).organization_id() != Some(self.0.municipality_id) {
            return Ok(None);
        }
        Ok(load_one(ctx, DeviceById(self.0.device_id)).await?.map(Device))
    }

    /// The municipality's pseudonymous reference to the service recipient the device was
    /// assigned to when the alert was raised; null when it was assigned to nobody.
    async fn recipient_reference(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        let Some(id) = self.0.recipient_id else { return Ok(None) };
        Ok(load_one(ctx, AlertRecipientById(id)).await?.map(|r| r.reference))
    }

    /// Events it stands for: the one that raised it and those that joined it while open.
    async fn event_count(&self) -> i32;

    async fn first_event_at(&self) -> DateTime<Utc>;

    async fn last_event_at(&self) -> DateTime<Utc>;

    async fn raised_at(&self) -> DateTime<Utc>;

    async fn resolved_at(&self) -> Option<DateTime<Utc>>;

    /// The organisation it is handed to.
    async fn responder(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        Organization::by_optional_id(ctx, self.0.responder_id).await
    }

    /// The next line it went to when a step was late.
    async fn escalated_to(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        Organization::by_optional_id(ctx, self.0.escalated_to_id).await
    }

    /// How many times a step was late.
    async fn escalations(&self) -> i32;

    /// Every step of its handling, oldest first.
    async fn steps(&self, ctx: &Context<'_>) -> Result<Vec<AlertStep>> {
        Ok(load_one(ctx, StepsOf(self.0.id)).await?.unwrap_or_default().into_iter().map(AlertStep).collect())
    }
}

/// One step of an alert's handling: what, when, and who — subject, organisation and role.
#[derive(Clone)]
pub struct AlertStep(pub alert_step::Model);

#[row_fields]
#[Object]
impl AlertStep {
    async fn kind(&self) -> StepKind;

    /// The VKP follow-up event code (`vkp-composition-event-v090`).
    async fn vkp(&self) -> Option<VkpCoding> {
        let code = self.0.vkp_code.clone()?;
        Some(VkpCoding { system: VKP_EVENT_SYSTEM.to_string(), code })
    }

    async fn note(&self) -> Option<&str>;

    async fn outcome(&self) -> Option<AlertOutcome>;

    /// The subject of the token that took the step; `velferd` for Velferd's own steps.
    async fn subject(&self) -> &str;

    async fn organization(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        Organization::by_optional_id(ctx, self.0.organization_id).await
    }

    /// The role it was taken under.
    async fn role(&self) -> Option<Role> {
        self.0.role.as_deref().and_then(|r| r.parse().ok())
    }

    async fn at(&self) -> DateTime<Utc>;
}

/// Narrows the alert queue.
#[derive(InputObject, Default)]
pub struct AlertFilter {
    /// Only open alerts (true) or only resolved ones (false); both when left out.
    pub open: Option<bool>,
    /// Only this municipality's.
    pub municipality_id: Option<ID>,
}

/// The viewer, for a signed-in caller of a registered organisation; an error otherwise.
fn viewer(ctx: &Context<'_>, what: &str) -> Result<AlertViewer, ApiError> {
    let grant = &session(ctx).grant;
    grant.require_registered(what)?;
    AlertViewer::of(grant).ok_or_else(|| ApiError::internal("a registered caller without a principal"))
}

/// The role an alert found by `viewer.condition` is seen under (no query: the condition held).
fn listed_role(viewer: &AlertViewer, alert: &alert::Model) -> Role {
    if viewer.case_worker && alert.municipality_id == viewer.org_id {
        Role::CaseWorker
    } else if viewer.operator && alert.responder_id != Some(viewer.org_id) {
        Role::Operator
    } else if viewer.responder && alert.responder_id == Some(viewer.org_id) {
        Role::Responder
    } else {
        Role::Operator
    }
}

#[derive(Default)]
pub struct AlertQuery;

#[connections]
#[Object]
impl AlertQuery {
    /// The alert queue: the alerts you may see, most severe first, then oldest first. A
    /// response centre's `operator` sees the alerts of the municipalities it serves under a
    /// service agreement in force today; a municipality's `case_worker` its own; a `responder`
    /// those handed to its organisation. Others see none.
    async fn alerts(&self, ctx: &Context<'_>, filter: Option<AlertFilter>, page: PageArgs) -> Result<Page<Alert>> {
        let viewer = viewer(ctx, "alerts")?;
        let page = page.parse()?;
        let filter = filter.unwrap_or_default();
        let mut select = alert::Entity::find().filter(viewer.condition(workflow::today()));
        match filter.open {
            Some(true) => select = select.filter(alert::Column::Status.ne(AlertStatus::Resolved)),
            Some(false) => select = select.filter(alert::Column::Status.eq(AlertStatus::Resolved)),
            None => {}
        }
        select = select.filter_id(
            alert::Column::MunicipalityId,
            &filter.municipality_id,
            NodeType::Organization,
            "municipalityId",
        )?;
        let connection = page_sorted(
            ctx,
            select,
            SortKey::text(alert::Column::QueueKey),
            alert::Column::Id,
            OrderDirection::Asc,
            &page,
            |row| (Cursor { key: serde_json::json!(row.queue_key), id: row.id }, Alert(row)),
        )
        .await?;
        let db = state(ctx).db.write();
        for edge in &connection.edges {
            viewer.audit(db, &edge.node.0, listed_role(&viewer, &edge.node.0), "alert.read").await?;
        }
        Ok(connection)
    }
}

payload!(AlertPayload, alert: Alert, "Result of a step of an alert's handling.");

#[derive(InputObject)]
pub struct AlertInput {
    pub alert_id: ID,
}

#[derive(InputObject)]
pub struct AlertHandOverInput {
    pub alert_id: ID,
    /// The organisation that goes out: the municipality itself (its home-care service) or a
    /// response centre serving it today.
    pub responder_id: ID,
    /// For the responder; never a national identity number.
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct AlertResolveInput {
    pub alert_id: ID,
    /// How it ended; `CANCELLED_BY_DEVICE` and `RESOLVED_BY_DEVICE` are Velferd's own.
    pub outcome: AlertOutcome,
    /// Never a national identity number.
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct AlertNoteAddInput {
    pub alert_id: ID,
    /// Which VKP follow-up event the note is (cause 6, measure 7, conversation 8, dispatch 9,
    /// other party 10).
    pub kind: NoteKind,
    /// Never a national identity number.
    pub text: String,
}

/// The viewer of a workflow mutation, with only the roles the action takes.
fn actor(ctx: &Context<'_>, roles: &[Role], what: &str) -> Result<AlertViewer, ApiError> {
    let grant = &session(ctx).grant;
    let principal = grant.require_any(roles, what)?;
    let org = grant.organization().ok_or_else(|| ApiError::internal("a role without an organisation"))?;
    Ok(AlertViewer {
        subject: principal.subject.clone(),
        org_id: org.id,
        operator: roles.contains(&Role::Operator) && grant.has_role(Role::Operator),
        case_worker: roles.contains(&Role::CaseWorker) && grant.has_role(Role::CaseWorker),
        responder: roles.contains(&Role::Responder) && grant.has_role(Role::Responder),
    })
}

/// Runs `action` on the alert `id` in one transaction, with the change's announcement.
async fn step(
    ctx: &Context<'_>,
    viewer: AlertViewer,
    id: &ID,
    action: Result<Action, Invalid>,
) -> Result<AlertPayload> {
    let parsed = input_row(id, NodeType::Alert, "alertId").and_then(|row| Ok((row, action?)));
    let live = state(ctx).live.clone();
    mutate(ctx, parsed, Alert, async |txn, (row, action)| -> RuleResult<alert::Model, AlertError> {
        let (alert, notices) = workflow::act(txn, &viewer, row, action).await?;
        live::publish(txn, &live, notices).await?;
        Ok(alert)
    })
    .await
}

fn note(field: &'static str, text: Option<&str>) -> Result<Option<CareNote>, Invalid> {
    CareNote::parse_optional(field, text)
}

const DESK: &[Role] = &[Role::Operator, Role::CaseWorker];
const ANY_HANDLER: &[Role] = &[Role::Operator, Role::CaseWorker, Role::Responder];

#[derive(Default)]
pub struct AlertMutation;

#[Object]
impl AlertMutation {
    /// Takes an alert (VKP 1): its acknowledge deadline is met. Roles: `operator` of a centre
    /// serving the municipality, or the municipality's `case_worker`.
    async fn alert_acknowledge(&self, ctx: &Context<'_>, input: AlertInput) -> Result<AlertPayload> {
        let viewer = actor(ctx, DESK, "acknowledge alerts")?;
        step(ctx, viewer, &input.alert_id, Ok(Action::Acknowledge)).await
    }

    /// Hands an acknowledged alert to a responder organisation (VKP 4); it must accept within
    /// the escalation line's time. Roles: as `alertAcknowledge`.
    async fn alert_hand_over(&self, ctx: &Context<'_>, input: AlertHandOverInput) -> Result<AlertPayload> {
        let viewer = actor(ctx, DESK, "hand alerts over")?;
        let action = (|| {
            let responder_id = input_row(&input.responder_id, NodeType::Organization, "responderId")?;
            Ok::<_, Invalid>(Action::HandOver { responder_id, note: note("note", input.note.as_deref())? })
        })();
        step(ctx, viewer, &input.alert_id, action).await
    }

    /// The responder takes responsibility for an alert handed to its organisation (VKP 5).
    /// Role: `responder`.
    async fn alert_accept(&self, ctx: &Context<'_>, input: AlertInput) -> Result<AlertPayload> {
        let viewer = actor(ctx, &[Role::Responder], "accept alerts")?;
        step(ctx, viewer, &input.alert_id, Ok(Action::Accept)).await
    }

    /// Signs an alert off with its outcome (VKP 3). Roles: the desk (`operator`, `case_worker`)
    /// once it is acknowledged; the `responder` once it has accepted it.
    async fn alert_resolve(&self, ctx: &Context<'_>, input: AlertResolveInput) -> Result<AlertPayload> {
        let viewer = actor(ctx, ANY_HANDLER, "resolve alerts")?;
        let action = note("note", input.note.as_deref()).map(|note| Action::Resolve { outcome: input.outcome, note });
        step(ctx, viewer, &input.alert_id, action).await
    }

    /// Adds a note (VKP 6–10) to an alert that has been acknowledged. Roles: as `alertResolve`.
    async fn alert_note_add(&self, ctx: &Context<'_>, input: AlertNoteAddInput) -> Result<AlertPayload> {
        let viewer = actor(ctx, ANY_HANDLER, "add notes to alerts")?;
        let action = CareNote::parse("text", &input.text).map(|text| Action::Note { kind: input.kind, text });
        step(ctx, viewer, &input.alert_id, action).await
    }
}

impl NodeObject for Alert {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<Alert>, ApiError> {
        let grant = &session(ctx).grant;
        let Some(viewer) = AlertViewer::of(grant) else { return Ok(None) };
        let Some(row) = load_one(ctx, AlertById(id)).await? else { return Ok(None) };
        let Some(role) = viewer.sees(state(ctx).db.read(), &row).await? else { return Ok(None) };
        viewer.audit(state(ctx).db.write(), &row, role, "alert.read").await?;
        Ok(Some(Alert(row)))
    }
}

#[derive(Default)]
pub struct AlertSubscription;

/// An alert as a change left it, with the change's place in the outbox: resume after it with
/// `afterSequence`.
#[derive(SimpleObject)]
pub struct AlertDelivery {
    pub sequence: Sequence,
    pub alert: Alert,
}

/// The live alerts of `kind` (any when `None`) the viewer may see, after `after` or from now,
/// each audited as served.
async fn alert_stream(
    ctx: &Context<'_>,
    kind: Option<NoticeKind>,
    after: Option<Sequence>,
) -> Result<impl Stream<Item = Result<Shared<AlertDelivery>>> + use<>> {
    let viewer = viewer(ctx, "alerts")?;
    let (db, recorder) = (state(ctx).db.clone(), state(ctx).audit.clone());
    let heard = crate::live::Filter::new(&[crate::live::Topic::Alert], viewer.interest()).and(move |item| {
        item.decoded::<live::AlertNotice>().is_some_and(|notice| kind.is_none_or(|k| k == notice.kind))
    });
    crate::live::graphql::subscribe(ctx, heard, after, move |item| {
        let (db, recorder, viewer) = (db.clone(), recorder.clone(), viewer.clone());
        async move {
            let notice = item.decoded::<live::AlertNotice>()?;
            let role = match viewer.sees(db.read(), &notice.alert).await {
                Ok(Some(role)) => role,
                Ok(None) => return None,
                Err(error) => {
                    tracing::warn!(%error, "deciding who sees a live alert failed; it is not sent");
                    return None;
                }
            };
            // An alert whose audit entry cannot be written is not served.
            if let Err(error) = viewer.audit_live(&recorder, &notice.alert, role).await {
                tracing::warn!(%error, "auditing a live alert failed; it is not sent");
                return None;
            }
            Some(AlertDelivery { sequence: Sequence(item.sequence), alert: Alert(notice.alert.clone()) })
        }
    })
    .await
}

#[Subscription]
impl AlertSubscription {
    /// Alerts as they are raised, on any server instance, that you may see — as the `alerts`
    /// queue decides. Each is a new alert; repeated events join it (`alertChanged`).
    ///
    /// Each delivery carries its `sequence`: after a disconnection, subscribe with
    /// `afterSequence` set to the last one received to get what you missed, in order and each
    /// once (see `deviceEventReceived` for the errors it can end with).
    async fn alert_raised(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "resume after this sequence, the last one received")] after_sequence: Option<Sequence>,
    ) -> Result<impl Stream<Item = Result<Shared<AlertDelivery>>> + use<>> {
        alert_stream(ctx, Some(NoticeKind::Raised), after_sequence).await
    }

    /// Alerts as they are raised or change (joined, acknowledged, handed over, accepted,
    /// escalated, noted, resolved, closed by the device), on any instance, that you may see;
    /// resumable like `alertRaised`.
    async fn alert_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "resume after this sequence, the last one received")] after_sequence: Option<Sequence>,
    ) -> Result<impl Stream<Item = Result<Shared<AlertDelivery>>> + use<>> {
        alert_stream(ctx, None, after_sequence).await
    }
}
