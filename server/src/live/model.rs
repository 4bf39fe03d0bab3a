//! The outbox tables (migration `m20261207_000014_outbox`).

use sea_orm::entity::prelude::*;

pub mod outbox {
    use super::*;

    crate::entity! {
        /// One announced change. `id` is its sequence, taken from the counter in the change's own
        /// transaction (never the table's auto-increment).
        #[sea_orm(table_name = "outbox")]
        pub struct Model {
            #[sea_orm(primary_key, auto_increment = false)]
            pub id: i64,
            pub topic: String,
            pub municipality_id: Option<i64>,
            pub organization_id: Option<i64>,
            /// JSON.
            pub payload: String,
            pub created_at: DateTimeWithTimeZone,
        }
    }
}

pub mod outbox_counter {
    use super::*;

    crate::entity! {
        /// Row [`SEQUENCE`]: the last sequence taken. Row [`PRUNED_THROUGH`]: the highest sequence
        /// pruning may have deleted.
        #[sea_orm(table_name = "outbox_counter")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub name: String,
            pub value: i64,
        }
    }

    pub const SEQUENCE: &str = "sequence";
    pub const PRUNED_THROUGH: &str = "pruned_through";
}

pub mod outbox_consumer {
    use super::*;

    crate::entity! {
        /// A consumer of the outbox that must not miss a row (the webhook fan-out): the last
        /// sequence it handled. Pruning keeps every row after the slowest consumer's position.
        #[sea_orm(table_name = "outbox_consumer")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub name: String,
            pub position: i64,
            pub updated_at: DateTimeWithTimeZone,
        }
    }
}
