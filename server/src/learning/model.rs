//! Storage model of learning across municipalities. Relations are loaded explicitly
//! (DataLoaders), so the entities declare none.

use sea_orm::entity::prelude::*;

crate::stored_enum! {
    /// What a reused item was in the source procurement.
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    pub enum ReusedKind {
        /// A step of the service journey (tjenestereise).
        #[sea_orm(string_value = "journey_step")]
        JourneyStep,
        /// A need from the needs mapping.
        #[sea_orm(string_value = "need")]
        Need,
        /// A user story (brukerhistorie).
        #[sea_orm(string_value = "user_story")]
        UserStory,
    }
}

pub mod learning_network {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "learning_network")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub name: String,
            pub description: Option<String>,
            /// The programme organisation that coordinates the network.
            pub coordinator_id: i64,
            pub created_at: DateTimeWithTimeZone,
        }
    }
}

pub mod network_member {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "network_member")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub network_id: i64,
            pub organization_id: i64,
            pub joined_on: Option<Date>,
        }
    }
}

pub mod gathering {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "gathering")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub network_id: i64,
            /// 1 for the network's first gathering, 4 for its fourth …
            pub number: i32,
            pub held_on: Date,
            /// The hosting municipality.
            pub host_id: i64,
            pub venue: Option<String>,
            pub topic: String,
        }
    }
}

pub mod gathering_attendance {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "gathering_attendance")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub gathering_id: i64,
            pub organization_id: i64,
            /// How many people came from the organisation (at least 1).
            pub people: i32,
        }
    }
}

pub mod experience_report {
    use super::*;
    use crate::procurement::phase::Phase;

    crate::entity! {
        #[sea_orm(table_name = "experience_report")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub author_id: i64,
            pub procurement_id: i64,
            /// The network the report is shared in, if any: its members may read it too.
            pub network_id: Option<i64>,
            /// The phase the report covers; null for the whole process.
            pub phase: Option<Phase>,
            pub title: String,
            pub summary: String,
            /// Public, or members only.
            pub public: bool,
            pub published_on: Date,
            /// Title, summary and lessons, for full-text search (FTS5 on SQLite, tsvector on
            /// PostgreSQL).
            pub search_text: String,
            pub created_at: DateTimeWithTimeZone,
        }
    }
}

pub mod lesson {
    use super::*;
    use crate::procurement::phase::Phase;

    crate::entity! {
        #[sea_orm(table_name = "lesson")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub report_id: i64,
            /// The phase the lesson concerns.
            pub phase: Phase,
            pub text: String,
        }
    }
}

pub mod procurement_reuse {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "procurement_reuse")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            /// The procurement followed and reused.
            pub source_id: i64,
            /// The procurement started from it.
            pub copy_id: i64,
            /// The municipality that reused it (the copy's lead).
            pub organization_id: i64,
            pub reused_on: Date,
        }
    }
}

pub mod reused_item {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "reused_item")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub reuse_id: i64,
            pub kind: ReusedKind,
            pub source_item_id: i64,
            pub copy_item_id: i64,
            /// The copied text (step title, need description or user-story code and title).
            pub text: String,
            /// "reused from …": the source procurement and its lead, as at the copy.
            pub provenance: String,
        }
    }
}
