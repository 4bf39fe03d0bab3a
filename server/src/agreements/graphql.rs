//! GraphQL face of framework agreements and call-offs.

use std::collections::BTreeMap;

use async_graphql::{Context, ID, InputObject, Object, Result, SimpleObject};
use chrono::NaiveDate;

use super::model::{Acquisition, CallOffStatus, RolloutScope, call_off, framework_agreement};
use super::rules::{self, AgreementTerms, CallOffQuantity, NewCallOff, OpeningStatus};
use crate::auth::Role;
use crate::errors::{ApiError, Invalid};
use crate::graphql::connection::{Page, PageArgs, page_in_memory};
use crate::graphql::context::{caller, load_existing, load_one, mutate, state, today};
use crate::graphql::errors::payload;
use crate::graphql::loaders::{AgreementById, CallOffsUnder, ProcurementById, UserStoryById};
use crate::graphql::node::NodeObject;
use crate::graphql::relay::{NodeType, input_row};
use crate::money::{Money, Nok};
use crate::organizations::Organization;
use crate::procurement::graphql::access;
use crate::procurement::graphql::{Procurement, UserStory};
use velferd_macros::{connections, row_fields};

// `Query`, `Mutation` and `Subscription` name the area's roots for the area table, `crate::areas!`.
pub use self::AgreementMutation as Mutation;

/// A framework agreement (rammeavtale) with one supplier for one user story.
#[derive(Clone)]
pub struct FrameworkAgreement(pub framework_agreement::Model);

/// Call-offs of one municipality under one agreement.
#[derive(SimpleObject)]
pub struct MunicipalityCallOffTotal {
    pub municipality: Organization,
    /// Units in call-offs that are not cancelled.
    pub quantity: i64,
    pub call_offs: u64,
}

impl FrameworkAgreement {
    /// The call-offs under this agreement the viewer may see.
    async fn visible_call_offs(&self, ctx: &Context<'_>) -> Result<Vec<call_off::Model>> {
        let p = load_existing(ctx, ProcurementById(self.0.procurement_id), "procurement").await?;
        let access = access(ctx, &p).await?;
        Ok(load_one(ctx, CallOffsUnder(self.0.id))
            .await?
            .unwrap_or_default()
            .into_iter()
            .filter(|c| access.can_see_call_off(c.municipality_id, self.0.supplier_id))
            .collect())
    }
}

#[row_fields]
#[connections]
#[Object]
impl FrameworkAgreement {
    pub async fn id(&self) -> ID;

    async fn procurement(&self, ctx: &Context<'_>) -> Result<Procurement> {
        Ok(Procurement(load_existing(ctx, ProcurementById(self.0.procurement_id), "procurement").await?))
    }

