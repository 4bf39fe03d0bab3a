//! `velferd audit verify`: walks every municipality's chain and checks each entry's hash, its
//! link to the entry before, that the sequence has no gap, and that the anchor's HMAC holds and
//! names the chain's real head. A chain retention has cut (`super::retention`) is walked from
//! its cut, whose HMAC must hold too. It reads only.

use std::collections::BTreeSet;
use std::fmt;

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::chain::{GENESIS, anchor_message, cut_message, entry_hash};
use super::key::AuditKeys;
use super::model::{audit_anchor, audit_cut, audit_entry};

/// Entries read per query while walking a chain.
const PAGE: u64 = 1000;

/// An entry as findings name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef {
    pub seq: i64,
    pub id: i64,
}

impl fmt::Display for EntryRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}, id {}", self.seq, self.id)
    }
}

/// What is wrong with one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The entry's contents do not give its hash: it was edited.
    Altered(EntryRef),
    /// The entry does not carry the hash of the one before it: that one was replaced (its hash
    /// recomputed) or this link was edited.
    BrokenLink(EntryRef),
    /// Entries `from..=to` are missing before `next` (or at the chain's start).
    Missing { from: i64, to: i64, next: EntryRef },
    /// The anchor names a head beyond the chain's last entry: the newest entries were removed.
    Truncated { anchored_seq: i64, last: Option<EntryRef> },
    /// Entries after the anchored head, which no anchor covers.
    Unanchored { first: EntryRef },
    /// The anchored head hash is not the hash of the entry at the anchored sequence.
    HeadMismatch { anchored_seq: i64, entry: Option<EntryRef> },
    /// The anchor's HMAC does not verify under the key it names: the anchor (and likely the
    /// chain) was recomputed without the key.
    AnchorForged { anchored_seq: i64, entry: Option<EntryRef> },
    /// The anchor names a key not configured (neither current nor retired).
    UnknownKey { key_id: String },
    /// The retention cut's HMAC does not verify (or names a key not configured): entries were
    /// deleted from the chain's start, or the cut moved, without the key.
    CutForged { through_seq: i64 },
    /// The chain is shorter than an earlier run saw it: entries were removed together with
    /// (or by rewriting) the anchor.
    Shrunk { earlier_entries: i64, entries: i64 },
    /// The entry at an earlier run's head no longer has the hash it had: the chain was rolled
    /// back or rewritten since.
    Rewritten { earlier: i64, entry: Option<EntryRef> },
}

/// A problem in a municipality's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub municipality_id: i64,
    pub problem: Problem,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.municipality_id;
        let or_none = |e: &Option<EntryRef>| e.map_or("no entry".to_string(), |e| e.to_string());
        match &self.problem {
            Problem::Altered(e) => write!(f, "municipality {m}, {e}: altered (its contents do not give its hash)"),
            Problem::BrokenLink(e) => {
                write!(f, "municipality {m}, {e}: broken link (the entry before it was replaced, or this link edited)")
            }
            Problem::Missing { from, to, next } if from == to => {
                write!(f, "municipality {m}, seq {from}: removed (the chain jumps to {next})")
            }
            Problem::Missing { from, to, next } => {
                write!(f, "municipality {m}, seq {from} to {to}: removed (the chain jumps to {next})")
            }
            Problem::Truncated { anchored_seq, last } => write!(
                f,
                "municipality {m}, seq {anchored_seq}: removed (the anchor names head seq {anchored_seq}; the chain \
                 ends at {})",
                or_none(last)
            ),
            Problem::Unanchored { first } => {
                write!(f, "municipality {m}, {first}: not covered by the anchor (appended without the key?)")
            }
            Problem::HeadMismatch { anchored_seq, entry } => write!(
                f,
                "municipality {m}, seq {anchored_seq} ({}): the anchored head hash is not this entry's hash",
                or_none(entry)
            ),
            Problem::AnchorForged { anchored_seq, entry } => write!(
                f,
                "municipality {m}, seq {anchored_seq} ({}): anchor HMAC mismatch (the chain was recomputed without \
                 the audit key, or the key is not the one that signed it)",
                or_none(entry)
            ),
            Problem::Shrunk { earlier_entries, entries } => write!(
                f,
                "municipality {m}, seq {}: removed (the chain had {earlier_entries} entries at the checkpoint, now \
                 {entries}; entries and anchor removed together)",
                entries + 1
            ),
            Problem::Rewritten { earlier, entry } => write!(
                f,
                "municipality {m}, seq {earlier} ({}): rewritten (its hash is not the head hash the checkpoint \
                 recorded; the chain was rolled back or recomputed)",
                or_none(entry)
            ),
            Problem::CutForged { through_seq } => write!(
                f,
                "municipality {m}, seq 1 to {through_seq}: removed without the key (the retention cut's HMAC does not \
                 verify under a configured key)"
            ),
            Problem::UnknownKey { key_id } => write!(
                f,
                "municipality {m}: the anchor is signed with key {key_id}, which is not configured (add it to \
                 VELFERD_AUDIT_RETIRED_KEY_FILES)"
            ),
        }
    }
}

