//! Log lines any peer can cause at will — a rejected request, a body that never arrives, a
//! readiness probe while the database is down, a 5xx during an outage — are written at most
//! [`LINES_PER_SECOND`] a second per kind. A peer (or an outage under load) can otherwise fill
//! the disk and bury the lines that matter; what is left out is counted, and the next line
//! written says how many (`suppressed`). The metrics count every request regardless.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Lines of one kind written per second, at most.
pub const LINES_PER_SECOND: u32 = 20;

/// The budget of one kind of line (a `static`).
pub struct LogBudget {
    /// The second (Unix time) the count is for.
    window: AtomicU64,
    used: AtomicU32,
    suppressed: AtomicU64,
}

impl LogBudget {
    pub const fn new() -> LogBudget {
        LogBudget { window: AtomicU64::new(0), used: AtomicU32::new(0), suppressed: AtomicU64::new(0) }
    }

    /// `Some(n)` when a line may be written now, `n` being how many were left out since the last
    /// one written; `None` when this one is to be left out (and is counted).
    pub fn admit(&self) -> Option<u64> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.admit_at(now)
    }

    fn admit_at(&self, second: u64) -> Option<u64> {
        let window = self.window.load(Ordering::Relaxed);
        if window != second
            && self.window.compare_exchange(window, second, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            self.used.store(0, Ordering::Relaxed);
        }
        if self.used.fetch_add(1, Ordering::Relaxed) < LINES_PER_SECOND {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

impl Default for LogBudget {
    fn default() -> LogBudget {
        LogBudget::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_writes_its_budget_a_second_and_the_next_line_counts_what_was_left_out() {
        let budget = LogBudget::new();
        for _ in 0..LINES_PER_SECOND {
            assert_eq!(budget.admit_at(100), Some(0));
        }
        for _ in 0..7 {
            assert_eq!(budget.admit_at(100), None);
        }
        assert_eq!(budget.admit_at(101), Some(7), "the next second: written, naming the 7 left out");
        assert_eq!(budget.admit_at(101), Some(0));
    }
}
