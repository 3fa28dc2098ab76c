//! Group commit: many requests' writes made durable by one flush.
//!
//! Every write of the store commits *without* waiting for the disk (SQLite: the writer
//! connection runs `synchronous=NORMAL`, so a commit appends its frames to the WAL and returns;
//! PostgreSQL: the sessions run `synchronous_commit=off`, so a commit returns once its record is
//! in the WAL buffers). An answer that rests on a write then waits for a **flush** that started
//! after the write's commit returned (as a rule the write's own method waits for it; a
//! verification's earlier writes are covered by the flush of its decision record):
//!
//! - SQLite: an `fsync` of the WAL file. The WAL is written in order, so one fsync makes every
//!   frame appended before it durable, whoever appended it; writers keep appending while it runs.
//! - PostgreSQL: a tiny transaction that writes WAL and commits with `synchronous_commit=on`
//!   ([`POSTGRES_FLUSH`]). Its commit flushes the WAL up to its own commit record, which lies
//!   after every commit that returned before it began — from this process or any other.
//!
//! One flusher task runs the flushes, one at a time. When it finds commits waiting it flushes at
//! once, so at low load a request waits for exactly one flush, as with a synchronous commit; under
//! load the commits that return while a flush runs are all covered by the next one. With
//! `max_wait` set, the flusher first waits up to that long for `max_batch` commits to gather, but
//! only while other durable writes are still in flight (PostgreSQL's `commit_delay` with
//! `commit_siblings`): a lone request never waits for company.
//!
//! A failed flush fails the requests it was to cover (their writes are committed but not known
//! durable, so they are not acknowledged; a retry under the same idempotency key finds them). On
//! SQLite it also **poisons** the store: after a failed `fsync` Linux may have dropped the dirty
//! pages and a later fsync can succeed without them, so no later write can be acknowledged as
//! durable; `/readyz` fails until the adapter is restarted and SQLite recovers from the file.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::sync::{Notify, watch};

use super::{StoreError, StoreResult};

/// How the flusher batches (`database.group_commit` in the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitSettings {
    /// Longest the flusher waits for more commits before flushing, and only while other
    /// durable writes are in flight. Zero: flush as soon as the previous flush ends.
    pub max_wait: Duration,
    /// Flush without waiting further once this many commits are waiting.
    pub max_batch: u32,
}

impl Default for GroupCommitSettings {
    fn default() -> Self {
        GroupCommitSettings { max_wait: Duration::ZERO, max_batch: 64 }
    }
}

/// The group commit's counters since the store opened (exported as metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupCommitStats {
    /// Flushes that succeeded.
    pub flushes: u64,
    /// Durable commits those flushes covered: `commits / flushes` is the mean batch. A stored
    /// answer's wait ([`GroupCommit::settle`]) counts as one (rare: replays only).
    pub commits: u64,
    /// Flushes that failed.
    pub failures: u64,
    /// A WAL fsync failed: no durable write can be acknowledged until a restart.
    pub poisoned: bool,
}

/// The PostgreSQL flush, one statement on a session with `synchronous_commit=on`: a transaction
/// that writes WAL. PostgreSQL waits for the disk at commit only when the transaction has an id
/// *and* wrote WAL before its commit record (`RecordTransactionCommit`); otherwise it commits
/// asynchronously, however `synchronous_commit` is set. A transactional logical message does
/// both — it takes an id and writes one small WAL record — so its commit writes a commit record
/// after every commit that returned before it began, from any replica, and waits until the WAL
/// is flushed up to it (and, with `synchronous_standby_names`, for the standbys). Any role may
/// call it; a logical-decoding consumer sees it under the prefix `tmp-adapter-flush`, which it
/// ignores. (The earlier flushes — `SELECT pg_current_xact_id()`, alone or in `BEGIN; SET LOCAL
/// synchronous_commit = on; …; COMMIT` — took an id but wrote no WAL, and so never waited for
/// the disk: measured with `pg_stat_wal.wal_sync`, 200 of them made 1 sync, 200 of these make
/// 200; the test `a_postgres_flush_covers_earlier_asynchronous_commits` fails with them.)
const POSTGRES_FLUSH: &str = "SELECT pg_logical_emit_message(true, 'tmp-adapter-flush', '')";

/// What a flush does, per engine.
#[derive(Debug)]
pub(super) enum Flush {
    /// `fsync` of this WAL file.
    SqliteWal(PathBuf),
    /// An in-memory SQLite database: nothing is durable, nothing to flush.
    Nothing,
    /// A synchronous commit on a connection of its own.
    Postgres { url: String, conn: Option<PgConnection> },
}

