//! Header names of contract v1.

/// Identifies one operation across retries: same key + same body → the stored response.
pub const IDEMPOTENCY_KEY: &str = "X-Idempotency-Key";
/// Propagated end to end and into logs; generated when absent.
pub const CORRELATION_ID: &str = "X-Correlation-Id";
/// Standard-Webhooks message id: unique per request (a retry carries a new one).
pub const WEBHOOK_ID: &str = "webhook-id";
/// Standard-Webhooks timestamp (unix seconds).
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
/// Standard-Webhooks signatures: space-separated `v1,<base64>` entries.
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";
/// Set on a response replayed from the idempotency store.
pub const IDEMPOTENT_REPLAYED: &str = "Idempotent-Replayed";

/// Longest accepted idempotency key.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// Longest accepted correlation id; longer ones are replaced by a fresh id.
pub const MAX_CORRELATION_ID_LEN: usize = 128;
