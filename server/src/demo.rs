//! The demo data set: real organisations from real procurements, with public figures only.
//! Where no public source gave a figure the field is empty; `server/demo/README.md` lists the
//! sources.

use sea_orm::TransactionTrait;
use serde::Deserialize;

use crate::db::Database;
use crate::graphql::errors::ApiError;
use crate::organizations::{
    self, CountyName, MunicipalityFacts, MunicipalityNumber, NewOrganization, OrgNumber, OrganizationKind,
    PopulationFigure,
};

const ORGANIZATIONS: &str = include_str!("../demo/organizations.json");

/// How many of the 29 municipalities of the Larvik procurement a readable public source names.
pub const KNOWN_LARVIK_MEMBERS: usize = 25;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoFile {
    organizations: Vec<DemoOrganization>,
}

/// Role in the Larvik-led joint procurement of medication support (2017–2019).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum LarvikRole {
    Lead,
    Participant,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoOrganization {
    kind: OrganizationKind,
    name: String,
    org_number: Option<String>,
    municipality_number: Option<String>,
    county: Option<String>,
    population: Option<u32>,
    population_year: Option<i32>,
    #[serde(default)]
    larvik_medication_procurement: Option<LarvikRole>,
    /// Where the figures come from; kept in the file, not in the database.
    #[allow(dead_code)]
    source: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo file: {0}")]
    File(String),
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

fn parse() -> Result<Vec<(NewOrganization, Option<LarvikRole>)>, DemoError> {
    let file: DemoFile = serde_json::from_str(ORGANIZATIONS).map_err(|e| DemoError::File(e.to_string()))?;
    file.organizations
        .into_iter()
        .map(|o| {
            let bad = |what: &str, e: &dyn std::fmt::Display| DemoError::File(format!("{}: {what}: {e}", o.name));
            let org_number = o
                .org_number
                .as_deref()
                .map(|n| n.parse::<OrgNumber>().map_err(|e| bad("org_number", &e)))
                .transpose()?;
            let municipality = match (&o.municipality_number, &o.county) {
                (Some(number), Some(county)) => Some(MunicipalityFacts {
                    number: number.parse::<MunicipalityNumber>().map_err(|e| bad("municipality_number", &e))?,
                    county: county.parse::<CountyName>().map_err(|e| bad("county", &e))?,
                }),
                (None, None) => None,
                _ => return Err(bad("municipality facts", &"number and county go together")),
            };
            let population = match (o.population, o.population_year) {
                (Some(inhabitants), Some(year)) => Some(PopulationFigure { inhabitants, year }),
                (None, None) => None,
                _ => return Err(bad("population", &"a figure needs its year")),
            };
            let name = o.name.parse().map_err(|e| bad("name", &e))?;
            Ok((NewOrganization { kind: o.kind, name, org_number, municipality, population }, o.larvik_medication_procurement))
        })
        .collect()
}

/// Loads the demo data into an empty database; leaves a database with data untouched.
pub async fn load(db: &Database) -> Result<(), DemoError> {
    if organizations::count_organizations(db.read()).await? > 0 {
        tracing::info!("database already has data; demo data not loaded");
        return Ok(());
    }
    let entries = parse()?;
    let txn = db.write().begin().await?;
    for (new, _) in &entries {
        if let Err(e) = organizations::insert(&txn, new.clone()).await? {
            return Err(DemoError::File(format!("{}: {e}", new.name.as_str())));
        }
    }
    txn.commit().await?;
    tracing::info!(organizations = entries.len(), "demo data loaded");
    Ok(())
}

/// The municipalities of the Larvik-led procurement with their role, for later data sets.
pub fn larvik_procurement_members() -> Vec<(String, LarvikRole)> {
    parse()
        .expect("demo file checked by tests")
        .into_iter()
        .filter_map(|(o, role)| role.map(|r| (o.name.as_str().to_string(), r)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_file_parses_with_the_production_rules() {
        let entries = parse().unwrap();
        assert!(entries.iter().any(|(o, _)| o.kind == OrganizationKind::Supplier));
    }

    /// Public sources report 29 municipalities; the one list we could read (Larvik's report)
    /// names 25 of them and lost four names in extraction. We keep the 25, never guess the rest.
    #[test]
    fn the_larvik_procurement_names_its_25_known_municipalities_in_7_counties_led_by_larvik() {
        let entries = parse().unwrap();
        let members: Vec<_> = entries.iter().filter(|(_, role)| role.is_some()).collect();
        assert_eq!(members.len(), KNOWN_LARVIK_MEMBERS);
        let counties: std::collections::BTreeSet<_> =
            members.iter().filter_map(|(o, _)| o.municipality.as_ref().map(|m| m.county.clone())).collect();
        assert_eq!(counties.len(), 7, "{counties:?}");
        let leads: Vec<_> = members.iter().filter(|(_, r)| *r == Some(LarvikRole::Lead)).collect();
        assert_eq!(leads.len(), 1);
        assert!(leads[0].0.name.as_str().starts_with("Larvik"));
    }
}
