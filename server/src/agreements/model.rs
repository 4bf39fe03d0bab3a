//! Storage model of framework agreements and call-offs.

use sea_orm::entity::prelude::*;

crate::stored_enum! {
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(10))")]
    pub enum Acquisition {
        /// Kjøp.
        #[sea_orm(string_value = "buy")]
        Buy,
        /// Leie: priced per month.
        #[sea_orm(string_value = "lease")]
        Lease,
    }
}

crate::stored_enum! {
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    pub enum RolloutScope {
        /// A limited zone first (pilot).
        #[sea_orm(string_value = "pilot_zone")]
        PilotZone,
        #[sea_orm(string_value = "full_rollout")]
        FullRollout,
    }
}

crate::stored_enum! {
    /// DRAFT → PLACED → CONFIRMED → DELIVERED; DRAFT, PLACED or CONFIRMED may be CANCELLED.
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    pub enum CallOffStatus {
        #[sea_orm(string_value = "draft")]
        Draft,
        #[sea_orm(string_value = "placed")]
        Placed,
        #[sea_orm(string_value = "confirmed")]
        Confirmed,
        #[sea_orm(string_value = "delivered")]
        Delivered,
        #[sea_orm(string_value = "cancelled")]
        Cancelled,
    }
}

impl CallOffStatus {
    /// Whether the call-off's quantity counts against the agreement's volume cap.
    pub fn uses_volume(self) -> bool {
        !matches!(self, CallOffStatus::Cancelled)
    }
}

pub mod framework_agreement {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "framework_agreement")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub award_id: i64,
            pub procurement_id: i64,
            pub supplier_id: i64,
            pub user_story_id: i64,
            pub starts_on: Date,
            pub ends_on: Date,
            pub purchase_price_ore: Option<i64>,
            pub lease_price_ore_per_month: Option<i64>,
            /// Most units all call-offs together may take.
            pub volume_cap: i32,
        }
    }
}

pub mod call_off {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "call_off")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub agreement_id: i64,
            pub municipality_id: i64,
            pub acquisition: Acquisition,
            pub scope: RolloutScope,
            pub quantity: i32,
            pub status: CallOffStatus,
            pub placed_on: Date,
            pub created_at: DateTimeWithTimeZone,
        }
    }
}
