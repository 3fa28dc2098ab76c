//! The embedded store: one SQLite file in WAL mode, `synchronous=FULL` so that an
//! acknowledged write survives a power cut.
//!
//! Write transactions start with `BEGIN IMMEDIATE`: they take the write lock up front instead of
//! upgrading a read lock later, which two concurrent writers could not both do.
//!
//! SQLite has one writer at a time. Every write of this store first takes the store's
//! **write gate**, an async FIFO mutex, and only then SQLite's lock: writers queue in the
//! runtime, in arrival order, instead of polling in SQLite's busy handler, which sleeps in steps
//! of up to 100 ms and holds a pooled connection while it sleeps (under load that emptied the
//! pool and multiplied latency). The busy timeout stays as the fallback for writers outside
//! this process (the `tmp-adapter` CLI). Readers never wait for the gate (WAL).
//!
//! Every write runs on one **writer** connection with `synchronous=NORMAL`: a commit appends its
//! frames to the WAL and returns without an fsync. Durable writes then wait for the group
//! commit's flush, an fsync of the WAL file (`group_commit.rs`): the WAL is written in order, so
//! one fsync covers every commit before it. Readers use the pool (WAL: they never wait for the
//! writer). Checkpoints stay SQLite's: with `synchronous=NORMAL` it syncs the WAL before and the
//! database file after each one, so a checkpointed commit is as durable as a flushed one.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::group_commit::Flush;
use super::rows::outbox_entry_columns;
use super::{StoreError, StoreResult};

/// How long a statement waits for another connection's write lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite engine of [`super::SqlStore`].
#[derive(Debug, Clone)]
pub(super) struct SqliteEngine {
    /// The readers (and migrations).
    pub(super) pool: SqlitePool,
    /// The one `synchronous=NORMAL` connection every write runs on (see the module's notes).
    pub(super) writer: SqlitePool,
    /// Held for the whole of every write (see the module's notes).
    write_gate: Arc<Mutex<()>>,
    /// The database file's directory; `None` in memory.
    directory: Option<PathBuf>,
}

/// The first step of a claim (see `claim_window`): heads of their card among the destination's
/// oldest pending rows. Parameters: $1 owner, $2 lease until, $3 now, $4 limit, $5 destination, $6 the
/// window's last offset. Each row claimed also says whether pending rows lie past the window
/// (`past_window`: see `claim_outbox`).
///
/// The limit is `$4 + 0`, not `$4`: SQLite plans a `LIMIT` that is a bare parameter with the
/// value bound to it, and so marks the statement to be compiled again whenever a value is bound
/// (`sqlite3ExprIsInteger` → `sqlite3VdbeSetVarmask`): every claim parsed and planned its SQL
/// anew, ≈ 0.7 M instructions each time (callgrind). An expression keeps the
/// prepared statement; the plan is the same (`EXPLAIN QUERY PLAN`). The test
/// `no_claim_limit_is_a_bare_parameter` keeps it so.
pub(super) const CLAIM_OLDEST: &str = concat!(
    "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE seq IN ( \
       SELECT o.seq FROM outbox o \
       WHERE o.status = 'pending' AND o.destination = $5 AND o.next_attempt_at <= $3 AND o.held_at IS NULL \
         AND (o.lease_until IS NULL OR o.lease_until < $3) \
         AND o.seq <= COALESCE((SELECT w.seq FROM outbox w \
                                WHERE w.status = 'pending' AND w.destination = $5 \
                                ORDER BY w.seq LIMIT 1 OFFSET $6), 9223372036854775807) \
         AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.status = 'pending' \
                         AND p.destination = o.destination \
                         AND p.ordering_key = o.ordering_key AND p.seq < o.seq) \
       ORDER BY o.seq LIMIT $4 + 0) \
     RETURNING ",
    outbox_entry_columns!(),
    ", (SELECT w.seq FROM outbox w WHERE w.status = 'pending' AND w.destination = $5 \
        ORDER BY w.seq LIMIT 1 OFFSET $6 + 1) IS NOT NULL AS past_window"
);

