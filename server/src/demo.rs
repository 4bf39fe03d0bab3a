//! The demo data set: real organisations from real procurements, with public figures only.
//! Where no public source gave a figure the field is empty; `server/demo/README.md` lists the
//! sources.

use chrono::NaiveDate;
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, TransactionTrait};
use serde::Deserialize;

use crate::auth::{Caller, Role};
use crate::db::Database;
use crate::errors::{ApiError, Refusal, RuleResult};
use crate::organizations::{
    self, CountyName, MunicipalityFacts, MunicipalityNumber, NewOrganization, OrgNumber, OrganizationKind,
    PopulationFigure,
};
use crate::text::Text;

pub mod devices;
pub mod feed;
pub mod tokens;

const ORGANIZATIONS: &str = include_str!("../demo/organizations.json");

/// The municipalities of the Larvik procurement: the source article names all 29.
pub const KNOWN_LARVIK_MEMBERS: usize = 29;

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
    #[error("{0}")]
    Adapters(String),
}

/// Unwraps a rule result: the demo data must satisfy every rule.
pub(crate) fn hold<T, E: std::fmt::Display>(what: &str, result: RuleResult<T, E>) -> Result<T, DemoError> {
    match result {
        Ok(value) => Ok(value),
        Err(Refusal::Rule(rule)) => Err(DemoError::File(format!("{what}: {rule}"))),
        Err(Refusal::Fault(fault)) => Err(fault.into()),
    }
}

/// A demo date, known to be valid.
/// Demo text, known to fit its bound.
pub(crate) fn t<const MAX: usize>(value: &str) -> Text<MAX> {
    Text::parse("demo", value).expect("demo text within its bound")
}

pub(crate) fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).expect("valid demo date")
}

/// A demo organisation, loaded before the procurements, by its name.
pub(crate) async fn by_name(txn: &DatabaseTransaction, name: &str) -> Result<organizations::model::Model, DemoError> {
    use organizations::model::{Column, Entity};
    Entity::find()
        .filter(Column::Name.eq(name))
        .one(txn)
        .await?
        .ok_or_else(|| DemoError::File(format!("demo organisation {name} missing")))
}

/// The demo loader acting for `org`.
pub(crate) fn caller(org: &organizations::model::Model) -> Caller {
    use crate::organizations::model::OrganizationKind as K;
    let role = match org.kind {
        K::Municipality => Role::ProcurementOfficer,
        K::Supplier => Role::Supplier,
        K::Programme => Role::Advisor,
        K::ResponseCentre => Role::Operator,
        K::Operator => Role::Admin,
    };
    Caller {
        subject: "demo-loader".into(),
        org_number: org.org_number.clone().unwrap_or_default(),
        org: org.clone(),
        role,
    }
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
            Ok((
                NewOrganization { kind: o.kind, name, org_number, municipality, population },
                o.larvik_medication_procurement,
            ))
        })
        .collect()
}

/// Loads the demo data into an empty database; leaves a database with data untouched.
pub async fn load(db: &Database) -> Result<(), DemoError> {
    if organizations::count_members(db.read()).await? > 0 {
        tracing::info!("database already has data; demo data not loaded");
        return Ok(());
    }
    let entries = parse()?;
    let txn = db.write().begin().await?;
    let mut larvik_members = Vec::new();
    for (new, role) in &entries {
        let row = hold(new.name.as_str(), organizations::insert(&txn, new.clone()).await)?;
        if let Some(role) = role {
            larvik_members.push((row, *role));
        }
    }
    procurements::larvik_medication_support(&txn, &larvik_members).await?;
    procurements::asker_baerum_safety_alarms(&txn).await?;
    crate::learning::demo::load(&txn).await?;
    crate::care::demo::load(&txn).await?;
    txn.commit().await?;
    tracing::info!(organizations = entries.len(), "demo data loaded");
    Ok(())
}

/// The demo procurements, played through the same rules the API enforces. Dates are the public
/// ones (DESIGN.md §1 and the sources in `server/demo/README.md`); a date known only to the
/// month is given as its first day. Prices, scores, the tender deadline's day and which user
/// stories each supplier won are not public: they are illustrative, and the README says so.
mod procurements {
    use chrono::{TimeZone, Utc};
    use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

    use super::{DemoError, LarvikRole, by_name, caller, day, hold, t};
    use crate::agreements::model::{Acquisition, CallOffStatus, RolloutScope};
    use crate::agreements::rules::{self as agreements, AgreementTerms, CallOffQuantity, NewCallOff, OpeningStatus};
    use crate::auth::Caller;
    use crate::money::Nok;
    use crate::organizations::model as organization;
    use crate::procurement::model::{ActivityKind, Category, ParticipantRole};
    use crate::procurement::phase::Phase;
    use crate::procurement::rules::{
        self, NewActivity, NewNotice, NewProcurement, NewResponse, NewSketch, NewUserStory,
    };
    use crate::procurement::values::{Score, StoryCode, Weight};

