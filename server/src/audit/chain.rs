//! One hash chain per municipality, and its signed anchor.
//!
//! Each entry's hash is SHA-256 over a canonical encoding of every field it stores (each text
//! length-prefixed, each number fixed-width, the time in whole microseconds) followed by the
//! hash of the entry before it, so changing any field, removing an entry or reordering two
//! breaks the chain from there on. The anchor row holds the head (sequence and hash) with an
//! HMAC under the audit key, which the database does not hold: whoever removes the newest
//! entries, or recomputes a chain, cannot make a matching anchor.
//!
//! Appending takes the municipality's anchor row first — `SELECT … FOR UPDATE` on PostgreSQL,
//! a no-op `UPDATE … RETURNING` on SQLite (which takes the database's write lock) — in the
//! caller's transaction, so writers of one municipality queue on that row until the caller
//! commits, and writers of different municipalities never touch the same row. The unique
//! `(municipality_id, seq)` key backs it: two writers can never take the same place.

use chrono::{DateTime, FixedOffset, Utc};
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, Statement,
};
use sha2::{Digest, Sha256};

use super::key::AuditKey;
use super::model::{audit_anchor, audit_entry};

/// The "previous hash" of a chain's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Times a writer outside a transaction tries again when another took its place.
const MAX_ATTEMPTS: usize = 50;

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

pub fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

/// Canonical encoding, field by field.
struct Encoder(Sha256);

impl Encoder {
    fn new(domain: &[u8]) -> Encoder {
        Encoder(Sha256::new_with_prefix(domain))
    }

    fn int(&mut self, n: i64) -> &mut Encoder {
        self.0.update(n.to_be_bytes());
        self
    }

    fn text(&mut self, s: &str) -> &mut Encoder {
        self.0.update((s.len() as u64).to_be_bytes());
        self.0.update(s.as_bytes());
        self
    }
}

/// The hash an entry must carry: over all its fields but its row id (a storage detail; the
/// entry's identity is its municipality and sequence) and its own hash.
pub fn entry_hash(entry: &audit_entry::Model) -> String {
    let mut e = Encoder::new(b"velferd-audit-entry-v1\0");
    e.int(entry.municipality_id)
        .int(entry.seq)
        .int(entry.recipient_id)
        .text(&entry.subject)
        .int(entry.organization_id)
        .text(&entry.role)
        .text(&entry.operation)
        .text(&entry.object_type)
        .int(entry.object_id)
        .text(&entry.purpose_kind)
        .text(&entry.purpose)
        .text(&entry.decision)
        .int(entry.at.timestamp_micros())
        .text(&entry.prev_hash);
    hex(&e.0.finalize())
}

/// What the anchor's HMAC covers: the chain (municipality) and its head.
pub fn anchor_message(municipality_id: i64, head_seq: i64, head_hash: &str) -> Vec<u8> {
    signed_message(b"velferd-audit-anchor-v1\0", municipality_id, head_seq, head_hash)
}

/// What a cut's HMAC covers: the chain (municipality) and the last entry retention deleted
/// from it. A domain of its own, so an anchor's MAC is never a valid cut's, nor the reverse.
pub fn cut_message(municipality_id: i64, through_seq: i64, through_hash: &str) -> Vec<u8> {
    signed_message(b"velferd-audit-cut-v1\0", municipality_id, through_seq, through_hash)
}

/// A domain tag, then a place in a chain: its municipality, sequence and hash.
fn signed_message(domain: &[u8], municipality_id: i64, seq: i64, hash: &str) -> Vec<u8> {
    let mut message = domain.to_vec();
    message.extend_from_slice(&municipality_id.to_be_bytes());
    message.extend_from_slice(&seq.to_be_bytes());
    message.extend_from_slice(hash.as_bytes());
    message
}

/// Now, in whole microseconds: what both back ends store exactly.
pub fn now() -> DateTime<FixedOffset> {
    let micros = Utc::now().timestamp_micros();
    DateTime::from_timestamp_micros(micros).expect("now is representable").fixed_offset()
}

/// An entry as it will be stored, before it has its place in the chain.
#[derive(Debug, Clone)]
pub struct Pending {
    pub entry: audit_entry::Model,
}