/// One chain as verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSummary {
    pub municipality_id: i64,
    pub entries: i64,
    /// The hash of the last entry (the genesis hash for an empty chain).
    pub head_hash: String,
    /// Where retention cut the chain, if it did: its entries are verified from there.
    pub cut: Option<Cut>,
}

/// Where retention cut a chain: entries 1 to `through_seq` were deleted as too old, the last
/// of them with hash `through_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cut {
    pub through_seq: i64,
    pub through_hash: String,
    pub at: chrono::DateTime<chrono::FixedOffset>,
}

/// What `verify` found: every chain, and what is wrong (empty when intact).
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub chains: Vec<ChainSummary>,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn intact(&self) -> bool {
        self.findings.is_empty()
    }

    pub fn entries(&self) -> i64 {
        self.chains.iter().map(|c| c.entries).sum()
    }
}

/// A chain as an earlier run of `velferd audit verify` printed it: what an operator keeps
/// outside the database, so that a chain removed together with its anchor, or rolled back to
/// an earlier signed state, is still found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub municipality_id: i64,
    pub entries: i64,
    pub head_hash: String,
}

/// The chain line `velferd audit verify` prints for `chain`, and for a cut chain the line that
/// says from where it was verified.
pub fn chain_line(chain: &ChainSummary) -> String {
    let line = format!(
        "chain     municipality {}: {} entries, head {}",
        chain.municipality_id, chain.entries, chain.head_hash
    );
    match &chain.cut {
        None => line,
        Some(cut) => format!(
            "{line}\ncut       municipality {}: seq 1 to {} deleted by retention (cut {}), verified from seq {}",
            chain.municipality_id,
            cut.through_seq,
            cut.at.with_timezone(&chrono::Utc).format("%Y-%m-%dT%H:%M:%SZ"),
            cut.through_seq + 1
        ),
    }
}

/// The chain lines of an earlier run's output (other lines are ignored, so the whole output
/// can be kept and passed back).
pub fn parse_checkpoints(text: &str) -> Result<Vec<Checkpoint>, String> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let Some(rest) = line.strip_prefix("chain ") else { continue };
        let parsed = (|| {
            let rest = rest.trim_start().strip_prefix("municipality ")?;
            let (municipality, rest) = rest.split_once(": ")?;
            let (entries, head) = rest.split_once(" entries, head ")?;
            let head = head.trim();
            (head.len() == 64 && super::chain::unhex(head).is_some()).then_some(())?;
            Some(Checkpoint {
                municipality_id: municipality.parse().ok()?,
                entries: entries.parse().ok()?,
                head_hash: head.to_string(),
            })
        })();
        found.push(parsed.ok_or_else(|| format!("line {}: not a chain line of `audit verify`: {line:?}", number + 1))?);
    }
    Ok(found)
}

