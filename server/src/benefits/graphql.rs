//! GraphQL face of benefits realisation: entered indicators, the municipality's assumptions and
//! the measured figures (the same report the CSV export writes).

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::{NaiveDate, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use super::measure::{self, Suppression};
use super::model::{benefit_indicator, benefit_measurement};
use super::report::{self, Assumptions, Cell, Figures, Indicator, Report};
use super::rules::{self, Dated, NewAssumptions, NewIndicator, NewMeasurement};
use super::values::{Quantity, YearMonth};
use crate::auth::{Grant, Role};
use crate::errors::{ApiError, Invalid};
use crate::graphql::context::{caller, caller_any, load_one, mutate, run_parsed, session, state, today};
use crate::graphql::errors::{Payload, payload};
use crate::graphql::loaders::MeasurementsOf;
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, argument_row, input_row};
use crate::organizations::Organization;
use crate::procurement::graphql::Procurement;
use velferd_macros::row_fields;

pub use self::BenefitsMutation as Mutation;
pub use self::BenefitsQuery as Query;

/// A benefit indicator a municipality follows for a procurement: baseline, target and
/// measurements over time, entered by the municipality.
#[derive(Clone)]
pub struct BenefitIndicator(pub benefit_indicator::Model);

/// A value on a date.
#[derive(SimpleObject)]
pub struct DatedValue {
    /// A decimal, e.g. "12.5".
    pub value: String,
    pub on: NaiveDate,
}

/// One measurement of an indicator.
#[derive(SimpleObject)]
pub struct BenefitMeasurement {
    pub measured_on: NaiveDate,
    /// A decimal, e.g. "12.5".
    pub value: String,
    pub note: Option<String>,
    pub recorded_by: String,
}

#[row_fields]
#[Object]
impl BenefitIndicator {
    async fn id(&self) -> ID {
        ID(super::indicator_id(self.0.id))
    }

    /// The procurement, when you may see it.
    async fn procurement(&self, ctx: &Context<'_>) -> Result<Option<Procurement>> {
        Ok(Procurement::fetch(ctx, self.0.procurement_id).await?)
    }

    async fn municipality(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.municipality_id).await
    }

    async fn name(&self) -> &str;

    async fn unit(&self) -> &str;

    async fn baseline(&self) -> DatedValue {
        DatedValue { value: Quantity::from_e4(self.0.baseline_value_e4).to_string(), on: self.0.baseline_on }
    }

    async fn target(&self) -> DatedValue {
        DatedValue { value: Quantity::from_e4(self.0.target_value_e4).to_string(), on: self.0.target_on }
    }

    /// Oldest first (at most 500).
    async fn measurements(&self, ctx: &Context<'_>) -> Result<Vec<BenefitMeasurement>> {
        let mut rows = load_one(ctx, MeasurementsOf(self.0.id)).await?.unwrap_or_default();
        rows.sort_by_key(|m| (m.measured_on, m.id));
        Ok(rows.into_iter().map(measurement).collect())
    }
}

fn measurement(m: benefit_measurement::Model) -> BenefitMeasurement {
    BenefitMeasurement {
        measured_on: m.measured_on,
        value: Quantity::from_e4(m.value_e4).to_string(),
        note: m.note,
        recorded_by: m.recorded_by,
    }
}

/// A municipality's own assumptions behind its figures.
#[derive(SimpleObject)]
pub struct BenefitAssumptions {
    pub municipality: Organization,
    /// A dose dispensed at most this many minutes before or after its scheduled time is on
    /// time (default 60).
    pub dose_window_minutes: i32,
    /// Minutes one home visit takes, as the municipality assumes; null until it says.
    pub minutes_per_visit: Option<i32>,
}

/// The measured figures of one municipality over a range of months.
pub struct BenefitFigures(pub Report);

