//! The FHIR R4 resources, built from what the export loaded: pure functions of their input, so
//! the same rows always give the same JSON (stable ids, `meta.lastUpdated` from Velferd's own
//! times). Codes come from the VKP 0.9.0 code systems; the device is identified, never
//! referenced; the recipient only by the municipality's pseudonymous reference.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use velferd_plugins::event::{VKP_ALERT_SYSTEM, VKP_DISPENSE_SYSTEM};

use crate::alerts::model::{AlertOutcome, AlertStatus, StepKind, VKP_EVENT_SYSTEM, alert, alert_step};

/// Where Velferd's derived profiles live (their canonical URLs); each is also served at
/// `GET /fhir/StructureDefinition/{id}`.
pub const PROFILE_BASE: &str = "https://velferd.no/fhir/StructureDefinition/";
pub const MEDICATION_DISPENSE_PROFILE: &str = "velferd-MedicationDispense";
pub const DETECTED_ISSUE_PROFILE: &str = "velferd-DetectedIssue";
pub const ENCOUNTER_PROFILE: &str = "velferd-Encounter";
pub const COMPOSITION_PROFILE: &str = "velferd-Composition";

/// VKP's extensions, by their canonical URLs (as their StructureDefinitions fix them).
pub const DISPENSE_DEVICE_EXTENSION: &str =
    "http://ehelse.no/fhir/StructureDefinition/VkpMedicationDispenseDevice-v090";
pub const ENCOUNTER_DEVICE_EXTENSION: &str = "http://ehelse.no/fhir/StructureDefinition/vkp-encounterDevice-v090";
pub const SEVERITY_EXTENSION: &str = "http://ehelse.no/fhir/StructureDefinition/vkp-severity-level-v090";
/// The system VKP's severity-level extension fixes `coding.system` to: the value set's URL, not
/// the code system's (`vkp-severitylevel-v090.structuredefinition-extension.xml`). Velferd sends
/// what the extension fixes; the codes are those of `CodeSystem/vkp-severity-level-v090`.
pub const SEVERITY_CODING_SYSTEM: &str = "http://ehelse.no/fhir/ValueSet/vkp-severity-level-v090";
pub const COMPOSITION_CATEGORY_SYSTEM: &str = "http://ehelse.no/fhir/CodeSystem/vkp-composition-category-v090";
pub const COMPOSITION_SECTION_SYSTEM: &str = "http://ehelse.no/fhir/CodeSystem/vkp-composition-section-v090";
pub const ENCOUNTER_REASON_SYSTEM: &str = "http://ehelse.no/fhir/CodeSystem/vkp-encounter-reason-v090";
/// HL7 v3 ActCode: `VR` (virtual), the class VKP names for digital encounters.
pub const ACT_CODE_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
/// The Norwegian register of legal entities (Enhetsregisteret): organisation numbers.
pub const ORG_NUMBER_SYSTEM: &str = "urn:oid:2.16.578.1.12.4.1.4.101";
/// Identifiers that are UUIDs (`urn:uuid:…`), as VKP fixes for `identifier.system`.
pub const URI_SYSTEM: &str = "urn:ietf:rfc:3986";

/// The WIT event kinds exported as MedicationDispense (their codes are in
/// `vkp-medicationdispense-events-v090`).
pub const DISPENSE_KINDS: [&str; 4] =
    ["dose-dispensed", "as-needed-dose-dispensed", "travel-doses-dispensed", "message-acknowledged"];

/// A point in time as a FHIR `instant` (UTC, microseconds: what PostgreSQL keeps).
pub fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// A stable UUID for one exported thing (`kind` and row id) of one deployment's municipality:
/// SHA-256 of the name, shaped as an RFC 9562 version 8 UUID. A UUID whose last group would hold
/// 11 digits in a row — the shape of a national identity number, which downstream scanners flag
/// — is hashed again with a counter, deterministically.
pub fn stable_uuid(municipality: &str, kind: &str, id: i64) -> String {
    for attempt in 0u32.. {
        let digest = Sha256::digest(format!("velferd-fhir:{municipality}:{kind}:{id}:{attempt}"));
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let uuid = format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]);
        if !velferd_migration::holds_national_id(&uuid) {
            return uuid;
        }
    }
    unreachable!("a counter runs until a UUID fits")
}