/// Checks `report` against chains an earlier run saw: each must be at least as long, and its
/// entry at the earlier head must still have the earlier head's hash.
pub async fn check_checkpoints<C: ConnectionTrait>(
    db: &C,
    report: &mut Report,
    earlier: &[Checkpoint],
) -> Result<(), DbErr> {
    for checkpoint in earlier.iter().filter(|c| c.entries > 0) {
        let municipality_id = checkpoint.municipality_id;
        let chain = report.chains.iter().find(|c| c.municipality_id == municipality_id);
        let entries = chain.map_or(0, |c| c.entries);
        let cut = chain.and_then(|c| c.cut.clone());
        if let Some(cut) = cut
            && checkpoint.entries <= cut.through_seq
        {
            // Retention deleted the earlier head. At the cut itself its hash is kept; before it
            // the signed cut, which links to it, is what vouches for it.
            if checkpoint.entries == cut.through_seq && checkpoint.head_hash != cut.through_hash {
                let problem = Problem::Rewritten { earlier: checkpoint.entries, entry: None };
                report.findings.push(Finding { municipality_id, problem });
            }
            continue;
        }
        let at = audit_entry::Entity::find()
            .filter(audit_entry::Column::MunicipalityId.eq(municipality_id))
            .filter(audit_entry::Column::Seq.eq(checkpoint.entries))
            .one(db)
            .await?;
        let problem = match at {
            None if entries < checkpoint.entries => {
                Some(Problem::Shrunk { earlier_entries: checkpoint.entries, entries })
            }
            None => Some(Problem::Rewritten { earlier: checkpoint.entries, entry: None }),
            Some(entry) if entry.hash != checkpoint.head_hash => Some(Problem::Rewritten {
                earlier: checkpoint.entries,
                entry: Some(EntryRef { seq: entry.seq, id: entry.id }),
            }),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            report.findings.push(Finding { municipality_id, problem });
        }
    }
    Ok(())
}

/// Verifies every chain in the database against `keys`.
pub async fn verify<C: ConnectionTrait>(db: &C, keys: &AuditKeys) -> Result<Report, DbErr> {
    let anchors = audit_anchor::Entity::find().order_by_asc(audit_anchor::Column::MunicipalityId).all(db).await?;
    let cuts = audit_cut::Entity::find().all(db).await?;
    let with_entries: Vec<i64> = audit_entry::Entity::find()
        .select_only()
        .column(audit_entry::Column::MunicipalityId)
        .distinct()
        .into_tuple()
        .all(db)
        .await?;
    let municipalities: BTreeSet<i64> = anchors
        .iter()
        .map(|a| a.municipality_id)
        .chain(cuts.iter().map(|c| c.municipality_id))
        .chain(with_entries.iter().copied())
        .collect();
    let mut report = Report::default();
    for municipality_id in municipalities {
        let anchor = anchors.iter().find(|a| a.municipality_id == municipality_id);
        let cut = cuts.iter().find(|c| c.municipality_id == municipality_id);
        verify_chain(db, keys, municipality_id, anchor, cut, &mut report).await?;
    }
    Ok(report)
}

