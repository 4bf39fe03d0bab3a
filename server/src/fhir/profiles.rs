//! Velferd's derived profiles: the StructureDefinitions in `schema/fhir/`, compiled in and
//! served as they are at `GET /fhir/StructureDefinition/{id}`. Each is a constraint on the VKP
//! profile it names as `baseDefinition`; its `description` and the elements' `comment`s say what
//! differs from VKP and why (`docs/fhir.md`).

/// Each profile's id and its JSON.
pub const PROFILES: [(&str, &str); 4] = [
    ("velferd-MedicationDispense", include_str!("../../../schema/fhir/velferd-MedicationDispense.json")),
    ("velferd-DetectedIssue", include_str!("../../../schema/fhir/velferd-DetectedIssue.json")),
    ("velferd-Encounter", include_str!("../../../schema/fhir/velferd-Encounter.json")),
    ("velferd-Composition", include_str!("../../../schema/fhir/velferd-Composition.json")),
];

/// The profile `id`, as served.
pub fn by_id(id: &str) -> Option<&'static str> {
    PROFILES.iter().find(|(name, _)| *name == id).map(|(_, text)| *text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_profile_is_served_under_its_own_id_and_url_and_claimed_by_the_resources() {
        for (id, text) in PROFILES {
            let profile: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(profile["id"], id);
            assert_eq!(profile["url"], format!("{}{id}", crate::fhir::resources::PROFILE_BASE));
            assert_eq!(profile["derivation"], "constraint");
            assert!(
                profile["baseDefinition"]
                    .as_str()
                    .unwrap()
                    .starts_with("http://ehelse.no/fhir/StructureDefinition/vkp-")
            );
        }
        for id in [
            crate::fhir::resources::MEDICATION_DISPENSE_PROFILE,
            crate::fhir::resources::DETECTED_ISSUE_PROFILE,
            crate::fhir::resources::ENCOUNTER_PROFILE,
            crate::fhir::resources::COMPOSITION_PROFILE,
        ] {
            assert!(by_id(id).is_some(), "{id}");
        }
        assert_eq!(by_id("vkp-MedicationDispense-v090"), None);
    }
}
