//! Free text about care over HTTP: every free-text field of every care mutation, and a
//! generator of valid national identity numbers (fødselsnummer, D- and H-numbers) written in
//! every separator style, alone and inside longer text. Issue 13, must-show 5: each such value
//! in each field is refused with `NATIONAL_ID_REFUSED`, and nothing is written.
//!
//! [`FREE_TEXT_FIELDS`] is the one list of (mutation, field): a new mutation with free text
//! about care adds its line here (its input built from the world's ids), and the property test
//! in `care.rs` covers it.

use proptest::prelude::*;
use serde_json::{Value, json};

/// One free-text field of a mutation's input.
pub struct FreeTextField {
    pub mutation: &'static str,
    pub input_type: &'static str,
    pub field: &'static str,
    /// A valid input that sets `field` to `text`, from the ids of the world (`world["recipientId"]` …).
    pub input: fn(world: &Value, text: &str) -> Value,
}

/// Every free-text field of the care and alert mutations.
pub const FREE_TEXT_FIELDS: &[FreeTextField] = &[
    FreeTextField {
        mutation: "serviceRecipientRegister",
        input_type: "ServiceRecipientRegisterInput",
        field: "reference",
        input: |_, text| json!({ "reference": text }),
    },
    FreeTextField {
        mutation: "serviceRecipientRegister",
        input_type: "ServiceRecipientRegisterInput",
        field: "careZone",
        input: |_, text| json!({ "reference": "ref-zone-check", "careZone": text }),
    },
    FreeTextField {
        mutation: "serviceRecipientUpdate",
        input_type: "ServiceRecipientUpdateInput",
        field: "careZone",
        input: |world, text| json!({ "recipientId": world["recipientId"], "careZone": text }),
    },
    FreeTextField {
        mutation: "assessmentCreate",
        input_type: "AssessmentCreateInput",
        field: "reason",
        input: |world, text| {
            json!({ "recipientId": world["recipientId"], "userStoryId": world["userStoryId"],
                "decision": "GRANTED", "reason": text })
        },
    },
    // The alert workflow's notes: the text is judged before the alert is looked up, so an alert
    // that does not exist shows the refusal as well as a real one would.
    FreeTextField {
        mutation: "alertNoteAdd",
        input_type: "AlertNoteAddInput",
        field: "text",
        input: |_, text| json!({ "alertId": unknown_alert(), "kind": "CONVERSATION", "text": text }),
    },
    FreeTextField {
        mutation: "alertHandOver",
        input_type: "AlertHandOverInput",
        field: "note",
        input: |_, text| {
            json!({ "alertId": unknown_alert(),
                "responderId": velferd::ids::global_id(velferd::ids::NodeType::Organization, 1), "note": text })
        },
    },
    FreeTextField {
        mutation: "alertResolve",
        input_type: "AlertResolveInput",
        field: "note",
        input: |_, text| json!({ "alertId": unknown_alert(), "outcome": "VISIT", "note": text }),
    },
];

/// The id of an alert no test raises.
fn unknown_alert() -> String {
    velferd::ids::global_id(velferd::ids::NodeType::Alert, 999_999_999)
}

impl FreeTextField {
    /// The mutation with `text` in the field; asks back the user errors.
    pub fn operation(&self) -> String {
        format!(
            "mutation($input: {}!) {{ {}(input: $input) {{ userErrors {{ field code message }} }} }}",
            self.input_type, self.mutation
        )
    }
}

/// How a number is written: nothing, spaces, punctuation, a no-break space, dashes.
pub const SEPARATORS: &[&str] = &["", " ", "-", ".", "/", "\u{a0}", "\u{2013}", "_", " - ", "  "];

/// A checksum-valid fødselsnummer (0), D-number (1) or H-number (2).
pub fn national_ids() -> impl Strategy<Value = String> {
    (1u32..=28, 1u32..=12, 0u32..=99, 0u32..=999, 0usize..3).prop_filter_map(
        "control digits fit",
        |(day, month, year, individual, kind)| {
            let (dd, mm) = match kind {
                0 => (day, month),
                1 => (day + 40, month),
                _ => (day, month + 40),
            };
            velferd_migration::national_id::example(dd, mm, year, individual)
        },
    )
}

/// A valid national identity number in one separator style, alone or inside longer text.
pub fn texts_with_a_national_id() -> impl Strategy<Value = (String, String)> {
    (national_ids(), prop::sample::select(SEPARATORS), "[a-zA-Zæøå .,:]{0,20}", "[a-zA-Zæøå .,:]{0,20}", any::<bool>())
        .prop_map(|(id, separator, before, after, alone)| {
            let written = format!("{}{separator}{}", &id[..6], &id[6..]);
            let text = if alone { written } else { format!("{before}{written}{after}") };
            (id, text)
        })
}
