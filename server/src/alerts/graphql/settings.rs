//! Service agreements, municipalities' escalation lines and products' monitoring intervals:
//! what decides who handles an alert and when it escalates.

use async_graphql::{Context, ID, InputObject, Object, Result};
use chrono::{DateTime, NaiveDate, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};
use velferd_plugins::Severity;

use crate::agreements::graphql::CallOff;
use crate::alerts::model::{alert_escalation, product_monitoring, service_agreement};
use crate::alerts::rules::severity_of;
use crate::alerts::workflow::{self, EscalationLine, Monitoring, NewServiceAgreement};
use crate::auth::Role;
use crate::devices::graphql::DeviceProduct;
use crate::devices::model::device_product;
use crate::errors::{ApiError, Invalid, refuse};
use crate::graphql::connection::{OrderDirection, Page, PageArgs, page_by_id};
use crate::graphql::context::{caller_any, load_existing, load_one, mutate, session, state};
use crate::graphql::errors::payload;
use crate::graphql::loaders::{CallOffById, ProductById, ServiceAgreementById};
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, input_row};
use crate::organizations::{Organization, OrganizationKind};
use velferd_macros::{connections, row_fields};

/// A response centre serves a municipality over a period: its operators see and handle the
/// municipality's alerts while it is in force.
#[derive(Clone)]
pub struct ServiceAgreement(pub service_agreement::Model);

#[row_fields]
#[Object]
impl ServiceAgreement {
    pub async fn id(&self) -> ID;

    async fn response_centre(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.response_centre_id).await
    }

    async fn municipality(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.municipality_id).await
    }

    /// The call-off under which the municipality bought the service; the municipality only.
    async fn call_off(&self, ctx: &Context<'_>) -> Result<Option<CallOff>> {
        let Some(id) = self.0.call_off_id else { return Ok(None) };
        if session(ctx).organization_id() != Some(self.0.municipality_id) {
            return Ok(None);
        }
        Ok(load_one(ctx, CallOffById(id)).await?.map(CallOff))
    }

    async fn valid_from(&self) -> NaiveDate;

    async fn valid_to(&self) -> NaiveDate;

    /// Whether it is in force today.
    async fn in_force(&self) -> bool {
        let today = workflow::today();
        self.0.valid_from <= today && today <= self.0.valid_to
    }

    async fn created_at(&self) -> DateTime<Utc>;
}

/// A municipality's escalation line for one severity.
pub struct AlertEscalationLine {
    severity: Severity,
    acknowledge_seconds: i32,
    accept_seconds: i32,
    next_line_id: i64,
}

#[Object]
impl AlertEscalationLine {
    async fn severity(&self) -> Severity {
        self.severity
    }

    /// An alert not acknowledged this long after it was raised escalates (default 60).
    async fn acknowledge_within_seconds(&self) -> i32 {
        self.acknowledge_seconds
    }

    /// A hand-over not accepted this long after it was made escalates (default 300).
    async fn accept_within_seconds(&self) -> i32 {
        self.accept_seconds
    }

    /// Where a late alert goes: a response centre serving the municipality, or the municipality
    /// itself (the default).
    async fn next_line(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.next_line_id).await
    }
}

/// How often a product's devices must be heard from.
pub struct DeviceProductMonitoring(product_monitoring::Model);

#[row_fields]
#[Object]
impl DeviceProductMonitoring {
    async fn product(&self, ctx: &Context<'_>) -> Result<DeviceProduct> {
        Ok(DeviceProduct(load_existing(ctx, ProductById(self.0.product_id), "device product").await?))
    }

    /// A device not heard from this long raises one `device-offline` alert; null: not watched.
    async fn heartbeat_interval_seconds(&self) -> Option<i32> {
        self.0.heartbeat_seconds
    }

    /// A device without a test transmission this long raises one `test-transmission-missed`
    /// alert; null: not watched.
    async fn test_interval_seconds(&self) -> Option<i32> {
        self.0.test_seconds
    }