#[Object]
impl BenefitFigures {
    async fn municipality(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.municipality_id).await
    }

    /// First month, `YYYY-MM`.
    async fn from(&self) -> String {
        self.0.from.to_string()
    }

    /// Last month, `YYYY-MM`.
    async fn to(&self) -> String {
        self.0.to.to_string()
    }

    /// Months are calendar months in this time zone.
    async fn time_zone(&self) -> &str {
        "Europe/Oslo"
    }

    /// A cell covering fewer recipients than this is suppressed.
    async fn minimum_recipients(&self) -> u32 {
        self.0.threshold
    }

    async fn dose_window_minutes(&self) -> u32 {
        self.0.assumptions.dose_window_minutes
    }

    async fn minutes_per_visit(&self) -> Option<u32> {
        self.0.assumptions.minutes_per_visit
    }

    /// Per month (oldest first) and indicator: one cell per supplier (by id), then the
    /// municipality's total.
    async fn cells(&self) -> Vec<BenefitCell> {
        self.0.cells.iter().map(|c| BenefitCell(c.clone(), self.0.assumptions)).collect()
    }
}

/// One cell: a month, an indicator, a supplier or the total. A suppressed cell has every
/// figure null and says why.
pub struct BenefitCell(Cell, Assumptions);

#[row_fields]
#[Object]
impl BenefitCell {
    async fn month(&self) -> String {
        self.0.month.to_string()
    }

    async fn indicator(&self) -> Indicator;

    /// The supplier of the devices; null for the municipality's total.
    async fn supplier(&self, ctx: &Context<'_>) -> Result<Option<Organization>> {
        match self.0.supplier_id {
            Some(id) => Ok(Some(Organization::by_id(ctx, id).await?)),
            None => Ok(None),
        }
    }

    /// Whether this is the municipality's total over its suppliers.
    async fn total(&self) -> bool {
        self.0.supplier_id.is_none()
    }

    /// Why the figures are withheld; null when they are shown.
    async fn suppressed(&self) -> Option<Suppression>;

    /// Service recipients the cell covers; null when suppressed.
    async fn recipients(&self) -> Option<u64>;

    async fn medication(&self) -> Option<MedicationFigures> {
        match &self.0.figures {
            Some(Figures::Medication(t)) => Some(MedicationFigures {
                doses_scheduled: t.scheduled,
                doses_on_time: t.on_time,
                adherence: t.adherence().map(|r| r.decimal()),
                home_visits_replaced: t.unassisted_on_time,
                minutes_per_visit: self.1.minutes_per_visit,
                minutes_freed: t.minutes_freed(self.1.minutes_per_visit),
                dose_window_minutes: self.1.dose_window_minutes,
            }),
            _ => None,
        }
    }

    async fn alarm_answer(&self) -> Option<AlarmAnswerFigures> {
        match &self.0.figures {
            Some(Figures::AlarmAnswer(s)) => Some(AlarmAnswerFigures {
                alarms_counted: s.counted,
                alarms_answered: s.answered,
                median_seconds: s.median_ms.map(measure::seconds),
                p90_seconds: s.p90_ms.map(measure::seconds),
                answered_within_60s: s.within_60s.map(|r| r.decimal()),
                target_within_60s: report::TARGET_WITHIN_60S,
                answered_within_180s: s.within_180s.map(|r| r.decimal()),
                target_within_180s: report::TARGET_WITHIN_180S,
            }),
            _ => None,
        }
    }

    async fn devices_online(&self) -> Option<DevicesOnlineFigures> {
        match &self.0.figures {
            Some(Figures::DevicesOnline(t)) => Some(DevicesOnlineFigures {
                devices: t.devices,
                in_service_seconds: t.in_service_seconds,
                online_seconds: t.online_seconds,
                share: t.share().map(|r| r.decimal()),
            }),
            _ => None,
        }
    }
}

/// Dose adherence and the home visits it replaced.
#[derive(SimpleObject)]
pub struct MedicationFigures {
    /// Scheduled doses: one per device and scheduled time the device reported.
    pub doses_scheduled: u64,
    /// Dispensed within the dose window of their scheduled time.
    pub doses_on_time: u64,
    /// dosesOnTime ÷ dosesScheduled, four decimals.
    pub adherence: Option<String>,
    /// On-time doses the recipient took unassisted: home visits replaced.
    pub home_visits_replaced: u64,
    /// The municipality's assumption, shown beside the figure it makes.
    pub minutes_per_visit: Option<u32>,
    /// homeVisitsReplaced × minutesPerVisit; null until the municipality sets minutesPerVisit.
    pub minutes_freed: Option<u64>,
    pub dose_window_minutes: u32,
}