/// Who a resource is about: the municipality's pseudonymous reference under its system.
#[derive(Debug, Clone)]
pub struct Subject {
    pub system: String,
    pub reference: String,
}

impl Subject {
    /// A logical reference to the recipient's Patient: identifier only, never a link, never a
    /// name, never a national identity number.
    fn reference(&self) -> Value {
        json!({ "type": "Patient", "identifier": { "system": self.system, "value": self.reference } })
    }
}

/// The device a resource names.
#[derive(Debug, Clone)]
pub struct DeviceFacts {
    pub serial: String,
    /// The product's slug, which its serials are unique under.
    pub product_slug: String,
    /// The product's name as its adapter describes it (the slug when none does).
    pub product_name: String,
}

impl DeviceFacts {
    /// The identifier system of the product's serials.
    pub fn system(&self) -> String {
        format!("urn:velferd:device-serial:{}", self.product_slug)
    }

    /// A logical reference to the device: identifier only (VKP: `actor.reference` 0..0).
    fn reference(&self) -> Value {
        json!({
            "type": "Device",
            "identifier": { "system": self.system(), "value": self.serial },
            "display": self.product_name,
        })
    }

    /// VKP's device extension (`identifier`, `displayName`, `type`, `typeName`, `location`).
    fn extension(&self, url: &str, generic_type: &str, location: Option<&str>) -> Value {
        let mut parts = vec![
            json!({ "url": "identifier", "valueString": self.serial }),
            json!({ "url": "displayName", "valueString": self.product_name }),
            json!({ "url": "type", "valueString": generic_type }),
            json!({ "url": "typeName", "valueString": self.product_slug }),
        ];
        if let Some(location) = location {
            parts.push(json!({ "url": "location", "valueString": location }));
        }
        json!({ "url": url, "extension": parts })
    }
}

/// An organisation named by its organisation number (or only its name when it has none).
#[derive(Debug, Clone)]
pub struct OrgFacts {
    pub name: String,
    pub org_number: Option<String>,
}

impl OrgFacts {
    fn reference(&self) -> Value {
        match &self.org_number {
            Some(number) => json!({
                "type": "Organization",
                "identifier": { "system": ORG_NUMBER_SYSTEM, "value": number },
                "display": self.name,
            }),
            None => json!({ "type": "Organization", "display": self.name }),
        }
    }
}

/// One dispensed dose (or acknowledged message), as stored.
#[derive(Debug, Clone)]
pub struct DispenseFacts {
    pub event_id: i64,
    pub kind: String,
    /// Its code in `vkp-medicationdispense-events-v090`.
    pub code: String,
    pub occurred_at: DateTime<Utc>,
    /// When Velferd stored it: the resource's `meta.lastUpdated` (events never change).
    pub received_at: DateTime<Utc>,
    pub scheduled_for: Option<DateTime<Utc>>,
}

/// The dose's scheduled time, read from the stored event's data (`kind.scheduled_for`).
pub fn scheduled_for(data: &str) -> Option<DateTime<Utc>> {
    let data: Value = serde_json::from_str(data).ok()?;
    let at = data.get("kind")?.get("scheduled_for")?.as_str()?;
    DateTime::parse_from_rfc3339(at).ok().map(|t| t.with_timezone(&Utc))
}

/// A dispensed dose as Velferd's MedicationDispense profile.
pub fn medication_dispense(municipality: &str, dose: &DispenseFacts, subject: &Subject, device: &DeviceFacts) -> Value {
    let id = stable_uuid(municipality, "MedicationDispense", dose.event_id);
    let message = dose.kind == "message-acknowledged";
    let medication = if message {
        "Melding til bruker kvittert (ingen utlevering)"
    } else {
        "Dose fra medisindispenser (innholdet rapporteres ikke av enheten)"
    };
    let mut resource = json!({
        "resourceType": "MedicationDispense",
        "id": id,
        "meta": {
            "lastUpdated": instant(dose.received_at),
            "profile": [format!("{PROFILE_BASE}{MEDICATION_DISPENSE_PROFILE}")],
        },
        "extension": [device.extension(DISPENSE_DEVICE_EXTENSION, "Medisindispenser", None)],
        "identifier": [{ "system": URI_SYSTEM, "value": format!("urn:uuid:{id}") }],
        "status": "completed",
        "category": { "coding": [{ "system": VKP_DISPENSE_SYSTEM, "code": dose.code }] },
        "medicationCodeableConcept": { "text": medication },
        "subject": subject.reference(),
        "performer": [{ "actor": device.reference() }],
        "whenHandedOver": instant(dose.occurred_at),
    });
    let as_needed = dose.kind == "as-needed-dose-dispensed";
    if dose.scheduled_for.is_some() || as_needed {
        let mut dosage = serde_json::Map::new();
        if let Some(at) = dose.scheduled_for {
            dosage.insert("text".into(), json!(format!("Planlagt {}", instant(at))));
            dosage.insert("timing".into(), json!({ "event": [instant(at)] }));
        }
        if as_needed {
            dosage.insert("text".into(), json!("Behovsmedisin"));
            dosage.insert("asNeededBoolean".into(), json!(true));
        }
        resource["dosageInstruction"] = json!([Value::Object(dosage)]);
    }
    resource
}