    async fn set_at(&self) -> DateTime<Utc>;
}

#[derive(Default)]
pub struct AlertSettingsQuery;

#[connections]
#[Object]
impl AlertSettingsQuery {
    /// Service agreements your organisation is party to (as the municipality or the response
    /// centre); all of them for `admin`.
    async fn service_agreements(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<ServiceAgreement>> {
        let org = session(ctx).grant.require_registered("service agreements")?.clone();
        let page = page.parse()?;
        let mut select = service_agreement::Entity::find().order_by_asc(service_agreement::Column::Id);
        if !session(ctx).has_role(Role::Admin) {
            select = select.filter(
                sea_orm::Condition::any()
                    .add(service_agreement::Column::MunicipalityId.eq(org.id))
                    .add(service_agreement::Column::ResponseCentreId.eq(org.id)),
            );
        }
        page_by_id(ctx, OrderDirection::Asc, select, service_agreement::Column::Id, &page, |a| a.id, ServiceAgreement)
            .await
    }

    /// Your municipality's escalation line for each severity (defaults where none is set);
    /// empty for other organisations.
    async fn alert_escalations(&self, ctx: &Context<'_>) -> Result<Vec<AlertEscalationLine>> {
        let org = session(ctx).grant.require_registered("escalation lines")?.clone();
        if org.kind != OrganizationKind::Municipality {
            return Ok(vec![]);
        }
        let mut lines = Vec::new();
        for severity in Severity::ALL.into_iter().rev() {
            let (acknowledge, accept, next) =
                crate::alerts::rules::escalation_of(state(ctx).db.read(), org.id, severity.name()).await?;
            lines.push(AlertEscalationLine {
                severity,
                acknowledge_seconds: acknowledge,
                accept_seconds: accept,
                next_line_id: next.unwrap_or(org.id),
            });
        }
        Ok(lines)
    }
}

payload!(ServiceAgreementCreatePayload, service_agreement: ServiceAgreement, "Result of `serviceAgreementCreate`.");
payload!(AlertEscalationSetPayload, escalation: AlertEscalationLine, "Result of `alertEscalationSet`.");
payload!(
    DeviceProductMonitoringSetPayload,
    monitoring: DeviceProductMonitoring,
    "Result of `deviceProductMonitoringSet`."
);

#[derive(InputObject)]
pub struct ServiceAgreementCreateInput {
    /// The response centre that serves your municipality.
    pub response_centre_id: ID,
    pub valid_from: NaiveDate,
    pub valid_to: NaiveDate,
    /// Your call-off under which you bought the service, if any.
    pub call_off_id: Option<ID>,
}

#[derive(InputObject)]
pub struct AlertEscalationSetInput {
    pub severity: Severity,
    /// 1 to 604 800 (a week).
    pub acknowledge_within_seconds: i32,
    /// 1 to 604 800 (a week).
    pub accept_within_seconds: i32,
    /// A response centre with a service agreement with your municipality, or your municipality
    /// itself (the default).
    pub next_line_id: Option<ID>,
}

#[derive(InputObject)]
pub struct DeviceProductMonitoringSetInput {
    /// The product's slug.
    pub product: String,
    /// 1 to 604 800 seconds; null stops watching heartbeats.
    pub heartbeat_interval_seconds: Option<i32>,
    /// 1 to 604 800 seconds; null stops watching test transmissions.
    pub test_interval_seconds: Option<i32>,
}

#[derive(Default)]
pub struct AlertSettingsMutation;

#[Object]
impl AlertSettingsMutation {
    /// Lets a response centre serve your municipality over a period. Roles:
    /// `procurement_officer` or `municipality_admin`.
    async fn service_agreement_create(
        &self,
        ctx: &Context<'_>,
        input: ServiceAgreementCreateInput,
    ) -> Result<ServiceAgreementCreatePayload> {
        let caller = caller_any(ctx, &[Role::ProcurementOfficer, Role::MunicipalityAdmin], "make service agreements")?;
        let parsed = (|| {
            Ok::<_, Invalid>(NewServiceAgreement {
                response_centre_id: input_row(&input.response_centre_id, NodeType::Organization, "responseCentreId")?,
                call_off_id: input
                    .call_off_id
                    .as_ref()
                    .map(|id| input_row(id, NodeType::CallOff, "callOffId"))
                    .transpose()?,
                valid_from: input.valid_from,
                valid_to: input.valid_to,
            })
        })();
        mutate(ctx, parsed, ServiceAgreement, async |txn, new| {
            workflow::create_service_agreement(txn, &caller, new).await
        })
        .await
    }

