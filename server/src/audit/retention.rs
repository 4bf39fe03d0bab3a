//! Retention of the audit log: deletes each chain's oldest entries, those made before the
//! cutoff, and records where the chain was cut — the sequence and hash of the last entry
//! deleted, signed under the audit key ([`chain::cut_message`]) — so that what remains still
//! verifies from the cut (`velferd audit verify` says from where).
//!
//! The cut never passes what would hide tampering: it moves only over entries it has just
//! checked (contiguous sequence, each link and hash intact, from the previous cut or the
//! genesis), so an entry removed, replaced or edited stays in the log for `verify` to name.
//! It never deletes a chain's newest entry, which the next append links to. It only moves
//! forward, so instances sweeping at once cannot undo each other's cut.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set};

use super::chain::{GENESIS, cut_message, entry_hash, now};
use super::key::{AuditKey, AuditKeys};
use super::model::{audit_anchor, audit_cut, audit_entry};
use crate::db::Database;

/// The cut of `municipality_id`'s chain, if retention ever cut it.
async fn base<C: ConnectionTrait>(db: &C, municipality_id: i64) -> Result<Option<audit_cut::Model>, DbErr> {
    audit_cut::Entity::find().filter(audit_cut::Column::MunicipalityId.eq(municipality_id)).one(db).await
}

/// Deletes, in every chain, the entries made before `cutoff` (all but each chain's newest), at
/// most `batch` a transaction; returns how many went.
pub async fn sweep(db: &Database, cutoff: DateTime<Utc>, keys: &AuditKeys, batch: u64) -> Result<u64, DbErr> {
    let chains: Vec<i64> = audit_anchor::Entity::find()
        .select_only()
        .column(audit_anchor::Column::MunicipalityId)
        .order_by_asc(audit_anchor::Column::MunicipalityId)
        .into_tuple()
        .all(db.background())
        .await?;
    let mut deleted = 0;
    for municipality_id in chains {
        deleted += sweep_chain(db, municipality_id, cutoff, keys, batch).await?;
    }
    Ok(deleted)
}

async fn sweep_chain(
    db: &Database,
    municipality_id: i64,
    cutoff: DateTime<Utc>,
    keys: &AuditKeys,
    batch: u64,
) -> Result<u64, DbErr> {
    let cutoff = cutoff.fixed_offset();
    let mut deleted = 0;
    let mut retried = false;
    loop {
        let cut = base(db.background(), municipality_id).await?;
        let (from_seq, from_hash) = match &cut {
            Some(cut) => {
                let signed = keys.by_id(&cut.key_id).is_some_and(|key| {
                    key.verifies(&cut_message(municipality_id, cut.through_seq, &cut.through_hash), &cut.mac)
                });
                if !signed {
                    tracing::warn!(
                        municipality_id,
                        through_seq = cut.through_seq,
                        "audit retention: the chain's cut does not verify under a configured key; not cutting further (run `velferd audit verify`)"
                    );
                    return Ok(deleted);
                }
                (cut.through_seq, cut.through_hash.clone())
            }
            None => (0, GENESIS.to_string()),
        };
        let entries = audit_entry::Entity::find()
            .filter(audit_entry::Column::MunicipalityId.eq(municipality_id))
            .filter(audit_entry::Column::Seq.gt(from_seq))
            .order_by_asc(audit_entry::Column::Seq)
            .limit(batch + 1)
            .all(db.background())
            .await?;
        // The newest entry stays: the next append links to it.
        let candidates = entries.len().saturating_sub(1);
        let mut through: Option<(i64, String)> = None;
        let mut stop = (entries.len() as u64) <= batch;
        let mut broken = None;
        let (mut expected_seq, mut prev_hash) = (from_seq + 1, from_hash.as_str());
        for entry in &entries[..candidates] {
            if entry.at >= cutoff {
                stop = true;
                break;
            }
            if entry.seq != expected_seq || entry.prev_hash != prev_hash || entry_hash(entry) != entry.hash {
                broken = Some(entry.seq);
                stop = true;
                break;
            }
            through = Some((entry.seq, entry.hash.clone()));
            expected_seq = entry.seq + 1;
            prev_hash = entry.hash.as_str();
        }
        if let Some(seq) = broken {
            // Another instance may have cut (and deleted) meanwhile: read the cut again, once.
            let moved =
                base(db.background(), municipality_id).await?.map(|c| c.through_seq) != cut.map(|c| c.through_seq);
            if moved && !retried {
                retried = true;
                continue;
            }
            tracing::warn!(
                municipality_id,
                seq,
                "audit retention: the chain is broken here; kept from here on for `velferd audit verify` to name"
            );
        }
        let Some((through_seq, through_hash)) = through else { return Ok(deleted) };
        deleted += cut_through(db, municipality_id, through_seq, &through_hash, &keys.current).await?;
        if stop {
            return Ok(deleted);
        }
    }
}

/// In one transaction: moves the chain's cut forward to `through_seq` (signed with `key`) and
/// deletes the entries up to it. Returns how many entries were deleted.
async fn cut_through(
    db: &Database,
    municipality_id: i64,
    through_seq: i64,
    through_hash: &str,
    key: &AuditKey,
) -> Result<u64, DbErr> {
    use sea_orm::TransactionTrait;
    let mac = key.mac(&cut_message(municipality_id, through_seq, through_hash));
    let at = now();
    let txn = db.write().begin().await?;
    let moved = audit_cut::Entity::update_many()
        .col_expr(audit_cut::Column::ThroughSeq, Expr::value(through_seq))
        .col_expr(audit_cut::Column::ThroughHash, Expr::value(through_hash))
        .col_expr(audit_cut::Column::KeyId, Expr::value(key.id()))
        .col_expr(audit_cut::Column::Mac, Expr::value(mac.clone()))
        .col_expr(audit_cut::Column::CutAt, Expr::value(at))
        .filter(audit_cut::Column::MunicipalityId.eq(municipality_id))
        .filter(audit_cut::Column::ThroughSeq.lt(through_seq))
        .exec(&txn)
        .await?
        .rows_affected;
    if moved == 0 {
        // The chain's first cut; or another instance's cut is already at or past this one, and
        // then this inserts nothing and the delete below finds nothing left to delete.
        let row = audit_cut::ActiveModel {
            municipality_id: Set(municipality_id),
            through_seq: Set(through_seq),
            through_hash: Set(through_hash.to_string()),
            key_id: Set(key.id().to_string()),
            mac: Set(mac),
            cut_at: Set(at),
            ..Default::default()
        };
        audit_cut::Entity::insert(row)
            .on_conflict(OnConflict::column(audit_cut::Column::MunicipalityId).do_nothing().to_owned())
            .exec_without_returning(&txn)
            .await?;
    }
    let deleted = audit_entry::Entity::delete_many()
        .filter(audit_entry::Column::MunicipalityId.eq(municipality_id))
        .filter(audit_entry::Column::Seq.lte(through_seq))
        .exec(&txn)
        .await?
        .rows_affected;
    txn.commit().await?;
    Ok(deleted)
}