/// An alert with everything its resources name.
#[derive(Debug, Clone)]
pub struct AlertFacts {
    pub alert: alert::Model,
    /// Oldest first.
    pub steps: Vec<alert_step::Model>,
    pub subject: Subject,
    pub device: DeviceFacts,
    pub municipality: OrgFacts,
    /// The organisation of each step (by the step's position), where it has one.
    pub step_orgs: Vec<Option<OrgFacts>>,
    /// Where in the home it fired (the raising event's place), when the device said.
    pub location: Option<String>,
}

impl AlertFacts {
    /// The alert's version: its newest step (every change to what is exported writes one).
    pub fn last_updated(&self) -> DateTime<Utc> {
        self.steps.iter().map(|s| s.at.with_timezone(&Utc)).max().unwrap_or(self.alert.raised_at.with_timezone(&Utc))
    }

    fn resolved(&self) -> bool {
        self.alert.status == AlertStatus::Resolved
    }
}

/// Velferd's severity names on FHIR's DetectedIssue scale.
fn issue_severity(severity: &str) -> &'static str {
    match severity {
        "critical" | "serious" => "high",
        "moderate" => "moderate",
        _ => "low",
    }
}

/// How an alert ended, in words, for `DetectedIssue.mitigation`.
fn outcome_text(outcome: AlertOutcome) -> &'static str {
    match outcome {
        AlertOutcome::HandledByPhone => "Håndtert på telefon",
        AlertOutcome::Visit => "Utrykning/besøk",
        AlertOutcome::FalseAlarm => "Falsk alarm",
        AlertOutcome::Cancelled => "Avbrutt",
        AlertOutcome::NoActionNeeded => "Ingen tiltak nødvendig",
        AlertOutcome::TechnicalFollowUp => "Teknisk oppfølging",
        AlertOutcome::CancelledByDevice => "Avbrutt på enheten",
        AlertOutcome::ResolvedByDevice => "Løst av enheten",
    }
}

/// An alert as Velferd's DetectedIssue profile. `None` when the alert's kind has no VKP code
/// (VKP binds `code` to its alert codes, required).
pub fn detected_issue(municipality: &str, facts: &AlertFacts) -> Option<Value> {
    let code = facts.alert.vkp_code.as_deref()?;
    let a = &facts.alert;
    let id = stable_uuid(municipality, "DetectedIssue", a.id);
    let severity = crate::alerts::rules::severity_of(&a.severity).vkp_code().code;
    let mut resource = json!({
        "resourceType": "DetectedIssue",
        "id": id,
        "meta": {
            "lastUpdated": instant(facts.last_updated()),
            "profile": [format!("{PROFILE_BASE}{DETECTED_ISSUE_PROFILE}")],
        },
        "extension": [{
            "url": SEVERITY_EXTENSION,
            "valueCodeableConcept": { "coding": [{ "system": SEVERITY_CODING_SYSTEM, "code": severity }] },
        }],
        "identifier": [{ "system": URI_SYSTEM, "value": format!("urn:uuid:{id}") }],
        "status": if facts.resolved() { "final" } else { "preliminary" },
        "code": { "coding": [{ "system": VKP_ALERT_SYSTEM, "code": code }], "text": a.kind },
        "severity": issue_severity(&a.severity),
        "patient": facts.subject.reference(),
        "identifiedDateTime": instant(a.first_event_at.with_timezone(&Utc)),
        "author": facts.device.reference(),
    });
    if let (Some(outcome), Some(at)) = (a.outcome, a.resolved_at) {
        resource["mitigation"] = json!([{
            "action": { "text": outcome_text(outcome) },
            "date": instant(at.with_timezone(&Utc)),
        }]);
    }
    Some(resource)
}