    /// Sets your municipality's escalation line for one severity: how long an alert may wait
    /// for acknowledgement and a hand-over for acceptance, and where it goes when late. Role:
    /// `municipality_admin`.
    async fn alert_escalation_set(
        &self,
        ctx: &Context<'_>,
        input: AlertEscalationSetInput,
    ) -> Result<AlertEscalationSetPayload> {
        let caller = caller_any(ctx, &[Role::MunicipalityAdmin], "set escalation lines")?;
        let parsed = (|| {
            Ok::<_, Invalid>(EscalationLine {
                severity: input.severity,
                acknowledge_seconds: workflow::seconds("acknowledgeWithinSeconds", input.acknowledge_within_seconds)?,
                accept_seconds: workflow::seconds("acceptWithinSeconds", input.accept_within_seconds)?,
                next_line_id: input
                    .next_line_id
                    .as_ref()
                    .map(|id| input_row(id, NodeType::Organization, "nextLineId"))
                    .transpose()?,
            })
        })();
        let line_of = |row: alert_escalation::Model| AlertEscalationLine {
            severity: severity_of(&row.severity),
            acknowledge_seconds: row.acknowledge_seconds,
            accept_seconds: row.accept_seconds,
            next_line_id: row.next_line_id.unwrap_or(row.municipality_id),
        };
        mutate(ctx, parsed, line_of, async |txn, line| workflow::set_escalation(txn, &caller, line).await).await
    }

    /// Sets how often a product's devices must be heard from, as approved at adapter review: a
    /// device silent past the heartbeat interval raises one `device-offline` alert, one without
    /// a test transmission past the test interval one `test-transmission-missed` alert; the
    /// device's next event (test transmission) closes it. Role: `admin`.
    async fn device_product_monitoring_set(
        &self,
        ctx: &Context<'_>,
        input: DeviceProductMonitoringSetInput,
    ) -> Result<DeviceProductMonitoringSetPayload> {
        let caller = caller_any(ctx, &[Role::Admin], "set products' monitoring intervals")?;
        let parsed = (|| {
            let heartbeat = input
                .heartbeat_interval_seconds
                .map(|s| workflow::seconds("heartbeatIntervalSeconds", s))
                .transpose()?;
            let test = input.test_interval_seconds.map(|s| workflow::seconds("testIntervalSeconds", s)).transpose()?;
            Ok::<_, Invalid>((input.product.clone(), heartbeat, test))
        })();
        mutate(ctx, parsed, DeviceProductMonitoring, async |txn, (slug, heartbeat_seconds, test_seconds)| {
            let Some(product) =
                device_product::Entity::find().filter(device_product::Column::Slug.eq(slug)).one(txn).await?
            else {
                return refuse(Invalid::not_found("product", "no such device product"));
            };
            let monitoring = Monitoring { product_id: product.id, heartbeat_seconds, test_seconds };
            workflow::set_monitoring(txn, &caller, monitoring).await
        })
        .await
    }
}

impl NodeObject for ServiceAgreement {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<ServiceAgreement>, ApiError> {
        let session = session(ctx);
        let Some(org) = session.organization() else { return Ok(None) };
        let Some(row) = load_one(ctx, ServiceAgreementById(id)).await? else { return Ok(None) };
        let party = row.municipality_id == org.id || row.response_centre_id == org.id;
        Ok((party || session.has_role(Role::Admin)).then_some(ServiceAgreement(row)))
    }
}
