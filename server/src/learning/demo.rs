//! The learning part of the demo data, played through the same rules the API enforces.
//!
//! Called from `crate::demo::load` after the procurements.
//!
//! Public facts: the Trøndelag learning network on innovative procurement of welfare
//! technology and its members named here, its fourth gathering at Inderøy's town hall, Larvik's
//! report on the whole process (April 2019), Asker and Bærum's learning arena for about 35 people
//! from nearly 20 municipalities, and the Lillestrøm municipalities (Skedsmo, Fet, Sørum)
//! reusing another procurement's needs mapping. Illustrative: the coordinating programme, the
//! gathering's date, topic and attendance figures, the report's lesson texts, the arena's date,
//! Sørum's follower role in Larvik's procurement and the reuse date.

use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use super::rules::{self, NewGathering, NewNetwork, NewReport};
use crate::demo::{DemoError, by_name, caller, day, hold, t};
use crate::organizations::model as organization;
use crate::procurement::model::{ActivityKind, ParticipantRole, procurement};
use crate::procurement::phase::Phase;
use crate::procurement::rules::{self as procurement_rules, NewActivity};

async fn led_by(txn: &DatabaseTransaction, lead: &organization::Model) -> Result<procurement::Model, DemoError> {
    procurement::Entity::find()
        .filter(procurement::Column::LeadId.eq(lead.id))
        .one(txn)
        .await?
        .ok_or_else(|| DemoError::File(format!("no demo procurement led by {}", lead.name)))
}

pub async fn load(txn: &DatabaseTransaction) -> Result<(), DemoError> {
    // The Trøndelag network and its fourth gathering at Inderøy.
    let programme = by_name(txn, "Leverandørutviklingsprogrammet (LUP)").await?;
    let adviser = caller(&programme);
    let network = hold(
        "network",
        rules::create_network(
            txn,
            &adviser,
            NewNetwork {
                name: t("Læringsnettverk for innovative anskaffelser av velferdsteknologi i Trøndelag"),
                description: Some(t("Coordinating programme illustrative.")),
            },
        )
        .await,
    )?;
    let mut members = Vec::new();
    for name in ["Steinkjer kommune", "Snåsa kommune", "Verran kommune", "Inderøy kommune", "Vikna kommune"] {
        let org = by_name(txn, name).await?;
        hold("member", rules::add_member(txn, &adviser, network.id, org.id, None).await)?;
        members.push(org);
    }
    hold(
        "gathering",
        rules::add_gathering(
            txn,
            &adviser,
            network.id,
            NewGathering {
                number: 4,
                held_on: day(2018, 3, 1),
                host_id: members[3].id,
                venue: Some(t("Inderøy rådhus")),
                topic: t("Fjerde samling (illustrative topic and date)"),
                attendance: vec![(members[0].id, 2), (members[1].id, 1), (members[3].id, 3), (members[4].id, 1)],
            },
        )
        .await,
    )?;

    // Larvik's report on the whole process.
    let larvik = by_name(txn, "Larvik kommune").await?;
    let larvik_procurement = led_by(txn, &larvik).await?;
    hold(
        "report",
        rules::publish_report(
            txn,
            &caller(&larvik),
            NewReport {
                procurement_id: larvik_procurement.id,
                network_id: None,
                phase: None,
                title: t("Rapport: felles anskaffelse av elektronisk medisineringsstøtte"),
                summary: t("Larvik kommune's report on the whole process (April 2019). Lesson texts are illustrative."),
                public: true,
                published_on: day(2019, 4, 1),
                lessons: vec![
                    (
                        Phase::Needs,
                        t("Behovskartleggingen med brukere og tjenesteytere ga en felles tjenestereise (illustrative)."),
                    ),
                    (Phase::Dialogue, t("En-til-en-møtene ga leverandørene et bedre grunnlag (illustrative).")),
                    (Phase::Implementation, t("Hver kommune gjør sin egen faglige vurdering (illustrative).")),
                ],
            },
        )
        .await,
    )?;

    // Asker and Bærum's learning arena.
    let baerum = by_name(txn, "Bærum kommune").await?;
    let asker = by_name(txn, "Asker kommune").await?;
    let alarms = led_by(txn, &baerum).await?;
    hold("learning arena", procurement_rules::add_activity(txn, &caller(&baerum), alarms.id, NewActivity {
        kind: ActivityKind::LearningArena,
        title: t("Læringsarena: about 35 people from nearly 20 municipalities (illustrative date; attendees not in our sources)"),
        held_on: day(2019, 5, 1),
        questions_sent_in_advance: None,
        attendees: vec![(asker.id, None), (baerum.id, None)],
    }).await)?;

    // The Lillestrøm municipalities reuse Larvik's needs mapping.
    let sorum = by_name(txn, "Sørum kommune").await?;
    hold(
        "follower",
        procurement_rules::add_participant(
            txn,
            &caller(&larvik),
            larvik_procurement.id,
            sorum.id,
            ParticipantRole::Follower,
            day(2019, 3, 7),
        )
        .await,
    )?;
    let reuse = hold(
        "reuse",
        rules::reuse(
            txn,
            &caller(&sorum),
            larvik_procurement.id,
            t("Medisineringsstøtte for Skedsmo, Fet og Sørum (illustrative)"),
            day(2019, 6, 1),
        )
        .await,
    )?;
    for name in ["Skedsmo kommune", "Fet kommune"] {
        let org = by_name(txn, name).await?;
        hold(
            "participant",
            procurement_rules::add_participant(
                txn,
                &caller(&sorum),
                reuse.copy_id,
                org.id,
                ParticipantRole::Participant,
                day(2019, 6, 1),
            )
            .await,
        )?;
    }
    Ok(())
}