async fn verify_chain<C: ConnectionTrait>(
    db: &C,
    keys: &AuditKeys,
    municipality_id: i64,
    anchor: Option<&audit_anchor::Model>,
    cut: Option<&audit_cut::Model>,
    report: &mut Report,
) -> Result<(), DbErr> {
    let mut found = |problem: Problem| report.findings.push(Finding { municipality_id, problem });
    // A cut chain starts after the cut, linked to the hash it signed; an unsigned cut vouches
    // for nothing, and the walk then starts at the genesis (so the missing start is named too).
    let cut = cut.filter(|cut| {
        let message = cut_message(municipality_id, cut.through_seq, &cut.through_hash);
        let signed = keys.by_id(&cut.key_id).is_some_and(|key| key.verifies(&message, &cut.mac));
        if !signed {
            found(Problem::CutForged { through_seq: cut.through_seq });
        }
        signed
    });
    let base = cut.map_or(0, |c| c.through_seq);
    // Walk the chain in order, stopping at its first break: past it every link is suspect.
    let mut last: Option<EntryRef> = None;
    let mut prev_hash = cut.map_or_else(|| GENESIS.to_string(), |c| c.through_hash.clone());
    let mut at_anchor: Option<(EntryRef, String)> = None;
    let mut broken = false;
    'walk: loop {
        let page = audit_entry::Entity::find()
            .filter(audit_entry::Column::MunicipalityId.eq(municipality_id))
            .filter(audit_entry::Column::Seq.gt(last.map_or(base, |l| l.seq)))
            .order_by_asc(audit_entry::Column::Seq)
            .limit(PAGE)
            .all(db)
            .await?;
        let full = page.len() as u64 == PAGE;
        for entry in page {
            let here = EntryRef { seq: entry.seq, id: entry.id };
            let expected = last.map_or(base + 1, |l| l.seq + 1);
            if anchor.is_some_and(|a| a.head_seq == entry.seq) {
                at_anchor = Some((here, entry.hash.clone()));
            }
            if entry.seq != expected {
                found(Problem::Missing { from: expected, to: entry.seq - 1, next: here });
                broken = true;
                break 'walk;
            }
            if entry.prev_hash != prev_hash {
                found(Problem::BrokenLink(here));
                broken = true;
                break 'walk;
            }
            if entry_hash(&entry) != entry.hash {
                found(Problem::Altered(here));
                broken = true;
                break 'walk;
            }
            prev_hash = entry.hash;
            last = Some(here);
        }
        if !full {
            break;
        }
    }
    let count = last.map_or(base, |l| l.seq);
    let summary_cut =
        cut.map(|c| Cut { through_seq: c.through_seq, through_hash: c.through_hash.clone(), at: c.cut_at });
    report.chains.push(ChainSummary {
        municipality_id,
        entries: count,
        head_hash: prev_hash.clone(),
        cut: summary_cut,
    });
    let mut found = |problem: Problem| report.findings.push(Finding { municipality_id, problem });
    let Some(anchor) = anchor else {
        // Entries without any anchor: the anchor row was removed (or never written by Velferd).
        if let Some(first) = first_entry(db, municipality_id).await? {
            found(Problem::Unanchored { first });
        }
        return Ok(());
    };
    let entry_at_anchor = at_anchor.as_ref().map(|(e, _)| *e);
    match keys.by_id(&anchor.key_id) {
        None => found(Problem::UnknownKey { key_id: anchor.key_id.clone() }),
        Some(key) => {
            let message = anchor_message(municipality_id, anchor.head_seq, &anchor.head_hash);
            if !key.verifies(&message, &anchor.mac) {
                found(Problem::AnchorForged { anchored_seq: anchor.head_seq, entry: entry_at_anchor });
            }
        }
    }
    if broken {
        return Ok(());
    }
    if anchor.head_seq > count {
        found(Problem::Truncated { anchored_seq: anchor.head_seq, last });
    } else if anchor.head_seq < count {
        let first = next_after(db, municipality_id, anchor.head_seq).await?;
        found(Problem::Unanchored { first: first.unwrap_or(EntryRef { seq: anchor.head_seq + 1, id: 0 }) });
    } else if anchor.head_hash != prev_hash {
        found(Problem::HeadMismatch { anchored_seq: anchor.head_seq, entry: last });
    }
    Ok(())
}

async fn first_entry<C: ConnectionTrait>(db: &C, municipality_id: i64) -> Result<Option<EntryRef>, DbErr> {
    next_after(db, municipality_id, 0).await
}

async fn next_after<C: ConnectionTrait>(db: &C, municipality_id: i64, seq: i64) -> Result<Option<EntryRef>, DbErr> {
    Ok(audit_entry::Entity::find()
        .filter(audit_entry::Column::MunicipalityId.eq(municipality_id))
        .filter(audit_entry::Column::Seq.gt(seq))
        .order_by_asc(audit_entry::Column::Seq)
        .one(db)
        .await?
        .map(|e| EntryRef { seq: e.seq, id: e.id }))
}
