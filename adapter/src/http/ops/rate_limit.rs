//! A token bucket per ops API caller, in this process's memory: with several adapter instances
//! behind a load balancer, each applies the limit on its own.
//!
//! A bucket holds up to `burst` requests and refills at `requests_per_minute`; an API key's own
//! `rate_limit_per_minute` replaces the rate (and caps the burst at that rate). Only
//! authenticated callers get a bucket, so the map is bounded by the number of keys, tokens and
//! certificate subjects.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::Principal;
use crate::config::RateLimitSettings;
use tmp_edge::error::ApiError;

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimiter {
    settings: RateLimitSettings,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(settings: RateLimitSettings) -> RateLimiter {
        RateLimiter { settings, buckets: Mutex::new(HashMap::new()) }
    }

    /// Takes one request from the caller's bucket, or 429 with the seconds until one is back.
    pub fn check(&self, principal: &Principal) -> Result<(), ApiError> {
        let per_minute = principal.rate_limit_per_minute.unwrap_or(self.settings.requests_per_minute).max(1);
        let burst = match principal.rate_limit_per_minute {
            Some(own) => self.settings.burst.min(own).max(1),
            None => self.settings.burst.max(1),
        };
        self.take(&principal.id, f64::from(per_minute) / 60.0, f64::from(burst), Instant::now())
    }

    fn take(&self, key: &str, per_second: f64, burst: f64, now: Instant) -> Result<(), ApiError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket { tokens: burst, at: now });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - bucket.tokens) / per_second;
        tracing::info!(caller = %key, "ops API: rate limit reached");
        Err(ApiError::RateLimited { retry_after_secs: (wait.ceil() as u64).max(1) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = RateLimiter::new(RateLimitSettings { requests_per_minute: 60, burst: 3 });
        let start = Instant::now();
        for _ in 0..3 {
            limiter.take("k", 1.0, 3.0, start).expect("within the burst");
        }
        match limiter.take("k", 1.0, 3.0, start) {
            Err(ApiError::RateLimited { retry_after_secs }) => assert_eq!(retry_after_secs, 1),
            other => panic!("{other:?}"),
        }
        limiter.take("other", 1.0, 3.0, start).expect("buckets are per caller");
        limiter.take("k", 1.0, 3.0, start + Duration::from_millis(1100)).expect("refilled");
        assert!(limiter.take("k", 1.0, 3.0, start + Duration::from_millis(1200)).is_err());
    }
}