    async fn supplier(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.supplier_id).await
    }

    async fn user_story(&self, ctx: &Context<'_>) -> Result<UserStory> {
        Ok(UserStory(load_existing(ctx, UserStoryById(self.0.user_story_id), "story").await?))
    }

    async fn starts_on(&self) -> NaiveDate;

    async fn ends_on(&self) -> NaiveDate;

    /// Unit purchase price, when the supplier offered buying.
    async fn purchase_price(&self) -> Option<Money> {
        self.0.purchase_price_ore.map(|o| Nok::from_ore(o).into())
    }

    /// Unit lease price per month, when the supplier offered leasing.
    async fn lease_price_per_month(&self) -> Option<Money> {
        self.0.lease_price_ore_per_month.map(|o| Nok::from_ore(o).into())
    }

    /// Most units all call-offs together may take.
    async fn volume_cap(&self) -> i32;

    /// Units still available: the cap less every call-off that is not cancelled (all of them,
    /// including those you may not see).
    async fn remaining_volume(&self, ctx: &Context<'_>) -> Result<i64> {
        let all = load_one(ctx, CallOffsUnder(self.0.id)).await?.unwrap_or_default();
        Ok(i64::from(self.0.volume_cap) - rules::used_volume(&all))
    }

    /// Call-offs you may see: your municipality's, or all as the supplier, the lead's
    /// procurement officers or an admin.
    async fn call_offs(&self, ctx: &Context<'_>, page: PageArgs) -> Result<Page<CallOff>> {
        let page = page.parse()?;
        let rows: Vec<CallOff> = self.visible_call_offs(ctx).await?.into_iter().map(CallOff).collect();
        Ok(page_in_memory(rows, |c| c.0.id, &page))
    }

    /// Per municipality: units and number of call-offs, over the call-offs you may see.
    async fn totals_by_municipality(&self, ctx: &Context<'_>) -> Result<Vec<MunicipalityCallOffTotal>> {
        let mut totals: BTreeMap<i64, (i64, u64)> = BTreeMap::new();
        for c in self.visible_call_offs(ctx).await? {
            let entry = totals.entry(c.municipality_id).or_default();
            if c.status.uses_volume() {
                entry.0 += i64::from(c.quantity);
            }
            entry.1 += 1;
        }
        let mut out = Vec::with_capacity(totals.len());
        for (municipality, (quantity, call_offs)) in totals {
            out.push(MunicipalityCallOffTotal {
                municipality: Organization::by_id(ctx, municipality).await?,
                quantity,
                call_offs,
            });
        }
        Ok(out)
    }
}

/// A municipality's order (avrop) under a framework agreement.
#[derive(Clone)]
pub struct CallOff(pub call_off::Model);

#[row_fields]
#[Object]
impl CallOff {
    pub async fn id(&self) -> ID;

    async fn agreement(&self, ctx: &Context<'_>) -> Result<FrameworkAgreement> {
        Ok(FrameworkAgreement(load_existing(ctx, AgreementById(self.0.agreement_id), "agreement").await?))
    }

    async fn municipality(&self, ctx: &Context<'_>) -> Result<Organization> {
        Organization::by_id(ctx, self.0.municipality_id).await
    }

    async fn acquisition(&self) -> Acquisition;

    async fn scope(&self) -> RolloutScope;

    async fn quantity(&self) -> i32;

    async fn status(&self) -> CallOffStatus;

    async fn placed_on(&self) -> NaiveDate;
}

// `node(id:)`, with the connections' visibility.

impl NodeObject for FrameworkAgreement {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<FrameworkAgreement>, ApiError> {
        let Some(a) = load_one(ctx, AgreementById(id)).await? else { return Ok(None) };
        let p = load_existing(ctx, ProcurementById(a.procurement_id), "procurement").await?;
        Ok(access(ctx, &p).await?.can_see(&p).then_some(FrameworkAgreement(a)))
    }
}

impl NodeObject for CallOff {
    async fn fetch(ctx: &Context<'_>, id: i64) -> Result<Option<CallOff>, ApiError> {
        let Some(c) = crate::agreements::find_call_off(state(ctx).db.read(), id).await? else { return Ok(None) };
        let a = load_existing(ctx, AgreementById(c.agreement_id), "agreement").await?;
        let p = load_existing(ctx, ProcurementById(a.procurement_id), "procurement").await?;
        Ok(access(ctx, &p).await?.can_see_call_off(c.municipality_id, a.supplier_id).then_some(CallOff(c)))
    }
}

payload!(FrameworkAgreementCreatePayload, framework_agreement: FrameworkAgreement, "Result of `frameworkAgreementCreate`.");
payload!(CallOffCreatePayload, call_off: CallOff, "Result of `callOffCreate`.");
payload!(CallOffStatusChangePayload, call_off: CallOff, "Result of `callOffStatusChange`.");

#[derive(InputObject)]
pub struct FrameworkAgreementCreateInput {
    pub award_id: ID,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    /// Most units all call-offs together may take.
    pub volume_cap: i32,
}

