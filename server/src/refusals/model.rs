//! The refusal log's table: attempts per minute, caller and code.

pub mod refused_attempt {
    use sea_orm::entity::prelude::*;

    crate::entity! {
        #[sea_orm(table_name = "refused_attempt")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            /// The minute's first second since the Unix epoch.
            pub minute: i64,
            /// Who tried (`CallerKey::describe`), or [`super::super::log::OVERFLOW_CALLER`].
            pub caller: String,
            pub code: String,
            pub attempts: i64,
        }
    }
}
