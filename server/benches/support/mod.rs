//! What the server benchmarks share: the organisations they register, the token secret their
//! servers are started with, their tokens, and the confirmed call-off devices are delivered
//! under.

use std::collections::BTreeSet;
use std::time::Duration;

use velferd::auth::{Role, TokenSigner};

#[allow(dead_code, reason = "the ingest benchmark signs with EdDSA, as production does")]
pub const SECRET: &str = "bench-secret-that-is-at-least-32-bytes-long";
pub const SUPPLIER: &str = "923609016";
pub const MUNICIPALITY: &str = "974760673";
/// The platform operator (`VELFERD_OPERATOR_ORG_NUMBER`): `admin` counts for it alone.
pub const OPERATOR: &str = "991000003";

/// A token of the subject `bench` of the organisation numbered `org`, acting as `role`.
pub fn token(signer: &TokenSigner, org: &str, role: Role) -> String {
    let org: velferd::organizations::OrgNumber = org.parse().unwrap();
    signer.mint("bench", org, BTreeSet::from([role]), Duration::from_secs(3600))
}

/// The call-off of [`MUNICIPALITY`] under an agreement with [`SUPPLIER`], confirmed by it: what
/// the supplier delivers devices under. Both organisations are registered.
pub async fn confirmed_call_off(db: &sea_orm::DatabaseConnection) -> i64 {
    velferd::agreements::seed::confirmed_call_off(db, org_id(db, MUNICIPALITY).await, org_id(db, SUPPLIER).await)
        .await
        .unwrap()
}

async fn org_id(db: &sea_orm::DatabaseConnection, org_number: &str) -> i64 {
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    use velferd::organizations::model::{Column, Entity};
    Entity::find().filter(Column::OrgNumber.eq(org_number)).one(db).await.unwrap().expect("registered").id
}