/// Time from an alarm raised to the response centre's first acknowledgement.
#[derive(SimpleObject)]
pub struct AlarmAnswerFigures {
    /// Safety alarms counted (alarms cancelled at the device before an answer are not).
    pub alarms_counted: u64,
    pub alarms_answered: u64,
    /// Nearest-rank median over the answered alarms, in seconds.
    pub median_seconds: Option<String>,
    /// Nearest-rank 90th percentile over the answered alarms, in seconds.
    pub p90_seconds: Option<String>,
    /// Share of counted alarms answered within 60 s.
    #[graphql(name = "answeredWithin60s")]
    pub answered_within_60s: Option<String>,
    /// TEC Quality's target: 0.975.
    #[graphql(name = "targetWithin60s")]
    pub target_within_60s: &'static str,
    #[graphql(name = "answeredWithin180s")]
    pub answered_within_180s: Option<String>,
    /// TEC Quality's target: 0.99.
    #[graphql(name = "targetWithin180s")]
    pub target_within_180s: &'static str,
}

/// Time-weighted share of the month the devices in service were online.
#[derive(SimpleObject)]
pub struct DevicesOnlineFigures {
    pub devices: u64,
    pub in_service_seconds: i64,
    pub online_seconds: i64,
    /// onlineSeconds ÷ inServiceSeconds, four decimals.
    pub share: Option<String>,
}

/// The months a figures query asks for, parsed: `from` to `to`, at most a year.
pub fn month_range(from: &str, to: &str) -> Result<(YearMonth, YearMonth), Invalid> {
    let (first, last) = (YearMonth::parse("from", from)?, YearMonth::parse("to", to)?);
    let months = first.through(last).len();
    if months == 0 || months > report::MAX_MONTHS {
        return Err(Invalid::new(
            "to",
            "INVALID_MONTH_RANGE",
            format!("from must not be after to, and a report covers at most {} months", report::MAX_MONTHS),
        ));
    }
    Ok((first, last))
}

/// The report of `municipality_id`, or none when the caller may not read it (or it is not a
/// municipality): one implementation for GraphQL and the CSV export.
pub async fn figures(
    state: &crate::app::AppState,
    grant: &Grant,
    municipality_id: i64,
    range: (YearMonth, YearMonth),
) -> Result<Option<Report>, ApiError> {
    if !rules::may_read(grant, municipality_id) {
        return Ok(None);
    }
    let db = state.db.read();
    let Some(org) = crate::organizations::find_by_id(db, municipality_id).await? else { return Ok(None) };
    if org.kind != crate::organizations::OrganizationKind::Municipality {
        return Ok(None);
    }
    Ok(Some(report::measure(db, municipality_id, range.0, range.1, state.benefits_min_recipients, Utc::now()).await?))
}

#[derive(Default)]
pub struct BenefitsQuery;

#[Object]
impl BenefitsQuery {
    /// The figures measured from the municipality's devices, per Europe/Oslo month from `from`
    /// to `to` (`YYYY-MM`, at most 12 months), per supplier and in total, with small cells
    /// suppressed. Readers: the municipality's own roles and the programme's `advisor`; for
    /// anyone else, as for an organisation that is not a municipality: null. Costs 500, what
    /// the CSV export takes from the throttle bucket: it reads a year of events at most.
    #[graphql(complexity = 500)]
    async fn benefit_figures(
        &self,
        ctx: &Context<'_>,
        municipality_id: ID,
        from: String,
        to: String,
    ) -> Result<Option<BenefitFigures>> {
        let grant = &session(ctx).grant;
        grant.require_registered("benefit figures")?;
        let municipality = argument_row(&municipality_id, NodeType::Organization, "municipalityId")?;
        let range = month_range(&from, &to).map_err(|e| ApiError::BadUserInput(e.message))?;
        Ok(figures(state(ctx), grant, municipality, range).await?.map(BenefitFigures))
    }

