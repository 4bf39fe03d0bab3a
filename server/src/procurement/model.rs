//! Storage model of procurements. Relations are loaded explicitly (DataLoaders, joins in the
//! services), so the entities declare none.

use sea_orm::entity::prelude::*;

crate::stored_enum! {
    /// What is being procured.
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(40))")]
    pub enum Category {
        /// Medisineringsstøtte: medication dispensers and reminders.
        #[sea_orm(string_value = "medication_support")]
        MedicationSupport,
        /// Trygghetsalarm: social-care (safety) alarms.
        #[sea_orm(string_value = "safety_alarm")]
        SafetyAlarm,
        /// Responssenter: receiving and handling alarms.
        #[sea_orm(string_value = "response_centre")]
        ResponseCentre,
        /// Digital hjemmeoppfølging: remote follow-up at home.
        #[sea_orm(string_value = "digital_home_follow_up")]
        DigitalHomeFollowUp,
        #[sea_orm(string_value = "other")]
        Other,
    }
}

crate::stored_enum! {
    /// How a municipality takes part.
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(20))")]
    pub enum ParticipantRole {
        /// Runs the procurement for all (one per procurement).
        #[sea_orm(string_value = "lead")]
        Lead,
        /// Buys under the resulting agreements.
        #[sea_orm(string_value = "participant")]
        Participant,
        /// Følgekommune: follows to learn, may reuse the needs mapping, does not buy.
        #[sea_orm(string_value = "follower")]
        Follower,
    }
}

crate::stored_enum! {
    #[derive(async_graphql::Enum)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(30))")]
    pub enum ActivityKind {
        #[sea_orm(string_value = "workshop")]
        Workshop,
        #[sea_orm(string_value = "dialogue_conference")]
        DialogueConference,
        #[sea_orm(string_value = "one_to_one_meeting")]
        OneToOneMeeting,
        /// A municipality presents its procurement to many others.
        #[sea_orm(string_value = "learning_arena")]
        LearningArena,
    }
}

pub mod procurement {
    use super::*;
    use crate::procurement::phase::Phase;

    crate::entity! {
        #[sea_orm(table_name = "procurement")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub title: String,
            pub category: Category,
            pub lead_id: i64,
            pub phase: Phase,
            pub resume_phase: Option<Phase>,
            pub hold_reason: Option<String>,
            pub notice_reference: Option<String>,
            pub notice_published_on: Option<Date>,
            pub tender_deadline: Option<DateTimeWithTimeZone>,
            pub created_at: DateTimeWithTimeZone,
        }
    }
}

pub mod participant {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "participant")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub organization_id: i64,
            pub role: ParticipantRole,
            pub joined_on: Date,
        }
    }
}

pub mod phase_transition {
    use super::*;
    use crate::procurement::phase::Phase;

    crate::entity! {
        #[sea_orm(table_name = "phase_transition")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub from_phase: Option<Phase>,
            pub to_phase: Phase,
            pub reason: Option<String>,
            /// The date the change took effect in the real process (may be before it was recorded).
            pub effective_on: Date,
            pub actor_subject: String,
            pub actor_org_number: Option<String>,
            pub recorded_at: DateTimeWithTimeZone,
        }
    }
}

pub mod journey_step {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "journey_step")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub position: i32,
            pub title: String,
            pub description: Option<String>,
        }
    }
}

pub mod need {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "need")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub journey_step_id: Option<i64>,
            pub description: String,
        }
    }
}

pub mod dialogue_activity {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "dialogue_activity")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub kind: ActivityKind,
            pub title: String,
            pub held_on: Date,
            pub questions_sent_in_advance: Option<bool>,
        }
    }
}

pub mod activity_attendee {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "activity_attendee")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub activity_id: i64,
            pub organization_id: i64,
            pub people: Option<i32>,
        }
    }
}

pub mod solution_sketch {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "solution_sketch")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub supplier_id: i64,
            pub title: String,
            pub summary: String,
            pub submitted_on: Date,
        }
    }
}

pub mod user_story {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "user_story")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub code: String,
            pub title: String,
            pub narrative: String,
            /// JSON array of strings.
            pub acceptance_criteria: String,
        }
    }
}

pub mod tender {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "tender")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub supplier_id: i64,
            pub submitted_at: DateTimeWithTimeZone,
        }
    }
}

pub mod tender_response {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "tender_response")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub tender_id: i64,
            pub user_story_id: i64,
            pub solution: String,
            pub purchase_price_ore: Option<i64>,
            pub lease_price_ore_per_month: Option<i64>,
        }
    }
}

pub mod evaluation_criterion {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "evaluation_criterion")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub name: String,
            /// Relative weight in percent; a procurement's weights sum to 100.
            pub weight: i32,
        }
    }
}

pub mod score {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "score")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub tender_response_id: i64,
            pub criterion_id: i64,
            /// Score on the 0–10 scale in hundredths (0..=1000), so sums stay exact.
            pub hundredths: i32,
        }
    }
}

pub mod award {
    use super::*;

    crate::entity! {
        #[sea_orm(table_name = "award")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub procurement_id: i64,
            pub user_story_id: i64,
            pub tender_response_id: i64,
            pub awarded_on: Date,
        }
    }
}
