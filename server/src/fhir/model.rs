//! Storage model of the FHIR export's settings.

use sea_orm::entity::prelude::*;

pub mod fhir_setting {
    use super::*;

    crate::entity! {
        /// A municipality's choice of the identifier system its recipients' references are exported
        /// under. No row: the default (`settings::default_recipient_system`).
        #[sea_orm(table_name = "fhir_setting")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub municipality_id: i64,
            pub recipient_system: String,
            pub updated_by: String,
            pub updated_at: DateTimeWithTimeZone,
        }
    }
}