/// The response centre's handling of an alarm as Velferd's Encounter profile: a digital
/// encounter (class `VR`) for an event-driven reason (VKP reason 2, hendelsesbasert tilsyn),
/// from raising to resolving, with the alarm unit in VKP's device extension.
pub fn encounter(municipality: &str, facts: &AlertFacts) -> Value {
    let a = &facts.alert;
    let id = stable_uuid(municipality, "Encounter", a.id);
    let mut period = json!({ "start": instant(a.raised_at.with_timezone(&Utc)) });
    if let Some(end) = a.resolved_at {
        period["end"] = json!(instant(end.with_timezone(&Utc)));
    }
    json!({
        "resourceType": "Encounter",
        "id": id,
        "meta": {
            "lastUpdated": instant(facts.last_updated()),
            "profile": [format!("{PROFILE_BASE}{ENCOUNTER_PROFILE}")],
        },
        "extension": [facts.device.extension(ENCOUNTER_DEVICE_EXTENSION, "Trygghetsalarm", facts.location.as_deref())],
        "identifier": [{ "system": URI_SYSTEM, "value": format!("urn:uuid:{id}") }],
        "status": if facts.resolved() { "finished" } else { "in-progress" },
        "class": { "system": ACT_CODE_SYSTEM, "code": "VR", "display": "virtual" },
        "subject": facts.subject.reference(),
        "period": period,
        "reasonCode": [{ "coding": [{ "system": ENCOUNTER_REASON_SYSTEM, "code": "2" }] }],
        "serviceProvider": facts.municipality.reference(),
    })
}

