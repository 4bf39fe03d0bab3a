//! The identifier system a municipality's recipients' pseudonymous references are exported under:
//! set by its `municipality_admin`, a documented default otherwise. The journal system maps
//! (system, reference) to its own patient; a national identity number never leaves Velferd,
//! since Velferd never holds one.

use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, Set, TryIntoModel};

use super::model::fhir_setting;
use crate::auth::Caller;
use crate::errors::{Invalid, RuleViolation};
use crate::organizations::model as organization;

/// The identifier systems of national identity numbers (fødselsnummer, D-number, felles
/// hjelpenummer), which VKP's MedicationDispense profile closes `subject.identifier` to. A
/// pseudonymous reference must never be labelled as one of them.
pub const NATIONAL_ID_SYSTEMS: [&str; 3] =
    ["urn:oid:2.16.578.1.12.4.1.4.1", "urn:oid:2.16.578.1.12.4.1.4.2", "urn:oid:2.16.578.1.12.4.1.4.3"];

/// Longest system URI kept (the column's width).
pub const MAX_SYSTEM_CHARS: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, RuleViolation)]
pub enum FhirSettingError {
    #[error(transparent)]
    #[violation(transparent)]
    Invalid(#[from] Invalid),
    #[error(
        "the system must be an absolute URI (`urn:…`, `https://…` or `http://…`) of at most 255 visible characters: {0}"
    )]
    #[violation(field = "recipientIdentifierSystem", code = "FHIR_SYSTEM_INVALID")]
    NotAnAbsoluteUri(&'static str),
    #[error(
        "that is the identifier system of national identity numbers; Velferd's references are the municipality's pseudonyms and must not be labelled as national identity numbers"
    )]
    #[violation(field = "recipientIdentifierSystem", code = "NATIONAL_ID_SYSTEM_REFUSED")]
    NationalIdSystem,
}

/// An absolute URI fit to name the recipients' identifier system: parsed at the edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientSystem(String);

impl RecipientSystem {
    pub fn parse(raw: &str) -> Result<RecipientSystem, FhirSettingError> {
        let value = raw.trim();
        if value.is_empty() || value.chars().count() > MAX_SYSTEM_CHARS {
            return Err(FhirSettingError::NotAnAbsoluteUri("empty or too long"));
        }
        if !value.chars().all(|c| c.is_ascii_graphic()) {
            return Err(FhirSettingError::NotAnAbsoluteUri("only visible ASCII, no spaces"));
        }
        let lower = value.to_ascii_lowercase();
        let well_formed = if let Some(rest) = lower.strip_prefix("urn:") {
            // `urn:<namespace>:<specific part>`, both non-empty.
            rest.split_once(':').is_some_and(|(ns, specific)| !ns.is_empty() && !specific.is_empty())
        } else if let Some(rest) = lower.strip_prefix("https://").or_else(|| lower.strip_prefix("http://")) {
            rest.split('/').next().is_some_and(|host| !host.is_empty())
        } else {
            false
        };
        if !well_formed {
            return Err(FhirSettingError::NotAnAbsoluteUri("unknown scheme or empty parts"));
        }
        let bare = lower.trim_end_matches('/');
        if NATIONAL_ID_SYSTEMS.contains(&bare) || NATIONAL_ID_SYSTEMS.iter().any(|s| bare.ends_with(&s[8..])) {
            return Err(FhirSettingError::NationalIdSystem);
        }
        if velferd_migration::holds_national_id(value) {
            return Err(FhirSettingError::NotAnAbsoluteUri("it holds a number shaped like a national identity number"));
        }
        Ok(RecipientSystem(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The system used when the municipality has set none: a URN naming Velferd and the
/// municipality by its organisation number (its row id when it has none).
pub fn default_recipient_system(municipality: &organization::Model) -> String {
    match &municipality.org_number {
        Some(number) => format!("urn:velferd:recipient-reference:{number}"),
        None => format!("urn:velferd:recipient-reference:org-{}", municipality.id),
    }
}

/// The municipality's system and whether it is the default.
pub async fn recipient_system<C: ConnectionTrait>(
    db: &C,
    municipality: &organization::Model,
) -> Result<(String, bool), DbErr> {
    let row =
        fhir_setting::Entity::find().filter(fhir_setting::Column::MunicipalityId.eq(municipality.id)).one(db).await?;
    Ok(match row {
        Some(row) => (row.recipient_system, false),
        None => (default_recipient_system(municipality), true),
    })
}

/// Sets (or, with `None`, resets to the default) the caller's municipality's system (the caller
/// is its `municipality_admin`, a role only municipalities have).
pub async fn set_recipient_system<C: ConnectionTrait>(
    db: &C,
    caller: &Caller,
    system: Option<RecipientSystem>,
) -> crate::errors::RuleResult<(String, bool), FhirSettingError> {
    let existing =
        fhir_setting::Entity::find().filter(fhir_setting::Column::MunicipalityId.eq(caller.org.id)).one(db).await?;
    let Some(system) = system else {
        if let Some(row) = existing {
            fhir_setting::Entity::delete_by_id(row.id).exec(db).await?;
        }
        return Ok((default_recipient_system(&caller.org), true));
    };
    let mut row: fhir_setting::ActiveModel = match existing {
        Some(row) => row.into(),
        None => fhir_setting::ActiveModel { municipality_id: Set(caller.org.id), ..Default::default() },
    };
    row.recipient_system = Set(system.as_str().to_string());
    row.updated_by = Set(caller.subject.chars().take(200).collect());
    row.updated_at = Set(Utc::now().fixed_offset());
    let saved: fhir_setting::ActiveModel = row.save(db).await?;
    Ok((saved.try_into_model()?.recipient_system, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_is_an_absolute_uri_and_never_a_national_id_system() {
        for good in
            ["urn:velferd:recipient-reference:918082956", "https://larvik.kommune.no/fhir/tm", "urn:oid:2.16.578.1.1"]
        {
            assert_eq!(RecipientSystem::parse(good).map(|s| s.0), Ok(good.to_string()), "{good}");
        }
        assert_eq!(RecipientSystem::parse("  urn:a:b ").map(|s| s.0), Ok("urn:a:b".into()));
        for bad in ["", "tm-0042", "urn:", "urn:x", "urn::x", "ftp://x", "https://", "urn:a b:c", "urn:a:æ"] {
            assert!(matches!(RecipientSystem::parse(bad), Err(FhirSettingError::NotAnAbsoluteUri(_))), "{bad}");
        }
        assert!(RecipientSystem::parse(&format!("urn:a:{}", "x".repeat(300))).is_err());
        for national in
            ["urn:oid:2.16.578.1.12.4.1.4.1", "URN:OID:2.16.578.1.12.4.1.4.2", "urn:oid:2.16.578.1.12.4.1.4.3/"]
        {
            assert_eq!(RecipientSystem::parse(national), Err(FhirSettingError::NationalIdSystem), "{national}");
        }
        assert!(RecipientSystem::parse("urn:x:05073500186").is_err(), "a national ID shape in the URI");
    }
}