impl Flush {
    async fn run(&mut self) -> Result<(), FlushError> {
        match self {
            Flush::Nothing => Ok(()),
            Flush::SqliteWal(path) => {
                let path = path.clone();
                tokio::task::spawn_blocking(move || sync_file(&path))
                    .await
                    .map_err(|e| FlushError::Fatal(std::io::Error::other(e)))?
            }
            Flush::Postgres { url, conn } => {
                let result = async {
                    if conn.is_none() {
                        // The flusher's session commits synchronously (whatever the server's
                        // default), unlike the pool's.
                        let options = PgConnectOptions::from_str(url)?.options([("synchronous_commit", "on")]);
                        *conn = Some(PgConnection::connect_with(&options).await?);
                    }
                    let c = conn.as_mut().expect("connected above");
                    sqlx::raw_sql(POSTGRES_FLUSH).execute(&mut *c).await?;
                    Ok::<_, sqlx::Error>(())
                }
                .await;
                result.map_err(|e| {
                    // A broken session is replaced on the next flush.
                    *conn = None;
                    FlushError::Retryable(e)
                })
            }
        }
    }
}

fn sync_file(path: &std::path::Path) -> Result<(), FlushError> {
    match std::fs::OpenOptions::new().write(true).open(path) {
        // fsync flushes the file (the inode), whichever descriptor wrote its pages.
        Ok(file) => file.sync_data().map_err(FlushError::Fatal),
        // No WAL file: the last connection checkpointed and removed it, so every commit is in
        // the database file, which SQLite synced when it checkpointed.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(FlushError::Fatal(e)),
    }
}

#[derive(Debug)]
enum FlushError {
    /// The flush may succeed later, and a later success covers every earlier commit.
    Retryable(sqlx::Error),
    /// Durability is lost for this process (see the module docs).
    Fatal(std::io::Error),
}

/// The flusher's published progress.
#[derive(Debug, Clone, Copy, Default)]
struct Progress {
    /// Every commit numbered up to this is durable.
    durable: u64,
    /// The last flush that failed was to cover commits up to this.
    failed_through: u64,
    /// A fatal flush failure: nothing more can be acknowledged.
    poisoned: bool,
}

/// The store's group commit: numbers commits, runs the flusher, lets writers wait.
#[derive(Debug)]
pub(super) struct GroupCommit {
    /// Commits of durable writes so far (a commit's number is the value after its increment).
    committed: AtomicU64,
    /// Durable writes begun and not yet committed or abandoned.
    in_flight: AtomicUsize,
    /// Wakes the flusher.
    work: Notify,
    progress: watch::Sender<Progress>,
    settings: GroupCommitSettings,
    flushes: AtomicU64,
    failures: AtomicU64,
}

impl GroupCommit {
    /// Starts the flusher task (on the current tokio runtime); it ends when the store is dropped.
    pub(super) fn start(flush: Flush, settings: GroupCommitSettings) -> Arc<GroupCommit> {
        let group = Arc::new(GroupCommit {
            committed: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            work: Notify::new(),
            progress: watch::Sender::new(Progress::default()),
            settings,
            flushes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        });
        tokio::spawn(flusher(Arc::downgrade(&group), flush));
        group
    }

    /// A durable write begins: the flusher's `max_wait` waits for it.
    pub(super) fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// Records that a durable write (begun with [`GroupCommit::begin`]) has committed and waits
    /// until a flush covers it.
    pub(super) async fn committed(&self, in_flight: InFlight) -> StoreResult<()> {
        let number = self.committed.fetch_add(1, Ordering::AcqRel) + 1;
        drop(in_flight);
        self.wait_for(number).await
    }

    /// Waits for a flush that begins after this call: before answering from rows another
    /// request wrote (a stored idempotent answer), which may not be durable yet. Such a flush
    /// covers every commit the caller could read — made by this process or another replica,
    /// durable or relaxed — which the commits this process has counted so far would not: the
    /// writer may not have counted its commit yet, another replica's is never counted here, and
    /// a verification's relaxed writes are not counted at all. It counts as a commit (of
    /// nothing) in the statistics.
    pub(super) async fn settle(self: &Arc<Self>) -> StoreResult<()> {
        self.committed(self.begin()).await
    }