#[derive(InputObject)]
pub struct CallOffCreateInput {
    pub agreement_id: ID,
    pub acquisition: Acquisition,
    pub scope: RolloutScope,
    pub quantity: i32,
    /// Defaults to today; must fall within the agreement's period.
    pub placed_on: Option<NaiveDate>,
    /// DRAFT or PLACED (default).
    pub status: Option<CallOffStatus>,
}

#[derive(InputObject)]
pub struct CallOffStatusChangeInput {
    pub call_off_id: ID,
    /// PLACED or CANCELLED by the municipality; CONFIRMED or DELIVERED by the supplier.
    pub status: CallOffStatus,
}

impl FrameworkAgreementCreateInput {
    fn parse(self) -> Result<(i64, AgreementTerms), Invalid> {
        let award = input_row(&self.award_id, NodeType::Award, "awardId")?;
        Ok((award, AgreementTerms::new(self.starts_on, self.ends_on, self.volume_cap)?))
    }
}

impl CallOffCreateInput {
    fn parse(self) -> Result<NewCallOff, Invalid> {
        Ok(NewCallOff {
            agreement_id: input_row(&self.agreement_id, NodeType::FrameworkAgreement, "agreementId")?,
            acquisition: self.acquisition,
            scope: self.scope,
            quantity: CallOffQuantity::parse(self.quantity)?,
            placed_on: self.placed_on.unwrap_or_else(today),
            status: OpeningStatus::parse(self.status.unwrap_or(CallOffStatus::Placed))?,
        })
    }
}

#[derive(Default)]
pub struct AgreementMutation;

#[Object]
impl AgreementMutation {
    /// Makes the framework agreement that follows an award, at the awarded prices. Role: the
    /// lead's `procurement_officer`.
    async fn framework_agreement_create(
        &self,
        ctx: &Context<'_>,
        input: FrameworkAgreementCreateInput,
    ) -> Result<FrameworkAgreementCreatePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "make framework agreements").await?;
        mutate(ctx, input.parse(), FrameworkAgreement, async |txn, (award, terms)| {
            rules::create_agreement(txn, &caller, award, terms).await
        })
        .await
    }

    /// Calls off under an agreement: buy or lease, pilot zone or full rollout. Only
    /// participating municipalities (not followers), within the agreement's period and remaining
    /// volume. Role: `procurement_officer`.
    async fn call_off_create(&self, ctx: &Context<'_>, input: CallOffCreateInput) -> Result<CallOffCreatePayload> {
        let caller = caller(ctx, Role::ProcurementOfficer, "call off").await?;
        let backend = state(ctx).db.backend();
        let live = state(ctx).live.clone();
        mutate(ctx, input.parse(), CallOff, async |txn, new| {
            let row = rules::create_call_off(txn, backend, &caller, new).await?;
            super::live::publish(txn, &live, &row).await?;
            Ok(row)
        })
        .await
    }

    /// Moves a call-off along. Roles: `procurement_officer` of the municipality (PLACED,
    /// CANCELLED) or `supplier` of the agreement (CONFIRMED, DELIVERED).
    async fn call_off_status_change(
        &self,
        ctx: &Context<'_>,
        input: CallOffStatusChangeInput,
    ) -> Result<CallOffStatusChangePayload> {
        let role = if matches!(input.status, CallOffStatus::Confirmed | CallOffStatus::Delivered) {
            Role::Supplier
        } else {
            Role::ProcurementOfficer
        };
        let caller = caller(ctx, role, "change this call-off's status").await?;
        let live = state(ctx).live.clone();
        mutate(ctx, input_row(&input.call_off_id, NodeType::CallOff, "callOffId"), CallOff, async |txn, id| {
            let row = rules::change_status(txn, &caller, id, input.status).await?;
            super::live::publish(txn, &live, &row).await?;
            Ok(row)
        })
        .await
    }
}
