//! Where the machine's CPU time went during a run, from `/proc` (Linux): the adapter
//! processes, PostgreSQL's processes, this process (generator and receiver), and what stayed
//! idle — the figures that say what limits a run when everything shares one machine.

use std::collections::HashMap;

/// CPU time counters at one moment, in the kernel's clock ticks.
pub struct CpuSample {
    /// Every CPU's ticks, busy and idle.
    total: u64,
    idle: u64,
    /// CPUs online (`cpuN` lines of `/proc/stat`): the machine's capacity, whatever this
    /// process's own affinity.
    cpus: usize,
    adapters: u64,
    /// Per process of the PostgreSQL server: its backends come and go, so they are matched by
    /// pid (one that ends within the interval is missed — the pools keep theirs).
    postgres: HashMap<u32, u64>,
    this: u64,
}

/// Shares of the machine's CPU capacity over an interval (each 0..=1).
#[derive(Debug, Clone, Copy)]
pub struct CpuUse {
    pub adapters: f64,
    pub postgres: f64,
    pub this: f64,
    pub idle: f64,
    /// CPU-seconds the whole machine had in the interval (CPUs × wall time).
    pub capacity_secs: f64,
}

impl CpuSample {
    /// The counters now; `adapters` are the adapter processes' pids, `postmaster` the
    /// PostgreSQL server's main process (its children are its backends and helpers).
    pub fn take(adapters: &[String], postmaster: Option<u32>) -> anyhow::Result<CpuSample> {
        let stat = std::fs::read_to_string("/proc/stat")?;
        let cpu = stat.lines().next().unwrap_or_default();
        // user nice system idle iowait irq softirq steal (guest time is inside user and nice).
        let ticks: Vec<u64> = cpu.split_whitespace().skip(1).take(8).filter_map(|t| t.parse().ok()).collect();
        anyhow::ensure!(ticks.len() >= 5, "/proc/stat has no cpu line");
        let cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        let mut postgres = HashMap::new();
        if let Some(postmaster) = postmaster {
            for entry in std::fs::read_dir("/proc")?.flatten() {
                let Some(pid) = entry.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
                if (pid == postmaster || parent(pid) == Some(postmaster))
                    && let Some(ticks) = process_ticks(&pid.to_string())
                {
                    postgres.insert(pid, ticks);
                }
            }
        }
        Ok(CpuSample {
            total: ticks.iter().sum(),
            // idle + iowait
            idle: ticks[3] + ticks[4],
            cpus: cpus.max(1),
            adapters: adapters.iter().filter_map(|pid| process_ticks(pid)).sum(),
            postgres,
            this: process_ticks("self").unwrap_or(0),
        })
    }

    /// What went where between `before` and this sample, as shares of the machine.
    pub fn since(&self, before: &CpuSample, wall_secs: f64) -> CpuUse {
        let total = self.total.saturating_sub(before.total).max(1) as f64;
        let postgres: u64 = self
            .postgres
            .iter()
            .map(|(pid, ticks)| ticks.saturating_sub(before.postgres.get(pid).copied().unwrap_or(0)))
            .sum();
        CpuUse {
            adapters: self.adapters.saturating_sub(before.adapters) as f64 / total,
            postgres: postgres as f64 / total,
            this: self.this.saturating_sub(before.this) as f64 / total,
            idle: self.idle.saturating_sub(before.idle) as f64 / total,
            capacity_secs: self.cpus as f64 * wall_secs,
        }
    }
}

/// CPU time counters of this process's threads at one moment, by thread (`/proc/self/task`).
/// Everything `load` runs shares this process — the adapter, mock-tmp, the sink and the
/// generator — so its threads are what can be told apart: the HTTP servers' workers, the tokio
/// runtime's workers and blocking pool (the generator, the relay, RSA decrypts, fsyncs), SQLite's
/// connection threads, the HTTP clients' threads.
pub struct ThreadSample {
    /// The machine's ticks, busy and idle (the unit the threads' ticks are shares of).
    total: u64,
    cpus: usize,
    /// Per thread id: its name and its user + system ticks.
    threads: HashMap<u32, (String, u64)>,
}