/// The second step of a claim: the head of every card with pending rows (parameters as the
/// first's but the window).
pub(super) const CLAIM_HEADS: &str = concat!(
    "UPDATE outbox SET lease_owner = $1, lease_until = $2 WHERE seq IN ( \
       WITH RECURSIVE keys(k) AS ( \
         SELECT MIN(ordering_key) FROM outbox WHERE status = 'pending' AND destination = $5 \
         UNION ALL \
         SELECT (SELECT MIN(ordering_key) FROM outbox \
                 WHERE status = 'pending' AND destination = $5 AND ordering_key > keys.k) \
         FROM keys WHERE keys.k IS NOT NULL) \
       SELECT o.seq FROM keys JOIN outbox o ON o.seq = ( \
         SELECT MIN(h.seq) FROM outbox h \
         WHERE h.status = 'pending' AND h.destination = $5 AND h.ordering_key = keys.k) \
       WHERE o.next_attempt_at <= $3 AND o.held_at IS NULL AND (o.lease_until IS NULL OR o.lease_until < $3) \
       ORDER BY o.seq LIMIT $4 + 0) \
     RETURNING ",
    outbox_entry_columns!(),
    ", FALSE AS past_window"
);

/// Creates the database file (and its directory) readable by its owner alone when they do not
/// exist yet: the file holds cardholder contacts and expiry dates. SQLite gives the `-wal` and
/// `-shm` files the database file's permissions. An existing file is left as the operator made
/// it, with a warning when others may read it.
fn create_private(file: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = file.parent().filter(|dir| !dir.as_os_str().is_empty() && !dir.exists()) {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        builder.mode(0o700);
        builder.create(dir)?;
    }
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create_new(true);
    #[cfg(unix)]
    open.mode(0o600);
    match open.open(file) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            #[cfg(unix)]
            if std::fs::metadata(file)?.permissions().mode() & 0o077 != 0 {
                tracing::warn!(
                    file = %file.display(),
                    "the database file can be read by other users; it holds cardholder contacts (chmod 600 it)"
                );
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl SqliteEngine {
    /// Opens (creating the file and its directory if missing) the database named by `url`,
    /// e.g. `sqlite:///var/lib/tmp-adapter/adapter.db` or `sqlite://data/adapter.db`, and the
    /// group commit's flush for it.
    pub(super) async fn connect(url: &str, max_connections: u32) -> StoreResult<(Self, Flush)> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            create_private(options.get_filename()).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let pool =
            SqlitePoolOptions::new().max_connections(max_connections.max(1)).connect_with(options.clone()).await?;
        // An in-memory database exists once per connection: writes must use the readers' pool,
        // and there is nothing to flush.
        let (writer, flush, directory) = if in_memory {
            (pool.clone(), Flush::Nothing, None)
        } else {
            let file = options.get_filename();
            let directory = match file.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            };
            let flush = Flush::SqliteWal(wal_path(file));
            let options = options.synchronous(SqliteSynchronous::Normal);
            (SqlitePoolOptions::new().max_connections(1).connect_with(options).await?, flush, Some(directory))
        };
        Ok((SqliteEngine { pool, writer, write_gate: Arc::new(Mutex::new(())), directory }, flush))
    }

    /// Waits for the write gate: hold the guard for the whole of a write.
    pub(super) async fn gate(&self) -> OwnedMutexGuard<()> {
        self.write_gate.clone().lock_owned().await
    }

    pub(super) async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("migrations/sqlite").run(&self.pool).await?;
        // The migrations have written, so the WAL file exists: make its directory entry durable
        // too, or a power cut could lose the file that every flush syncs.
        if let Some(dir) = self.directory.clone() {
            tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
                .await
                .map_err(|e| StoreError::Database(sqlx::Error::Io(std::io::Error::other(e))))?
                .map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        Ok(())
    }
}

/// SQLite's name for a database file's write-ahead log.
fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

#[cfg(test)]
mod tests {
    use super::{CLAIM_HEADS, CLAIM_OLDEST};

    /// Whether `sql` has a `LIMIT` that is a parameter alone (see [`CLAIM_OLDEST`]: SQLite then
    /// compiles the statement again on every run).
    fn has_bare_parameter_limit(sql: &str) -> bool {
        sql.split("LIMIT ").skip(1).any(|rest| {
            let Some(after_dollar) = rest.strip_prefix('$') else { return false };
            let after_number = after_dollar.trim_start_matches(|c: char| c.is_ascii_digit());
            !after_number.trim_start().starts_with('+')
        })
    }

    #[test]
    fn no_claim_limit_is_a_bare_parameter() {
        assert!(has_bare_parameter_limit("SELECT 1 FROM t ORDER BY a LIMIT $4) RETURNING"));
        assert!(!has_bare_parameter_limit("SELECT 1 FROM t ORDER BY a LIMIT $4 + 0) RETURNING"));
        assert!(!has_bare_parameter_limit("SELECT 1 FROM t ORDER BY a LIMIT 1 OFFSET $6"));
        for sql in [CLAIM_OLDEST, CLAIM_HEADS] {
            assert!(!has_bare_parameter_limit(sql), "a claim's LIMIT is a bare parameter: {sql}");
        }
    }
}