    /// The indicators the municipality follows for a procurement, in the order entered.
    /// Readers as `benefitFigures`; anyone else gets an empty list.
    async fn benefit_indicators(
        &self,
        ctx: &Context<'_>,
        municipality_id: ID,
        procurement_id: ID,
    ) -> Result<Vec<BenefitIndicator>> {
        let grant = &session(ctx).grant;
        grant.require_registered("benefit indicators")?;
        let municipality = argument_row(&municipality_id, NodeType::Organization, "municipalityId")?;
        let procurement = argument_row(&procurement_id, NodeType::Procurement, "procurementId")?;
        if !rules::may_read(grant, municipality) {
            return Ok(vec![]);
        }
        let rows = benefit_indicator::Entity::find()
            .filter(benefit_indicator::Column::MunicipalityId.eq(municipality))
            .filter(benefit_indicator::Column::ProcurementId.eq(procurement))
            .order_by_asc(benefit_indicator::Column::Id)
            .all(state(ctx).db.read())
            .await?;
        Ok(rows.into_iter().map(BenefitIndicator).collect())
    }

    /// One indicator; null when it does not exist or you may not read it.
    async fn benefit_indicator(&self, ctx: &Context<'_>, id: ID) -> Result<Option<BenefitIndicator>> {
        let grant = &session(ctx).grant;
        grant.require_registered("benefit indicators")?;
        let Some(row) = super::indicator_row(&id) else { return Ok(None) };
        let found = benefit_indicator::Entity::find_by_id(row).one(state(ctx).db.read()).await?;
        Ok(found.filter(|i| rules::may_read(grant, i.municipality_id)).map(BenefitIndicator))
    }

    /// The municipality's assumptions; null for anyone who may not read its figures.
    async fn benefit_assumptions(&self, ctx: &Context<'_>, municipality_id: ID) -> Result<Option<BenefitAssumptions>> {
        let grant = &session(ctx).grant;
        grant.require_registered("benefit assumptions")?;
        let municipality = argument_row(&municipality_id, NodeType::Organization, "municipalityId")?;
        if !rules::may_read(grant, municipality) {
            return Ok(None);
        }
        Ok(Some(assumptions_of(ctx, municipality).await?))
    }
}

async fn assumptions_of(ctx: &Context<'_>, municipality: i64) -> Result<BenefitAssumptions> {
    let a = Assumptions::of(state(ctx).db.read(), municipality).await.map_err(ApiError::from)?;
    Ok(BenefitAssumptions {
        municipality: Organization::by_id(ctx, municipality).await?,
        dose_window_minutes: a.dose_window_minutes as i32,
        minutes_per_visit: a.minutes_per_visit.map(|m| m as i32),
    })
}

payload!(BenefitIndicatorCreatePayload, benefit_indicator: BenefitIndicator, "Result of `benefitIndicatorCreate`.");
payload!(BenefitMeasurementAddPayload, benefit_indicator: BenefitIndicator, "Result of `benefitMeasurementAdd`.");
payload!(BenefitAssumptionsSetPayload, benefit_assumptions: BenefitAssumptions, "Result of `benefitAssumptionsSet`.");

/// A decimal value on a date.
#[derive(InputObject)]
pub struct DatedValueInput {
    /// A decimal with at most 4 decimals, e.g. "12.5".
    pub value: String,
    pub on: NaiveDate,
}

#[derive(InputObject)]
pub struct BenefitIndicatorCreateInput {
    /// A procurement your municipality takes part in.
    pub procurement_id: ID,
    /// E.g. "Home visits for medication per week"; unique per procurement for your municipality.
    pub name: String,
    /// E.g. "visits/week", "hours", "NOK".
    pub unit: String,
    pub baseline: DatedValueInput,
    /// Its date must be after the baseline's.
    pub target: DatedValueInput,
}

