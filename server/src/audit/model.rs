//! The audit log's tables: the entries, and each municipality's chain anchor.

pub mod audit_entry {
    use sea_orm::entity::prelude::*;

    crate::entity! {
        /// One read or change of a recipient's data: who, which recipient, what, why, when and the
        /// access decision, with its place in its municipality's hash chain. Rows are only ever
        /// inserted.
        #[sea_orm(table_name = "audit_entry")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub municipality_id: i64,
            /// Its place in the municipality's chain: 1, 2, 3, … without gaps.
            pub seq: i64,
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
            /// The hash of the entry before it (of the genesis for the first).
            pub prev_hash: String,
            pub hash: String,
        }
    }
}

pub mod audit_anchor {
    use sea_orm::entity::prelude::*;

    crate::entity! {
        /// The head of one municipality's chain, signed with the audit key: what tells a chain
        /// whose newest entries were removed, or that was recomputed without the key.
        #[sea_orm(table_name = "audit_anchor")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub municipality_id: i64,
            pub head_seq: i64,
            pub head_hash: String,
            pub key_id: String,
            pub mac: String,
            pub updated_at: DateTimeWithTimeZone,
        }
    }
}

pub mod audit_cut {
    use sea_orm::entity::prelude::*;

    /// Where retention cut one municipality's chain: the sequence and hash of the last entry it
    /// deleted, signed with the audit key. The chain's remaining entries start after it and
    /// link to its hash; it only ever moves forward.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_cut")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub municipality_id: i64,
        pub through_seq: i64,
        pub through_hash: String,
        pub key_id: String,
        pub mac: String,
        pub cut_at: DateTimeWithTimeZone,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
