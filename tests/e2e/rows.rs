//! Rows read or written straight in the database, for set-ups the API cannot make (a status
//! change in the past, a recipient without an assessment) and for row ids a test needs. Each
//! caller says why it goes past the API.

use chrono::NaiveDate;
use sea_orm::prelude::DateTimeWithTimeZone;
use sea_orm::sea_query::IntoCondition;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use velferd::care::model::{RecipientStatus, service_recipient};
use velferd::devices::model::{DeviceStatus, device, device_status_change};
use velferd::organizations::model as organization;

use crate::support::TestApp;

/// The one row of `E` that `condition` finds, which the test registered as `what`.
async fn registered<E: EntityTrait>(app: &TestApp, condition: impl IntoCondition, what: &str) -> E::Model {
    // The primary, where the test's writes went: a replica could lag behind them.
    E::find().filter(condition).one(app.db().write()).await.unwrap().unwrap_or_else(|| panic!("{what} registered"))
}

/// The registered organisation with the organisation number `number`.
pub async fn organization(app: &TestApp, number: &str) -> organization::Model {
    registered::<organization::Entity>(
        app,
        organization::Column::OrgNumber.eq(number),
        &format!("organisation {number}"),
    )
    .await
}

/// The row id of the organisation with the organisation number `number`.
pub async fn org_row(app: &TestApp, number: &str) -> i64 {
    organization(app, number).await.id
}

/// The device with the serial number `serial`.
pub async fn device(app: &TestApp, serial: &str) -> device::Model {
    registered::<device::Entity>(app, device::Column::Serial.eq(serial), &format!("device {serial}")).await
}

/// A new active recipient `reference` of `municipality` (a row id), in the service from
/// `started_on`, registered at `at` by `test`.
pub async fn recipient(
    db: &DatabaseConnection,
    municipality: i64,
    reference: &str,
    started_on: NaiveDate,
    at: DateTimeWithTimeZone,
) -> service_recipient::Model {
    service_recipient::ActiveModel {
        municipality_id: Set(municipality),
        reference: Set(reference.into()),
        care_zone: Set(None),
        status: Set(RecipientStatus::Active),
        started_on: Set(started_on),
        paused_on: Set(None),
        ended_on: Set(None),
        created_by: Set("test".into()),
        created_at: Set(at),
        updated_at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap()
}

/// Puts device `d` in service (`active`) for `recipient` (a row id) at `at`, with the step from
/// its current status in its history, as a case worker of its municipality would.
pub async fn activate_for(db: &DatabaseConnection, d: device::Model, recipient: i64, at: DateTimeWithTimeZone) {
    device_status_change::ActiveModel {
        device_id: Set(d.id),
        from_status: Set(Some(d.status)),
        to_status: Set(DeviceStatus::Active),
        recipient_id: Set(Some(recipient)),
        subject: Set("test".into()),
        organization_id: Set(d.municipality_id),
        role: Set("case_worker".into()),
        at: Set(at),
        ..Default::default()
    }
    .insert(db)
    .await
    .unwrap();
    let mut d: device::ActiveModel = d.into();
    d.status = Set(DeviceStatus::Active);
    d.recipient_id = Set(Some(recipient));
    d.update(db).await.unwrap();
}