/// The chain head of `municipality_id`, locked for this transaction: created (at sequence 0,
/// the genesis hash) when the municipality has none yet.
async fn lock_head<C: ConnectionTrait>(db: &C, municipality_id: i64, key: &AuditKey) -> Result<(i64, String), DbErr> {
    let backend = db.get_database_backend();
    let lock = match backend {
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "SELECT head_seq, head_hash FROM audit_anchor WHERE municipality_id = $1 FOR UPDATE",
            [municipality_id.into()],
        ),
        // SQLite has no row locks: a write takes the database's write lock for the rest of the
        // transaction, and RETURNING reads the head under it.
        _ => Statement::from_sql_and_values(
            backend,
            "UPDATE audit_anchor SET head_seq = head_seq WHERE municipality_id = ? RETURNING head_seq, head_hash",
            [municipality_id.into()],
        ),
    };
    for _ in 0..2 {
        if let Some(row) = db.query_one_raw(lock.clone()).await? {
            return Ok((row.try_get("", "head_seq")?, row.try_get("", "head_hash")?));
        }
        // A first entry for this municipality: create its anchor. A concurrent creator makes
        // this wait for its commit and then do nothing.
        let mac = key.mac(&anchor_message(municipality_id, 0, GENESIS));
        let sql = match backend {
            DbBackend::Postgres => {
                "INSERT INTO audit_anchor (municipality_id, head_seq, head_hash, key_id, mac, updated_at) \
                 VALUES ($1, 0, $2, $3, $4, $5) ON CONFLICT (municipality_id) DO NOTHING"
            }
            _ => {
                "INSERT INTO audit_anchor (municipality_id, head_seq, head_hash, key_id, mac, updated_at) \
                 VALUES (?, 0, ?, ?, ?, ?) ON CONFLICT (municipality_id) DO NOTHING"
            }
        };
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [municipality_id.into(), GENESIS.into(), key.id().into(), mac.into(), now().into()],
        ))
        .await?;
    }
    Err(DbErr::Custom(format!("audit: the chain anchor of municipality {municipality_id} cannot be created")))
}

/// The chain's last entry (sequence and hash), or the genesis: what the next entry links to.
async fn tail<C: ConnectionTrait>(db: &C, municipality_id: i64) -> Result<(i64, String), DbErr> {
    let last = audit_entry::Entity::find()
        .select_only()
        .column(audit_entry::Column::Seq)
        .column(audit_entry::Column::Hash)
        .filter(audit_entry::Column::MunicipalityId.eq(municipality_id))
        .order_by_desc(audit_entry::Column::Seq)
        .limit(1)
        .into_tuple::<(i64, String)>()
        .one(db)
        .await?;
    Ok(last.unwrap_or((0, GENESIS.to_string())))
}

/// Appends `pending` to its municipality's chain and moves the signed anchor to it. Run in the
/// caller's transaction: the entry and the anchor commit (or roll back) with the access they
/// describe, and the anchor row's lock keeps other writers of the municipality out until then.
///
/// The new entry links to the chain's last entry (not to the anchor's head, which is the same
/// inside a transaction): a writer outside a transaction, whose lock ends with each statement,
/// may find the place taken (the unique key refuses it; it reads the tail again), and an entry
/// a crashed writer stored without moving the anchor is linked to and covered rather than
/// blocking the chain. The anchor only ever moves forward.
/// Returns the entry's sequence in the chain.
pub async fn append<C: ConnectionTrait>(db: &C, pending: Pending, key: &AuditKey) -> Result<i64, DbErr> {
    let municipality_id = pending.entry.municipality_id;
    for _ in 0..MAX_ATTEMPTS {
        if let Some(seq) = append_in_order(db, municipality_id, vec![pending.clone()], key).await? {
            return Ok(seq);
        }
    }
    Err(DbErr::Custom(format!(
        "audit: gave up appending to the chain of municipality {municipality_id} after {MAX_ATTEMPTS} attempts"
    )))
}

/// Appends `pendings`, all of `municipality_id`, in the order given, in `txn`: the head is
/// locked and the tail read once, the entries are linked in memory and inserted in multi-row
/// statements, and the anchor moves once, to the last. What many readers served at once (one
/// alert to a thousand consoles) costs a few statements, not four each.
///
/// Returns the last entry's sequence, or `None` when a writer outside a transaction took one of
/// the places meanwhile: roll `txn` back and try again.
pub async fn append_many(
    txn: &sea_orm::DatabaseTransaction,
    municipality_id: i64,
    pendings: Vec<Pending>,
    key: &AuditKey,
) -> Result<Option<i64>, DbErr> {
    append_in_order(txn, municipality_id, pendings, key).await
}

/// Entries inserted per statement: at 15 values a row, 7,500 bound values, far below either
/// back end's limit.
const ROWS_PER_INSERT: usize = 500;

