//! A confirmed call-off made straight in the database, for tests and benchmarks that need devices
//! in service without playing a whole procurement first (the procurement path that makes one
//! over the API has tests of its own). Not reachable over the API.

use chrono::{NaiveDate, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set};

use super::model::{Acquisition, CallOffStatus, RolloutScope, call_off, framework_agreement};
use crate::procurement::model::{Category, award, procurement, tender, tender_response, user_story};
use crate::procurement::phase::Phase;

/// A confirmed call-off (quantity 10 000) of `municipality` under a framework agreement with
/// `supplier` (row ids): the first there is, or a new one, with the procurement, award and
/// agreement it needs.
pub async fn confirmed_call_off<C: ConnectionTrait>(db: &C, municipality: i64, supplier: i64) -> Result<i64, DbErr> {
    let agreements = framework_agreement::Entity::find()
        .filter(framework_agreement::Column::SupplierId.eq(supplier))
        .all(db)
        .await?;
    let existing = call_off::Entity::find()
        .filter(call_off::Column::MunicipalityId.eq(municipality))
        .filter(call_off::Column::AgreementId.is_in(agreements.iter().map(|a| a.id)))
        .filter(call_off::Column::Status.eq(CallOffStatus::Confirmed))
        .one(db)
        .await?;
    if let Some(call_off) = existing {
        return Ok(call_off.id);
    }
    let now = Utc::now().fixed_offset();
    let day = NaiveDate::from_ymd_opt(2026, 1, 15).expect("a date");
    let p = procurement::ActiveModel {
        title: Set("Trygghetsalarmer".into()),
        category: Set(Category::SafetyAlarm),
        lead_id: Set(municipality),
        phase: Set(Phase::Implementation),
        notice_reference: Set(Some("2026-100".into())),
        notice_published_on: Set(Some(day)),
        tender_deadline: Set(Some(now)),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let story = user_story::ActiveModel {
        procurement_id: Set(p.id),
        code: Set("US1".into()),
        title: Set("Alarm".into()),
        narrative: Set("n".into()),
        acceptance_criteria: Set("[]".into()),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let tender = tender::ActiveModel {
        procurement_id: Set(p.id),
        supplier_id: Set(supplier),
        submitted_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let response = tender_response::ActiveModel {
        tender_id: Set(tender.id),
        user_story_id: Set(story.id),
        solution: Set("s".into()),
        purchase_price_ore: Set(Some(100_000)),
        lease_price_ore_per_month: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let award = award::ActiveModel {
        procurement_id: Set(p.id),
        user_story_id: Set(story.id),
        tender_response_id: Set(response.id),
        awarded_on: Set(day),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let agreement = framework_agreement::ActiveModel {
        award_id: Set(award.id),
        procurement_id: Set(p.id),
        supplier_id: Set(supplier),
        user_story_id: Set(story.id),
        starts_on: Set(day),
        ends_on: Set(NaiveDate::from_ymd_opt(2099, 12, 31).expect("a date")),
        purchase_price_ore: Set(Some(100_000)),
        lease_price_ore_per_month: Set(None),
        volume_cap: Set(100_000),
        ..Default::default()
    }
    .insert(db)
    .await?;
    let call_off = call_off::ActiveModel {
        agreement_id: Set(agreement.id),
        municipality_id: Set(municipality),
        acquisition: Set(Acquisition::Buy),
        scope: Set(RolloutScope::FullRollout),
        quantity: Set(10_000),
        status: Set(CallOffStatus::Confirmed),
        placed_on: Set(day),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await?;
    Ok(call_off.id)
}
