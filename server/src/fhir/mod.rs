//! The FHIR R4 export for municipalities' journal systems (EPJ), modelled on the national
//! welfare-technology hub's (VKP 0.9.0) profiles: dispensed doses as MedicationDispense, alerts as
//! DetectedIssue, an alarm as a `collection` Bundle of DetectedIssue + Encounter + Composition
//! with the response centre's steps as the Composition's events. Recipients appear only by the
//! municipality's pseudonymous reference, so Velferd claims its own profiles derived from VKP's
//! (`schema/fhir/`), never VKP's. One implementation ([`export`]) answers `GET /fhir/…`
//! ([`http`]) and the GraphQL field `fhirExport` ([`graphql`]), with the same rules and audit.
//! See `docs/fhir.md`.

pub mod export;
pub mod graphql;
pub mod http;
pub mod loaders;
pub mod model;
pub mod profiles;
pub mod resources;
pub mod settings;
