//! Storage model of organisations.

use sea_orm::entity::prelude::*;

crate::stored_enum! {
    /// What kind of organisation this is; it decides which facts it must have.
    #[derive(async_graphql::Enum, serde::Deserialize)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
    #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
    pub enum OrganizationKind {
        /// A kommune: buys, runs services, owns service recipients and devices.
        #[sea_orm(string_value = "municipality")]
        Municipality,
        /// A leverandør: tenders, ships device adapters, operates devices.
        #[sea_orm(string_value = "supplier")]
        Supplier,
        /// A national or regional programme that advises (e.g. the supplier-development programme).
        #[sea_orm(string_value = "programme")]
        Programme,
        /// A responssenter that receives and handles alarms.
        #[sea_orm(string_value = "response_centre")]
        ResponseCentre,
        /// The platform operator: the one organisation whose staff hold `admin`. Configured and
        /// created at start (`VELFERD_OPERATOR_*`), never through `organizationCreate`.
        #[sea_orm(string_value = "operator")]
        Operator,
    }
}

crate::entity! {
    #[sea_orm(table_name = "organization")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub kind: OrganizationKind,
        pub name: String,
        #[sea_orm(unique)]
        pub org_number: Option<String>,
        pub municipality_number: Option<String>,
        pub county: Option<String>,
        pub population: Option<i64>,
        pub population_year: Option<i32>,
        pub created_at: DateTimeWithTimeZone,
    }
}
