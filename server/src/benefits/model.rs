//! Storage model of benefits realisation: entered indicators with their measurements, and each
//! municipality's assumptions behind the measured indicators.

use sea_orm::entity::prelude::*;

pub mod benefit_indicator {
    use super::*;

    crate::entity! {
        /// A benefit indicator a municipality follows for one procurement: baseline, target, unit.
        #[sea_orm(table_name = "benefit_indicator")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub municipality_id: i64,
            pub name: String,
            pub unit: String,
            /// Ten-thousandths (`super::super::values::Quantity`).
            pub baseline_value_e4: i64,
            pub baseline_on: Date,
            pub target_value_e4: i64,
            pub target_on: Date,
            pub created_by: String,
            pub created_at: DateTimeWithTimeZone,
        }
    }
}

pub mod benefit_measurement {
    use super::*;

    crate::entity! {
        /// One measurement of an indicator, on a date.
        #[sea_orm(table_name = "benefit_measurement")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub indicator_id: i64,
            pub measured_on: Date,
            pub value_e4: i64,
            pub note: Option<String>,
            pub recorded_by: String,
            pub recorded_at: DateTimeWithTimeZone,
        }
    }
}

pub mod benefit_assumption {
    use super::*;

    crate::entity! {
        /// A municipality's own assumptions behind the measured indicators; no row: the defaults.
        #[sea_orm(table_name = "benefit_assumption")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub municipality_id: i64,
            pub dose_window_minutes: i32,
            pub minutes_per_visit: Option<i32>,
            pub updated_by: String,
            pub updated_at: DateTimeWithTimeZone,
        }
    }
}