impl ThreadSample {
    pub fn take() -> anyhow::Result<ThreadSample> {
        let machine = CpuSample::take(&[], None)?;
        let mut threads = HashMap::new();
        for entry in std::fs::read_dir("/proc/self/task")?.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse::<u32>().ok()) else { continue };
            let task = format!("self/task/{tid}");
            let name = std::fs::read_to_string(format!("/proc/{task}/comm")).unwrap_or_default().trim().to_owned();
            if let Some(ticks) = process_ticks(&task) {
                threads.insert(tid, (name, ticks));
            }
        }
        Ok(ThreadSample { total: machine.total, cpus: machine.cpus, threads })
    }

    /// CPU-seconds per thread name between `before` and this sample, most first. A thread
    /// started in the interval counts from zero; one that ended in it is missed.
    pub fn since(&self, before: &ThreadSample, wall_secs: f64) -> Vec<(String, f64)> {
        let total = self.total.saturating_sub(before.total).max(1) as f64;
        let capacity = self.cpus as f64 * wall_secs;
        let mut by_name: HashMap<&str, u64> = HashMap::new();
        for (tid, (name, ticks)) in &self.threads {
            let earlier = before.threads.get(tid).map_or(0, |(_, t)| *t);
            *by_name.entry(name.as_str()).or_default() += ticks.saturating_sub(earlier);
        }
        let mut spent: Vec<(String, f64)> =
            by_name.into_iter().map(|(name, ticks)| (name.to_owned(), ticks as f64 / total * capacity)).collect();
        spent.sort_by(|a, b| b.1.total_cmp(&a.1));
        spent
    }
}

/// The PostgreSQL server's main process, on this machine: the parent of the backend serving
/// `database_url`. `None` when it is elsewhere (a remote server, another pid namespace): its
/// CPU is then not seen from here.
pub async fn postmaster_of(database_url: &str) -> Option<u32> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(database_url).await.ok()?;
    let backend: i32 = sqlx::query_scalar("SELECT pg_backend_pid()").fetch_one(&mut conn).await.ok()?;
    let postmaster = parent(u32::try_from(backend).ok()?);
    let _ = conn.close().await;
    postmaster
}

/// The parent of `pid` (`PPid` of `/proc/<pid>/status`).
fn parent(pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("PPid:"))?.trim().parse().ok()
}

/// User + system ticks of `/proc/<pid>` (`self` for this process); `None` once it has ended.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields follow its last `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

#[cfg(test)]
mod tests {
    use super::CpuSample;

    #[test]
    fn this_process_is_seen_spending_cpu() {
        let before = CpuSample::take(&[], None).expect("/proc is readable");
        let started = std::time::Instant::now();
        let mut x = 0u64;
        while started.elapsed() < std::time::Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
        }
        let used = CpuSample::take(&[], None).expect("/proc is readable").since(&before, 0.3);
        assert!(used.this > 0.0, "a busy loop shows as this process's CPU: {used:?}");
        assert!(used.this <= 1.0 && used.idle <= 1.0);
    }

    #[test]
    fn a_busy_thread_is_seen_under_its_name() {
        let before = super::ThreadSample::take().expect("/proc/self/task is readable");
        let started = std::time::Instant::now();
        std::thread::Builder::new()
            .name("cpu-test-busy".into())
            .spawn(|| {
                let started = std::time::Instant::now();
                let mut x = 0u64;
                while started.elapsed() < std::time::Duration::from_millis(300) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
                }
                // Still alive when the second sample is taken: an ended thread is not seen.
                std::thread::park_timeout(std::time::Duration::from_secs(5));
            })
            .expect("a thread");
        std::thread::sleep(std::time::Duration::from_millis(400));
        let spent = super::ThreadSample::take().expect("readable").since(&before, started.elapsed().as_secs_f64());
        let busy = spent.iter().find(|(name, _)| name == "cpu-test-busy").map(|(_, s)| *s);
        assert!(busy.is_some_and(|s| s > 0.1), "the busy thread's 0.3 s show under its name: {spent:?}");
    }
}