    /// Whether durability is lost (a failed SQLite fsync): `/readyz` fails.
    pub(super) fn poisoned(&self) -> bool {
        self.progress.borrow().poisoned
    }

    pub(super) fn stats(&self) -> GroupCommitStats {
        let progress = *self.progress.borrow();
        GroupCommitStats {
            flushes: self.flushes.load(Ordering::Acquire),
            commits: progress.durable,
            failures: self.failures.load(Ordering::Acquire),
            poisoned: progress.poisoned,
        }
    }

    async fn wait_for(&self, number: u64) -> StoreResult<()> {
        let mut progress = self.progress.subscribe();
        loop {
            {
                let p = progress.borrow_and_update();
                if p.poisoned {
                    return Err(StoreError::NotDurable("a WAL fsync failed earlier; restart the adapter"));
                }
                if p.durable >= number {
                    return Ok(());
                }
                if p.failed_through >= number {
                    return Err(StoreError::NotDurable("the flush that was to make this write durable failed"));
                }
            }
            self.work.notify_one();
            if progress.changed().await.is_err() {
                return Err(StoreError::NotDurable("the store is shutting down"));
            }
        }
    }
}

/// A durable write in flight; dropping it (the write abandoned or committed) ends it.
#[derive(Debug)]
pub(super) struct InFlight(Arc<GroupCommit>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.work.notify_one();
    }
}

async fn flusher(group: std::sync::Weak<GroupCommit>, mut flush: Flush) {
    loop {
        // Holds the store's group commit for at most one idle second after the store is gone.
        let Some(g) = group.upgrade() else { return };
        let Progress { durable, poisoned, .. } = *g.progress.borrow();
        if poisoned || g.committed.load(Ordering::Acquire) <= durable {
            let _ = tokio::time::timeout(Duration::from_secs(1), g.work.notified()).await;
            continue;
        }
        gather(&g, durable).await;
        let target = g.committed.load(Ordering::Acquire);
        let outcome = flush.run().await;
        let counter = if outcome.is_ok() { &g.flushes } else { &g.failures };
        counter.fetch_add(1, Ordering::AcqRel);
        g.progress.send_modify(|p| match outcome {
            Ok(()) => p.durable = p.durable.max(target),
            Err(FlushError::Retryable(ref e)) => {
                tracing::warn!(error = %e, "group commit: flush failed; the writes it covered are not acknowledged");
                p.failed_through = p.failed_through.max(target);
            }
            Err(FlushError::Fatal(ref e)) => {
                tracing::error!(error = %e, "group commit: WAL fsync failed; no further write can be acknowledged until restart");
                p.failed_through = p.failed_through.max(target);
                p.poisoned = true;
            }
        });
    }
}