#[derive(InputObject)]
pub struct BenefitMeasurementAddInput {
    pub indicator_id: ID,
    /// Not in the future, not before the baseline; one measurement per date.
    pub measured_on: NaiveDate,
    pub value: String,
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct BenefitAssumptionsSetInput {
    /// 1 to 720.
    pub dose_window_minutes: i32,
    /// 1 to 480; null: not stated (no minutes freed are shown).
    pub minutes_per_visit: Option<i32>,
}

impl BenefitIndicatorCreateInput {
    fn parse(self) -> Result<NewIndicator, Invalid> {
        Ok(NewIndicator {
            procurement_id: input_row(&self.procurement_id, NodeType::Procurement, "procurementId")?,
            name: rules::IndicatorName::parse("name", &self.name)?,
            unit: rules::IndicatorUnit::parse("unit", &self.unit)?,
            baseline: Dated { value: Quantity::parse("baseline.value", &self.baseline.value)?, on: self.baseline.on },
            target: Dated { value: Quantity::parse("target.value", &self.target.value)?, on: self.target.on },
        })
    }
}

impl BenefitMeasurementAddInput {
    fn parse(self) -> Result<NewMeasurement, Invalid> {
        let indicator_id = super::indicator_row(&self.indicator_id)
            .ok_or_else(|| Invalid::not_found("indicatorId", "`indicatorId` is not a benefit indicator id"))?;
        Ok(NewMeasurement {
            indicator_id,
            measured_on: self.measured_on,
            value: Quantity::parse("value", &self.value)?,
            note: rules::MeasurementNote::parse_optional("note", self.note.as_deref())?,
        })
    }
}

#[derive(Default)]
pub struct BenefitsMutation;

#[Object]
impl BenefitsMutation {
    /// Starts following a benefit indicator for a procurement your municipality takes part in.
    /// Roles: `procurement_officer`, `municipality_admin`.
    async fn benefit_indicator_create(
        &self,
        ctx: &Context<'_>,
        input: BenefitIndicatorCreateInput,
    ) -> Result<BenefitIndicatorCreatePayload> {
        let caller = entering_caller(ctx)?;
        mutate(ctx, input.parse(), BenefitIndicator, async |txn, new| rules::create_indicator(txn, &caller, new).await)
            .await
    }

    /// Adds a measurement to one of your municipality's indicators. Roles:
    /// `procurement_officer`, `municipality_admin`.
    async fn benefit_measurement_add(
        &self,
        ctx: &Context<'_>,
        input: BenefitMeasurementAddInput,
    ) -> Result<BenefitMeasurementAddPayload> {
        let caller = entering_caller(ctx)?;
        mutate(ctx, input.parse(), BenefitIndicator, async |txn, new| {
            rules::add_measurement(txn, &caller, new, today()).await
        })
        .await
    }

    /// Sets your municipality's assumptions behind its measured figures: the dose window and
    /// the minutes one home visit takes. Role: `municipality_admin`.
    async fn benefit_assumptions_set(
        &self,
        ctx: &Context<'_>,
        input: BenefitAssumptionsSetInput,
    ) -> Result<BenefitAssumptionsSetPayload> {
        let caller = caller(ctx, Role::MunicipalityAdmin, "set benefit assumptions").await?;
        let parsed = NewAssumptions::new(input.dose_window_minutes, input.minutes_per_visit);
        Ok(match run_parsed(ctx, parsed, async |txn, new| rules::set_assumptions(txn, &caller, new).await).await {
            Ok(municipality) => Payload::new(Some(assumptions_of(ctx, municipality).await?), vec![]),
            Err(refusal) => Payload::refused(refusal)?,
        })
    }
}

/// The caller of a mutation that enters indicators: `procurement_officer` or
/// `municipality_admin` of its municipality.
fn entering_caller(ctx: &Context<'_>) -> Result<crate::auth::Caller, ApiError> {
    caller_any(ctx, &[Role::ProcurementOfficer, Role::MunicipalityAdmin], "enter benefit indicators")
}
