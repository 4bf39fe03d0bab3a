//! The audit log's table.

pub mod audit_entry {
    use sea_orm::entity::prelude::*;

    /// One read or change of a recipient's data: who, which recipient, what, why, when and the
    /// access decision. Rows are only ever inserted.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_entry")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub municipality_id: i64,
        pub recipient_id: i64,
        pub subject: String,
        pub organization_id: i64,
        pub role: String,
        pub operation: String,
        pub object_type: String,
        pub object_id: i64,
        pub purpose_kind: String,
        pub purpose: String,
        pub decision: String,
        pub at: DateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