async fn append_in_order<C: ConnectionTrait>(
    db: &C,
    municipality_id: i64,
    pendings: Vec<Pending>,
    key: &AuditKey,
) -> Result<Option<i64>, DbErr> {
    let (anchored_seq, _) = lock_head(db, municipality_id, key).await?;
    let (mut seq, mut hash) = tail(db, municipality_id).await?;
    if seq > anchored_seq {
        // Within a transaction this cannot happen; outside one it is a concurrent writer's
        // entry about to be anchored, or one a crash left unanchored (or one written without
        // the key): say so, for whoever reads `audit verify`'s history.
        tracing::warn!(
            municipality_id,
            anchored_seq,
            tail_seq = seq,
            "audit: entries beyond the anchored head; the next entry links to them and the anchor will cover them"
        );
    }
    let mut rows = Vec::with_capacity(pendings.len());
    let mut last_at = None;
    for Pending { mut entry } in pendings {
        debug_assert_eq!(entry.municipality_id, municipality_id, "one municipality's chain at a time");
        entry.seq = seq + 1;
        entry.prev_hash = hash;
        entry.hash = entry_hash(&entry);
        (seq, hash, last_at) = (entry.seq, entry.hash.clone(), Some(entry.at));
        rows.push(stored(entry));
    }
    let Some(last_at) = last_at else { return Ok(Some(seq)) };
    let expected = rows.len() as u64;
    let mut inserted = 0;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        // ON CONFLICT DO NOTHING rather than an error: a unique violation would abort the
        // caller's PostgreSQL transaction, and a writer outside a transaction may have taken a
        // place between our reading the tail and inserting.
        inserted += audit_entry::Entity::insert_many(rows.by_ref().take(ROWS_PER_INSERT))
            .on_conflict(
                OnConflict::columns([audit_entry::Column::MunicipalityId, audit_entry::Column::Seq])
                    .do_nothing()
                    .to_owned(),
            )
            .exec_without_returning(db)
            .await?;
    }
    if inserted != expected {
        return Ok(None);
    }
    // Forward only: outside a transaction a later entry may have been anchored already.
    audit_anchor::Entity::update_many()
        .col_expr(audit_anchor::Column::HeadSeq, Expr::value(seq))
        .col_expr(audit_anchor::Column::HeadHash, Expr::value(hash.clone()))
        .col_expr(audit_anchor::Column::KeyId, Expr::value(key.id()))
        .col_expr(audit_anchor::Column::Mac, Expr::value(key.mac(&anchor_message(municipality_id, seq, &hash))))
        .col_expr(audit_anchor::Column::UpdatedAt, Expr::value(last_at))
        .filter(audit_anchor::Column::MunicipalityId.eq(municipality_id))
        .filter(audit_anchor::Column::HeadSeq.lt(seq))
        .exec(db)
        .await?;
    Ok(Some(seq))
}

/// An entry with its place in the chain, as a row to insert.
fn stored(entry: audit_entry::Model) -> audit_entry::ActiveModel {
    audit_entry::ActiveModel {
        municipality_id: Set(entry.municipality_id),
        seq: Set(entry.seq),
        recipient_id: Set(entry.recipient_id),
        subject: Set(entry.subject),
        organization_id: Set(entry.organization_id),
        role: Set(entry.role),
        operation: Set(entry.operation),
        object_type: Set(entry.object_type),
        object_id: Set(entry.object_id),
        purpose_kind: Set(entry.purpose_kind),
        purpose: Set(entry.purpose),
        decision: Set(entry.decision),
        at: Set(entry.at),
        prev_hash: Set(entry.prev_hash),
        hash: Set(entry.hash),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> audit_entry::Model {
        audit_entry::Model {
            id: 1,
            municipality_id: 7,
            seq: 1,
            recipient_id: 3,
            subject: "kari".into(),
            organization_id: 7,
            role: "case_worker".into(),
            operation: "recipient.read".into(),
            object_type: "ServiceRecipient".into(),
            object_id: 3,
            purpose_kind: "casework".into(),
            purpose: String::new(),
            decision: "granted".into(),
            at: DateTime::from_timestamp_micros(1_765_000_000_123_456).unwrap().fixed_offset(),
            prev_hash: GENESIS.into(),
            hash: String::new(),
        }
    }

    #[test]
    fn every_field_but_the_row_id_changes_the_hash() {
        let base = entry_hash(&entry());
        assert_eq!(base.len(), 64);
        let changes: Vec<fn(&mut audit_entry::Model)> = vec![
            |e| e.municipality_id += 1,
            |e| e.seq += 1,
            |e| e.recipient_id += 1,
            |e| e.subject.push('x'),
            |e| e.organization_id += 1,
            |e| e.role.push('x'),
            |e| e.operation.push('x'),
            |e| e.object_type.push('x'),
            |e| e.object_id += 1,
            |e| e.purpose_kind.push('x'),
            |e| e.purpose.push('x'),
            |e| e.decision.push('x'),
            |e| e.at += chrono::Duration::microseconds(1),
            |e| e.prev_hash = "1".repeat(64),
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let mut e = entry();
            change(&mut e);
            assert_ne!(entry_hash(&e), base, "change {i} left the hash as it was");
        }
        let mut e = entry();
        e.id = 99;
        assert_eq!(entry_hash(&e), base);
    }

    #[test]
    fn texts_are_length_prefixed_so_a_shifted_boundary_changes_the_hash() {
        let mut a = entry();
        a.role = "case".into();
        a.operation = "_workerrecipient.read".into();
        let mut b = entry();
        b.role = "case_worker".into();
        b.operation = "recipient.read".into();
        assert_ne!(entry_hash(&a), entry_hash(&b));
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(hex(&[0, 15, 255]), "000fff");
        assert_eq!(unhex("000fff"), Some(vec![0, 15, 255]));
        assert_eq!(unhex("0g"), None);
        assert_eq!(unhex("abc"), None);
    }
}