    /// Records dialogue activities of procurement `p` as its lead.
    fn activities<'a>(
        txn: &'a DatabaseTransaction,
        lead: &'a Caller,
        p: i64,
    ) -> impl AsyncFn(NewActivity) -> Result<(), DemoError> + 'a {
        async move |new: NewActivity| {
            hold(&format!("{:?}", new.kind), rules::add_activity(txn, lead, p, new).await).map(drop)
        }
    }

    pub async fn larvik_medication_support(
        txn: &DatabaseTransaction,
        members: &[(organization::Model, LarvikRole)],
    ) -> Result<(), DemoError> {
        let larvik = members
            .iter()
            .find(|(_, r)| *r == LarvikRole::Lead)
            .map(|(o, _)| o.clone())
            .ok_or_else(|| DemoError::File("no lead in the Larvik procurement".into()))?;
        let lead = caller(&larvik);
        let new = NewProcurement {
            title: t("Elektronisk medisineringsstøtte (fellesanskaffelse ledet av Larvik)"),
            category: Category::MedicationSupport,
            started_on: day(2017, 2, 1),
        };
        let p = hold("procurement", rules::create(txn, &lead, new).await)?;
        let activity = activities(txn, &lead, p.id);
        for (org, role) in members.iter().filter(|(_, r)| *r == LarvikRole::Participant) {
            let _ = role;
            hold(
                "participant",
                rules::add_participant(txn, &lead, p.id, org.id, ParticipantRole::Participant, day(2017, 2, 1)).await,
            )?;
        }
        for step in [
            "Forskrivning",
            "Multidose fra apotek",
            "Påfylling av dispenser",
            "Varsel og dosering",
            "Oppfølging ved glemt dose",
        ] {
            hold("journey step", rules::add_journey_step(txn, &lead, p.id, t(step), None).await)?;
        }
        activity(NewActivity {
            kind: ActivityKind::Workshop,
            title: t("Erfaringsdelingsworkshop og behovskartlegging med brukere og tjenesteytere"),
            held_on: day(2017, 2, 1),
            questions_sent_in_advance: None,
            attendees: vec![],
        })
        .await?;
        hold("dialogue", rules::change_phase(txn, &lead, p.id, Phase::Dialogue, None, day(2017, 4, 6)).await)?;
        activity(NewActivity {
            kind: ActivityKind::DialogueConference,
            title: t("Dialogkonferanse"),
            held_on: day(2017, 4, 6),
            questions_sent_in_advance: None,
            attendees: vec![],
        })
        .await?;
        activity(NewActivity {
            kind: ActivityKind::OneToOneMeeting,
            title: t("En-til-en-møter med interesserte leverandører (uke 22)"),
            held_on: day(2017, 5, 29),
            questions_sent_in_advance: None,
            attendees: vec![],
        })
        .await?;
        let mut stories = Vec::new();
        for n in 1..=4 {
            let story = hold(
                "user story",
                rules::add_user_story(
                    txn,
                    &lead,
                    p.id,
                    NewUserStory {
                        code: StoryCode::parse(&format!("BH{n}")).expect("a valid code"),
                        title: t(&format!("Brukerhistorie {n}")),
                        narrative: t("The user story's text is not in our public sources."),
                        acceptance_criteria: vec![],
                    },
                )
                .await,
            )?;
            stories.push(story);
        }
        for (name, weight) in [("Kvalitet (illustrative)", 60), ("Pris (illustrative)", 40)] {
            let weight = Weight::parse(weight).expect("a valid weight");
            hold("criterion", rules::add_criterion(txn, &lead, p.id, t(name), weight).await)?;
        }
        hold("competition", rules::change_phase(txn, &lead, p.id, Phase::Competition, None, day(2018, 1, 1)).await)?;
        let deadline = Utc.with_ymd_and_hms(2018, 2, 28, 12, 0, 0).single().expect("valid");
        hold(
            "notice",
            rules::publish_notice(
                txn,
                &lead,
                p.id,
                NewNotice::new(t("Doffin, January 2018 (reference not in our sources)"), day(2018, 1, 1), deadline)
                    .expect("the deadline follows the notice"),
            )
            .await,
        )?;

        let dignio = caller(&by_name(txn, "Dignio AS").await?);
        let evondos = caller(&by_name(txn, "Evondos Oy").await?);
        let submitted = Utc.with_ymd_and_hms(2018, 2, 20, 12, 0, 0).single().expect("valid");
        let mut tenders = Vec::new();
        for (supplier, purchase, lease) in [(&dignio, "9000", "600"), (&evondos, "11000", "700")] {
            let responses = stories
                .iter()
                .map(|s| {
                    let solution = t(&format!("{}'s answer to {}", supplier.org.name, s.code));
                    let (purchase, lease) = (purchase.parse::<Nok>().ok(), lease.parse::<Nok>().ok());
                    NewResponse::new(s.id, solution, purchase, lease).expect("priced")
                })
                .collect();
            tenders.push(hold("tender", rules::submit_tender(txn, supplier, p.id, responses, submitted).await)?);
        }
        let criteria = crate::procurement::model::evaluation_criterion::Entity::find()
            .filter(crate::procurement::model::evaluation_criterion::Column::ProcurementId.eq(p.id))
            .all(txn)
            .await?;
        let evaluated = Utc.with_ymd_and_hms(2018, 4, 1, 12, 0, 0).single().expect("valid");
        let responses = crate::procurement::model::tender_response::Entity::find().all(txn).await?;
        let mut agreements_made = Vec::new();
        for (i, story) in stories.iter().enumerate() {
            // Dignio and Evondos won two user stories each; which ones is not in our sources.
            let winner = if i < 2 { tenders[0].id } else { tenders[1].id };
            for response in responses.iter().filter(|r| r.user_story_id == story.id) {
                let score = Score::parse(if response.tender_id == winner { 8.0 } else { 6.0 }).expect("0 to 10");
                let scores = criteria.iter().map(|c| (c.id, score)).collect();
                hold("score", rules::score_response(txn, &lead, response.id, scores, evaluated).await)?;
            }
            let winning =
                responses.iter().find(|r| r.user_story_id == story.id && r.tender_id == winner).expect("answered");
            let award = hold("award", rules::award(txn, &lead, winning.id, day(2018, 6, 1), evaluated).await)?;
            let terms = AgreementTerms::new(day(2018, 6, 1), day(2022, 5, 31), 2000).expect("valid terms");
            let agreement = hold("agreement", agreements::create_agreement(txn, &lead, award.id, terms).await)?;
            agreements_made.push(agreement);
        }
        hold(
            "implementation",
            rules::change_phase(txn, &lead, p.id, Phase::Implementation, None, day(2019, 3, 7)).await,
        )?;
        // Call-offs by several municipalities: buy and lease, zone and full rollout.
        let orders = [
            ("Larvik kommune", 0, Acquisition::Lease, RolloutScope::PilotZone, 25),
            ("Bergen kommune", 0, Acquisition::Buy, RolloutScope::FullRollout, 300),
            ("Trondheim kommune", 2, Acquisition::Lease, RolloutScope::FullRollout, 200),
            ("Røyrvik kommune", 3, Acquisition::Buy, RolloutScope::PilotZone, 2),
        ];
        for (name, agreement, acquisition, scope, quantity) in orders {
            let municipality = caller(&by_name(txn, name).await?);
            hold(
                "call-off",
                agreements::create_call_off(
                    txn,
                    crate::db::Backend::Sqlite,
                    &municipality,
                    NewCallOff {
                        agreement_id: agreements_made[agreement].id,
                        acquisition,
                        scope,
                        quantity: CallOffQuantity::parse(quantity).expect("a valid quantity"),
                        placed_on: day(2019, 3, 15),
                        status: OpeningStatus::parse(CallOffStatus::Placed).expect("an opening status"),
                    },
                )
                .await,
            )?;
        }
        Ok(())
    }

    pub async fn asker_baerum_safety_alarms(txn: &DatabaseTransaction) -> Result<(), DemoError> {
        let asker = by_name(txn, "Asker kommune").await?;
        let baerum = by_name(txn, "Bærum kommune").await?;
        let lead = caller(&baerum);
        let new = NewProcurement {
            title: t("Responssentertjenester og trygghetsalarmer (Asker og Bærum)"),
            category: Category::SafetyAlarm,
            started_on: day(2019, 1, 1),
        };
        let p = hold("procurement", rules::create(txn, &lead, new).await)?;
        let activity = activities(txn, &lead, p.id);
        hold(
            "participant",
            rules::add_participant(txn, &lead, p.id, asker.id, ParticipantRole::Participant, day(2019, 1, 1)).await,
        )?;
        hold("dialogue", rules::change_phase(txn, &lead, p.id, Phase::Dialogue, None, day(2019, 3, 1)).await)?;
        activity(NewActivity {
            kind: ActivityKind::OneToOneMeeting,
            title: t("En-til-en-møter med leverandører (illustrative date)"),
            held_on: day(2019, 4, 1),
            questions_sent_in_advance: Some(true),
            attendees: vec![(asker.id, None), (baerum.id, None)],
        })
        .await?;
        for supplier in ["Dignio AS", "Evondos Oy"] {
            let supplier = caller(&by_name(txn, supplier).await?);
            hold(
                "sketch",
                rules::submit_sketch(
                    txn,
                    &supplier,
                    p.id,
                    NewSketch {
                        title: t("Løsningsskisse (illustrative)"),
                        summary: t("An illustrative sketch: the real sketches are not public."),
                        submitted_on: day(2019, 3, 20),
                    },
                )
                .await,
            )?;
        }
        Ok(())
    }
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

    /// The article lists 29 municipalities from 7 counties (as they were in 2017).
    #[test]
    fn the_larvik_procurement_has_its_29_municipalities_in_7_counties_led_by_larvik() {
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