/// With `max_wait` set and other durable writes in flight, waits (up to `max_wait`) for
/// `max_batch` commits to be waiting or for the in-flight writes to finish.
async fn gather(group: &GroupCommit, durable: u64) {
    let settings = group.settings;
    if settings.max_wait.is_zero() {
        return;
    }
    let deadline = tokio::time::Instant::now() + settings.max_wait;
    loop {
        let waiting = group.committed.load(Ordering::Acquire).saturating_sub(durable);
        if waiting >= u64::from(settings.max_batch) || group.in_flight.load(Ordering::Acquire) == 0 {
            return;
        }
        let notified = group.work.notified();
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_wait: Duration, max_batch: u32) -> GroupCommitSettings {
        GroupCommitSettings { max_wait, max_batch }
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_write_never_waits_for_company() {
        // An hour of max_wait, but nothing else in flight: the flush starts at once. With the
        // clock paused, any wait would show as virtual time passing.
        let group = GroupCommit::start(Flush::Nothing, settings(Duration::from_secs(3600), 64));
        let started = tokio::time::Instant::now();
        group.committed(group.begin()).await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO);
        assert_eq!(group.stats(), GroupCommitStats { flushes: 1, commits: 1, failures: 0, poisoned: false });
    }

    #[tokio::test(start_paused = true)]
    async fn writes_in_flight_together_share_one_flush() {
        let group = GroupCommit::start(Flush::Nothing, settings(Duration::from_secs(3600), 50));
        // Fifty writes begin before any commits: the flush waits until all fifty wait for it.
        let writes: Vec<InFlight> = (0..50).map(|_| group.begin()).collect();
        let mut tasks = tokio::task::JoinSet::new();
        for write in writes {
            let group = group.clone();
            tasks.spawn(async move { group.committed(write).await });
        }
        while let Some(result) = tasks.join_next().await {
            result.unwrap().unwrap();
        }
        assert_eq!(group.stats(), GroupCommitStats { flushes: 1, commits: 50, failures: 0, poisoned: false });
        // The longest wait bounds a batch that does not fill: one write committed, one still in
        // flight, and the flush goes after max_wait.
        let other = group.begin();
        let started = tokio::time::Instant::now();
        group.committed(group.begin()).await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_secs(3600));
        drop(other);
        assert_eq!(group.stats().flushes, 2);
    }

    #[tokio::test]
    async fn a_real_wal_fsync_covers_the_writes() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("db-wal");
        std::fs::write(&wal, b"frames").unwrap();
        let group = GroupCommit::start(Flush::SqliteWal(wal), GroupCommitSettings::default());
        group.committed(group.begin()).await.unwrap();
        group.settle().await.unwrap();
        // A missing WAL (checkpointed and removed) has nothing to flush.
        let gone = GroupCommit::start(Flush::SqliteWal(dir.path().join("none-wal")), GroupCommitSettings::default());
        gone.committed(gone.begin()).await.unwrap();
        assert_eq!(gone.stats().flushes, 1);
    }

    #[tokio::test]
    async fn a_failed_fsync_poisons_the_store() {
        // A directory cannot be opened for writing: the flush fails as a failing fsync would.
        let dir = tempfile::tempdir().unwrap();
        let group = GroupCommit::start(Flush::SqliteWal(dir.path().to_path_buf()), GroupCommitSettings::default());
        assert!(matches!(group.committed(group.begin()).await, Err(StoreError::NotDurable(_))));
        assert!(group.poisoned());
        // Every later durable write fails at once, and settles fail too.
        assert!(matches!(group.committed(group.begin()).await, Err(StoreError::NotDurable(_))));
        assert!(matches!(group.settle().await, Err(StoreError::NotDurable(_))));
        let stats = group.stats();
        assert_eq!((stats.flushes, stats.failures, stats.poisoned), (0, 1, true));
    }

    #[tokio::test]
    async fn a_postgres_flush_covers_earlier_asynchronous_commits() {
        // Against the real server of the store tests (TEST_DATABASE_URL). A session with
        // `synchronous_commit=off`, as the store's, commits a transaction that wrote WAL: its
        // commit returns before the disk. The WAL insert position read after it lies past that
        // commit; the flush begun after that must leave the WAL flushed at least that far.
        // Twenty times: the server's WAL writer flushing by chance in between cannot make a
        // flush that does not wait pass every round.
        let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
            assert!(std::env::var_os("CI").is_none(), "TEST_DATABASE_URL must be set in CI");
            eprintln!("notice: TEST_DATABASE_URL is not set: skipping the PostgreSQL flush test");
            return;
        };
        let options = PgConnectOptions::from_str(&url).unwrap().options([("synchronous_commit", "off")]);
        let mut writer = PgConnection::connect_with(&options).await.unwrap();
        let mut flush = Flush::Postgres { url: url.clone(), conn: None };
        let mut reader = PgConnection::connect(&url).await.unwrap();
        for round in 0..20 {
            sqlx::raw_sql("SELECT pg_logical_emit_message(true, 'tmp-adapter-test', 'write')")
                .execute(&mut writer)
                .await
                .unwrap();
            let (written,): (String,) =
                sqlx::query_as("SELECT pg_current_wal_insert_lsn()::text").fetch_one(&mut writer).await.unwrap();
            flush.run().await.map_err(|e| format!("{e:?}")).unwrap();
            let (covered,): (bool,) = sqlx::query_as("SELECT pg_current_wal_flush_lsn() >= CAST($1 AS pg_lsn)")
                .bind(&written)
                .fetch_one(&mut reader)
                .await
                .unwrap();
            assert!(covered, "round {round}: the WAL was not flushed up to {written} when the flush returned");
        }
    }

    #[tokio::test]
    async fn a_failed_postgres_flush_fails_its_batch_only() {
        // Nothing listens on port 1: the flush cannot connect. Retryable, not poisoning.
        let flush = Flush::Postgres { url: "postgres://postgres@127.0.0.1:1/none".into(), conn: None };
        let group = GroupCommit::start(flush, GroupCommitSettings::default());
        assert!(matches!(group.committed(group.begin()).await, Err(StoreError::NotDurable(_))));
        assert!(!group.poisoned());
        assert_eq!(group.stats().failures, 1);
    }
}
