//! Storage model of alerts, their steps and deadlines, service agreements, escalation lines and
//! products' monitoring intervals.

use sea_orm::entity::prelude::*;

/// Declares a stored enum whose first five variants are the stages of an alert's handling, each
/// with the caller's doc: the status an alert is in (`AlertStatus`) and the step that put it
/// there (`StepKind`) share names and stored values, written here once. The caller's further
/// variants follow.
macro_rules! with_alert_stages {
    (
        $(#[$attr:meta])*
        pub enum $name:ident {
            $(#[doc = $raised:tt])* Raised,
            $(#[doc = $acknowledged:tt])* Acknowledged,
            $(#[doc = $handed:tt])* HandedToResponder,
            $(#[doc = $accepted:tt])* ResponderAccepted,
            $(#[doc = $resolved:tt])* Resolved,
            $($more:tt)*
        }
    ) => {
        crate::stored_enum! {
            $(#[$attr])*
            pub enum $name {
                $(#[doc = $raised])*
                #[sea_orm(string_value = "raised")]
                Raised,
                $(#[doc = $acknowledged])*
                #[sea_orm(string_value = "acknowledged")]
                Acknowledged,
                $(#[doc = $handed])*
                #[sea_orm(string_value = "handed_to_responder")]
                HandedToResponder,
                $(#[doc = $accepted])*
                #[sea_orm(string_value = "responder_accepted")]
                ResponderAccepted,
                $(#[doc = $resolved])*
                #[sea_orm(string_value = "resolved")]
                Resolved,
                $($more)*
            }
        }
    };
}

with_alert_stages! {
    /// Where an alert stands in the response centre's workflow.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(30))")]
    pub enum AlertStatus {
        /// Raised, nobody has taken it yet (VKP 0, hendelse meldt).
        Raised,
        /// An operator has taken it (VKP 1, hendelse behandles).
        Acknowledged,
        /// Handed to a responder to go out (VKP 4, hendelse til utrykning).
        HandedToResponder,
        /// The responder accepted it (VKP 5, hendelse ok utrykning).
        ResponderAccepted,
        /// Signed off with an outcome (VKP 3, hendelse kvittert).
        Resolved,
    }
}

impl AlertStatus {
    /// Every status but `Resolved`: an alert in one of these still needs someone.
    pub const OPEN: [AlertStatus; 4] = [
        AlertStatus::Raised,
        AlertStatus::Acknowledged,
        AlertStatus::HandedToResponder,
        AlertStatus::ResponderAccepted,
    ];
}

crate::stored_enum! {
    /// How an alert ended.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(30))")]
    pub enum AlertOutcome {
        /// Settled in a call with the recipient or next of kin.
        #[sea_orm(string_value = "handled_by_phone")]
        HandledByPhone,
        /// Someone went out to the recipient.
        #[sea_orm(string_value = "visit")]
        Visit,
        /// Nothing was wrong.
        #[sea_orm(string_value = "false_alarm")]
        FalseAlarm,
        /// Called off by a person (the recipient, staff on site).
        #[sea_orm(string_value = "cancelled")]
        Cancelled,
        /// Looked at; nothing needs doing.
        #[sea_orm(string_value = "no_action_needed")]
        NoActionNeeded,
        /// A technical fault, passed to the supplier or the municipality's technicians.
        #[sea_orm(string_value = "technical_follow_up")]
        TechnicalFollowUp,
        /// The device reported the alarm cancelled before a responder took it. Set by Velferd only.
        #[sea_orm(string_value = "cancelled_by_device")]
        CancelledByDevice,
        /// The device was heard from again (offline, missed test, power restored). Set by Velferd
        /// only.
        #[sea_orm(string_value = "resolved_by_device")]
        ResolvedByDevice,
    }
}

impl AlertOutcome {
    /// Whether a person may sign an alert off with this outcome.
    pub fn chosen_by_people(self) -> bool {
        !matches!(self, AlertOutcome::CancelledByDevice | AlertOutcome::ResolvedByDevice)
    }
}

with_alert_stages! {
    /// One step of an alert's handling, with its VKP follow-up event code
    /// (`vkp-composition-event-v090`) where VKP has one.
    #[derive(async_graphql::Enum, serde::Serialize, serde::Deserialize)]
    #[sea_orm(rs_type = "String", db_type = "String(StringLen::N(30))")]
    pub enum StepKind {
        /// VKP 0.
        Raised,
        /// VKP 1.
        Acknowledged,
        /// VKP 4.
        HandedToResponder,
        /// VKP 5.
        ResponderAccepted,
        /// VKP 3.
        Resolved,
        /// A note on the cause (VKP 6, årsak).
        #[sea_orm(string_value = "note_cause")]
        NoteCause,
        /// A note on the measure taken (VKP 7, tiltak).
        #[sea_orm(string_value = "note_measure")]
        NoteMeasure,
        /// A note on a conversation (VKP 8, samtale).
        #[sea_orm(string_value = "note_conversation")]
        NoteConversation,
        /// A note on a dispatch or transfer of responsibility (VKP 9, aksjon).
        #[sea_orm(string_value = "note_dispatch")]
        NoteDispatch,
        /// A note on another party involved (VKP 10, annen aktør).
        #[sea_orm(string_value = "note_other_party")]
        NoteOtherParty,
        /// A step was late: the alert went to the next line (recorded as VKP 9, aksjon: a transfer
        /// of responsibility).
        #[sea_orm(string_value = "escalated")]
        Escalated,
        /// The device reported the alarm cancelled after a responder had it: the responder signs
        /// it off (recorded as VKP 6, årsak).
        #[sea_orm(string_value = "cancelled_at_device")]
        CancelledAtDevice,
    }
}

impl StepKind {
    /// The step's code in `http://ehelse.no/fhir/CodeSystem/vkp-composition-event-v090`.
    pub fn vkp_code(self) -> &'static str {
        match self {
            StepKind::Raised => "0",
            StepKind::Acknowledged => "1",
            StepKind::Resolved => "3",
            StepKind::HandedToResponder => "4",
            StepKind::ResponderAccepted => "5",
            StepKind::NoteCause | StepKind::CancelledAtDevice => "6",
            StepKind::NoteMeasure => "7",
            StepKind::NoteConversation => "8",
            StepKind::NoteDispatch | StepKind::Escalated => "9",
            StepKind::NoteOtherParty => "10",
        }
    }
}

/// The VKP code system of follow-up events, which alert steps are coded in.
pub const VKP_EVENT_SYSTEM: &str = "http://ehelse.no/fhir/CodeSystem/vkp-composition-event-v090";

pub mod alert {
    use super::*;

    crate::entity! {
        /// An event, or a device's silence, that needs a human.
        #[derive(serde::Serialize, serde::Deserialize)]
        #[sea_orm(table_name = "alert")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub municipality_id: i64,
            pub device_id: i64,
            /// The recipient the device was assigned to when the alert was raised.
            pub recipient_id: Option<i64>,
            /// The event kind's name in the WIT (`alarm-button`), or `device-offline` /
            /// `test-transmission-missed` for what Velferd derives.
            pub kind: String,
            /// The severity's name (`critical` …).
            pub severity: String,
            /// The VKP alert code (`vkp-alert-code-v090`), where one exists.
            pub vkp_code: Option<String>,
            /// Severity, then age: the queue's sort key.
            pub queue_key: String,
            /// The event that raised it (none for a derived alert).
            pub event_id: Option<i64>,
            /// `device:kind` while open; none once resolved.
            pub open_key: Option<String>,
            pub status: AlertStatus,
            pub outcome: Option<AlertOutcome>,
            /// Events it stands for: the raising one and those that joined it.
            pub event_count: i32,
            pub first_event_at: DateTimeWithTimeZone,
            pub last_event_at: DateTimeWithTimeZone,
            pub raised_at: DateTimeWithTimeZone,
            pub resolved_at: Option<DateTimeWithTimeZone>,
            /// The organisation it is handed to.
            pub responder_id: Option<i64>,
            /// The next line it went to when a step was late.
            pub escalated_to_id: Option<i64>,
            pub escalations: i32,
        }
    }
}

pub mod alert_step {
    use super::*;

    crate::entity! {
        /// One step of an alert's handling: what, when, who (subject, organisation, role).
        #[sea_orm(table_name = "alert_step")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub alert_id: i64,
            pub kind: StepKind,
            pub vkp_code: Option<String>,
            pub note: Option<String>,
            pub outcome: Option<AlertOutcome>,
            /// The token's subject; `velferd` for what Velferd did itself.
            pub subject: String,
            pub organization_id: Option<i64>,
            pub role: Option<String>,
            pub at: DateTimeWithTimeZone,
        }
    }
}

pub mod alert_deadline {
    use super::*;

    crate::entity! {
        /// When a step of an alert must have happened by; fired at most once.
        #[sea_orm(table_name = "alert_deadline")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub alert_id: i64,
            /// `acknowledge` or `accept`.
            pub kind: String,
            pub due_at_ms: i64,
            pub fired_at_ms: Option<i64>,
            /// When the step happened in time: the deadline is moot.
            pub settled_at_ms: Option<i64>,
        }
    }
}

pub mod device_watch {
    use super::*;

    crate::entity! {
        /// When a device must next be heard from (`heartbeat`: any event; `test`: a test
        /// transmission); fired at most once per silence.
        #[sea_orm(table_name = "device_watch")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub device_id: i64,
            pub kind: String,
            pub due_at_ms: i64,
            pub fired_at_ms: Option<i64>,
        }
    }
}

pub mod product_monitoring {
    use super::*;

    crate::entity! {
        /// How often a product's devices must be heard from, approved by the platform operator
        /// when it reviews the product's adapter.
        #[sea_orm(table_name = "product_monitoring")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub product_id: i64,
            pub heartbeat_seconds: Option<i32>,
            pub test_seconds: Option<i32>,
            pub set_by: String,
            pub set_at: DateTimeWithTimeZone,
        }
    }
}

pub mod service_agreement {
    use super::*;

    crate::entity! {
        /// A response centre serves a municipality over a period.
        #[sea_orm(table_name = "service_agreement")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub response_centre_id: i64,
            pub municipality_id: i64,
            pub call_off_id: Option<i64>,
            pub valid_from: Date,
            pub valid_to: Date,
            pub created_by: String,
            pub created_at: DateTimeWithTimeZone,
        }
    }
}

pub mod alert_escalation {
    use super::*;

    crate::entity! {
        /// A municipality's escalation line for one severity.
        #[sea_orm(table_name = "alert_escalation")]
        pub struct Model {
            #[sea_orm(primary_key)]
            pub id: i64,
            pub municipality_id: i64,
            pub severity: String,
            pub acknowledge_seconds: i32,
            pub accept_seconds: i32,
            /// None: the municipality itself.
            pub next_line_id: Option<i64>,
            pub updated_by: String,
            pub updated_at: DateTimeWithTimeZone,
        }
    }
}
