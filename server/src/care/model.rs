//! Storage model of service recipients.

use sea_orm::entity::prelude::*;

/// Where a recipient's service stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, async_graphql::Enum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
pub enum RecipientStatus {
    #[sea_orm(string_value = "active")]
    Active,
    #[sea_orm(string_value = "paused")]
    Paused,
    #[sea_orm(string_value = "ended")]
    Ended,
}

pub mod service_recipient {
    use super::*;

    /// A municipality's service recipient. Velferd never holds a national identity number: the
    /// reference is the municipality's own pseudonym.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "service_recipient")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub municipality_id: i64,
        pub reference: String,
        pub care_zone: Option<String>,
        pub status: RecipientStatus,
        pub started_on: Date,
        pub paused_on: Option<Date>,
        pub ended_on: Option<Date>,
        /// The subject of the case worker's token that registered it.
        pub created_by: String,
        pub created_at: DateTimeWithTimeZone,
        pub updated_at: DateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