/// XHTML narrative of plain text lines (escaped).
fn narrative(lines: &[String]) -> Value {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let body: Vec<String> = lines.iter().map(|l| format!("<p>{}</p>", escape(l))).collect();
    json!({ "status": "generated", "div": format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{}</div>", body.join("")) })
}

/// What a step is called in the narrative.
fn step_words(kind: StepKind) -> &'static str {
    match kind {
        StepKind::Raised => "Hendelse meldt",
        StepKind::Acknowledged => "Hendelse behandles",
        StepKind::HandedToResponder => "Hendelse til utrykning",
        StepKind::ResponderAccepted => "Utrykning akseptert",
        StepKind::Resolved => "Hendelse kvittert",
        StepKind::NoteCause => "Årsak",
        StepKind::NoteMeasure => "Tiltak",
        StepKind::NoteConversation => "Samtale",
        StepKind::NoteDispatch => "Aksjon",
        StepKind::NoteOtherParty => "Annen aktør",
        StepKind::Escalated => "Eskalert til neste linje",
        StepKind::CancelledAtDevice => "Avbrutt på enheten",
    }
}

/// The response centre's report of an alarm as Velferd's Composition profile: category 1
/// (trygghet og mestring), one `event` per step of the handling with its VKP follow-up code
/// and time (and the organisation that took it), a section describing the event that points at
/// the DetectedIssue, and one section per note.
pub fn composition(municipality: &str, facts: &AlertFacts, issue_url: &str, encounter_url: &str) -> Value {
    let a = &facts.alert;
    let id = stable_uuid(municipality, "Composition", a.id);
    let events: Vec<Value> = facts
        .steps
        .iter()
        .zip(&facts.step_orgs)
        .map(|(step, org)| {
            let mut event = json!({
                "code": [{ "coding": [{ "system": VKP_EVENT_SYSTEM, "code": step.kind.vkp_code() }], "text": step_words(step.kind) }],
                "period": { "start": instant(step.at.with_timezone(&Utc)) },
            });
            if let Some(org) = org {
                event["detail"] = json!([org.reference()]);
            }
            event
        })
        .collect();
    let code = a.vkp_code.as_deref().unwrap_or("3");
    let mut summary = vec![format!("{} ({}), VKP varselkode {code}", a.kind, a.severity)];
    summary
        .extend(facts.steps.iter().map(|s| format!("{}: {}", instant(s.at.with_timezone(&Utc)), step_words(s.kind))));
    let mut sections = vec![json!({
        "title": "Beskrivelse av hendelse",
        "code": { "coding": [{ "system": COMPOSITION_SECTION_SYSTEM, "code": "1.2" }] },
        "text": narrative(&summary),
        "entry": [{ "reference": issue_url }],
    })];
    for step in facts.steps.iter().filter(|s| s.note.is_some()) {
        let note = step.note.clone().unwrap_or_default();
        sections.push(json!({
            "title": step_words(step.kind),
            "code": { "coding": [{ "system": COMPOSITION_SECTION_SYSTEM, "code": "1.1" }] },
            "text": narrative(&[format!("{}: {note}", instant(step.at.with_timezone(&Utc)))]),
        }));
    }
    json!({
        "resourceType": "Composition",
        "id": id,
        "meta": {
            "lastUpdated": instant(facts.last_updated()),
            "profile": [format!("{PROFILE_BASE}{COMPOSITION_PROFILE}")],
        },
        "identifier": { "system": URI_SYSTEM, "value": format!("urn:uuid:{id}") },
        "status": if facts.resolved() { "final" } else { "preliminary" },
        "type": { "text": "Hendelsesrapport fra responssenter" },
        "category": [{ "coding": [{ "system": COMPOSITION_CATEGORY_SYSTEM, "code": "1" }] }],
        "subject": facts.subject.reference(),
        "encounter": { "reference": encounter_url },
        "date": instant(facts.last_updated()),
        "author": [facts.municipality.reference()],
        "title": format!("Alarm: {} (VKP {code})", a.kind),
        "event": events,
        "section": sections,
    })
}

/// An alarm the way the VKP guide reports one: a `collection` Bundle of its DetectedIssue,
/// Encounter and Composition, which refer to each other by the entries' `urn:uuid` full URLs.
/// `None` when the alert has no VKP code.
pub fn alarm_bundle(municipality: &str, facts: &AlertFacts) -> Option<Value> {
    let issue = detected_issue(municipality, facts)?;
    let encounter = encounter(municipality, facts);
    let issue_url = format!("urn:uuid:{}", issue["id"].as_str().unwrap_or_default());
    let encounter_url = format!("urn:uuid:{}", encounter["id"].as_str().unwrap_or_default());
    let composition = composition(municipality, facts, &issue_url, &encounter_url);
    let composition_url = format!("urn:uuid:{}", composition["id"].as_str().unwrap_or_default());
    let id = stable_uuid(municipality, "Bundle", facts.alert.id);
    Some(json!({
        "resourceType": "Bundle",
        "id": id,
        "meta": { "lastUpdated": instant(facts.last_updated()) },
        "identifier": { "system": URI_SYSTEM, "value": format!("urn:uuid:{id}") },
        "type": "collection",
        "timestamp": instant(facts.last_updated()),
        "entry": [
            { "fullUrl": composition_url, "resource": composition },
            { "fullUrl": issue_url, "resource": issue },
            { "fullUrl": encounter_url, "resource": encounter },
        ],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_uuids_are_stable_versioned_and_never_shaped_like_a_national_id() {
        let a = stable_uuid("918082956", "MedicationDispense", 7);
        assert_eq!(a, stable_uuid("918082956", "MedicationDispense", 7));
        assert_ne!(a, stable_uuid("918082956", "MedicationDispense", 8));
        assert_ne!(a, stable_uuid("918082956", "DetectedIssue", 7));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "8", "version 8: {a}");
        for id in 0..5000 {
            assert!(!velferd_migration::holds_national_id(&stable_uuid("1", "x", id)));
        }
    }

    #[test]
    fn a_dose_reads_its_scheduled_time_from_the_stored_event() {
        let data = r#"{"kind":{"type":"dose-dispensed","dose_id":"d-1","scheduled_for":"2026-11-22T07:00:00Z","assistance":"assisted"}}"#;
        assert_eq!(scheduled_for(data).map(instant).as_deref(), Some("2026-11-22T07:00:00.000000Z"));
        assert_eq!(scheduled_for(r#"{"kind":{"type":"message-acknowledged"}}"#), None);
        assert_eq!(scheduled_for("not json"), None);
    }
}
