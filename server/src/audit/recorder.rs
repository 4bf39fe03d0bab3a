//! Entries of accesses that have no transaction of their own — a live alert served to each of
//! many consoles — written together: one transaction per batch, each municipality's chain locked
//! once and its entries inserted in multi-row statements ([`chain::append_many`]), instead of
//! four statements and a commit each on the one write connection.

use std::collections::BTreeMap;

use sea_orm::{DbErr, TransactionTrait};
use tokio::sync::{mpsc, oneshot};

use super::{Access, chain, key};
use crate::db::Database;

/// Most entries one transaction writes; more wait for the next.
const MAX_BATCH: usize = 2_000;
/// Entries that may wait for a batch; a writer past it waits for room.
const QUEUE: usize = 16_384;
/// Times a batch is tried again when a writer outside a transaction took one of its places.
const MAX_ATTEMPTS: usize = 20;

struct Job {
    pending: chain::Pending,
    done: oneshot::Sender<Result<(), String>>,
}

/// Writes audit entries for many concurrent readers in few transactions. Cheap to clone; its
/// writer stops when the last clone is dropped.
#[derive(Clone)]
pub struct Recorder {
    jobs: mpsc::Sender<Job>,
}

impl Recorder {
    /// Starts the writer on the current Tokio runtime.
    pub fn start(db: Database) -> Recorder {
        let (jobs, queue) = mpsc::channel(QUEUE);
        tokio::spawn(write_loop(db, queue));
        Recorder { jobs }
    }

    /// Appends `access` to its municipality's chain with whatever else is waiting, and answers
    /// once it is committed. An error means it is not: do not serve what it describes.
    pub async fn record(&self, access: Access<'_>) -> Result<(), DbErr> {
        super::mark_recorded();
        let (done, committed) = oneshot::channel();
        let stopped = || DbErr::Custom("audit: the recorder has stopped".into());
        self.jobs.send(Job { pending: access.pending(), done }).await.map_err(|_| stopped())?;
        committed.await.map_err(|_| stopped())?.map_err(DbErr::Custom)
    }
}

async fn write_loop(db: Database, mut queue: mpsc::Receiver<Job>) {
    let mut batch = Vec::new();
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let pendings = batch.iter().map(|job| job.pending.clone()).collect();
        let result = write(&db, pendings).await.map_err(|error| {
            tracing::warn!(%error, entries = batch.len(), "audit: writing a batch of entries failed");
            error.to_string()
        });
        for job in batch.drain(..) {
            let _ = job.done.send(result.clone());
        }
    }
}

/// Writes `pendings` in one transaction, each municipality's in the order given and the
/// municipalities in ascending order (the lock order every writer keeps).
async fn write(db: &Database, pendings: Vec<chain::Pending>) -> Result<(), DbErr> {
    let mut chains: BTreeMap<i64, Vec<chain::Pending>> = BTreeMap::new();
    for pending in pendings {
        chains.entry(pending.entry.municipality_id).or_default().push(pending);
    }
    let key = key::current();
    'attempt: for _ in 0..MAX_ATTEMPTS {
        let txn = db.write().begin().await?;
        for (&municipality_id, pendings) in &chains {
            if chain::append_many(&txn, municipality_id, pendings.clone(), &key.current).await?.is_none() {
                txn.rollback().await?;
                continue 'attempt;
            }
        }
        return txn.commit().await;
    }
    Err(DbErr::Custom(format!("audit: gave up writing a batch of entries after {MAX_ATTEMPTS} attempts")))
}
