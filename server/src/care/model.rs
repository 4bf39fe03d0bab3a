//! Storage model of service recipients.

use sea_orm::entity::prelude::*;

crate::stored_enum! {
    /// Where a recipient's service stands.
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    pub enum RecipientStatus {
        #[sea_orm(string_value = "active")]
        Active,
        #[sea_orm(string_value = "paused")]
        Paused,
        #[sea_orm(string_value = "ended")]
        Ended,
    }
}

pub mod service_recipient {
    use super::*;

    crate::entity! {
        /// A municipality's service recipient. Velferd never holds a national identity number: the
        /// reference is the municipality's own pseudonym.
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
    }
}

crate::stored_enum! {
    /// A case worker's decision on a recipient and a user story.
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    pub enum AssessmentDecision {
        /// The solution of the user story suits the recipient: a device under it may be assigned.
        #[sea_orm(string_value = "granted")]
        Granted,
        #[sea_orm(string_value = "declined")]
        Declined,
    }
}

pub mod recipient_status_change {
    use super::*;

    crate::entity! {
        /// One status a recipient's service has had: who set it, for which date, when.
        #[sea_orm(table_name = "recipient_status_change")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub recipient_id: i64,
            pub status: RecipientStatus,
            pub effective_on: Date,
            pub subject: String,
            pub organization_id: i64,
            pub role: String,
            pub at: DateTimeWithTimeZone,
        }
    }
}

pub mod assessment {
    use super::*;

    crate::entity! {
        /// A professional assessment (faglig vurdering): a recipient matched to a user story of a
        /// framework agreement the municipality has called off, with the decision and its reason.
        #[sea_orm(table_name = "assessment")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub municipality_id: i64,
            pub recipient_id: i64,
            pub user_story_id: i64,
            pub decision: AssessmentDecision,
            pub reason: String,
            pub decided_on: Date,
            /// The subject of the case worker's token that recorded it.
            pub subject: String,
            pub created_at: DateTimeWithTimeZone,
        }
    }
}

pub mod quarantined_value {
    use super::*;

    crate::entity! {
        /// A stored value shaped like a national identity number, moved out of the API's reach by
        /// the care migration. The value itself is never served.
        #[sea_orm(table_name = "quarantined_value")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub municipality_id: i64,
            pub source_table: String,
            pub source_column: String,
            pub source_id: i64,
            pub value: String,
            pub found_at: DateTimeWithTimeZone,
        }
    }
}
