//! How the rest of the adapter tells the relay that rows are due now — committed by a request,
//! or put back by an operator — so that it claims at once instead of at its next poll.
//!
//! One signal per destination: a processor event wakes only the claim loop of TMP's API (or the
//! Lifecycle API). (With one signal for all, every ingested event made all three loops claim,
//! two of them for nothing: measured on PostgreSQL, 2.9 claims per event instead of 1.7, and the
//! claims' planning was the costliest work of the database at 400 events/s.)
//!
//! Token events and notifications do not wake the sinks' loop: their rows wait for its poll
//! (`relay.poll_interval_ms`), so that their deliveries go out in bursts rather than one claim
//! and one result write per request beside the requests' own writes. Measured on SQLite (two
//! runs each, `tmp-kit load --scenario token-events,notifications`): woken per request,
//! notifications were acknowledged at p50 5.5–6.3 ms and p99 12–29 ms at 700/s; by the poll, at
//! 3.5 ms and 8.6–10.4 ms. TMP waits for that acknowledgement; a cardholder waiting for an
//! activation code does not notice a quarter of a second.

use tokio::sync::Notify;

use super::DESTINATIONS;
use crate::outbox::Destination;

#[derive(Default)]
pub struct Wakeup {
    /// By index in [`DESTINATIONS`]. A signal given while the loop claims is kept for it (a
    /// `Notify` permit), so none is lost.
    signals: [Notify; DESTINATIONS.len()],
}

impl Wakeup {
    /// Rows for `destination` are due now.
    pub fn rows_for(&self, destination: Destination) {
        self.signals[index(destination)].notify_one();
    }

    /// Rows for any destination may be due now (an operator's replay).
    pub fn any(&self) {
        self.signals.iter().for_each(Notify::notify_one);
    }

    /// Until rows for `destination` are signalled.
    pub(super) async fn rows_due(&self, destination: Destination) {
        self.signals[index(destination)].notified().await;
    }
}

/// `destination`'s index in [`DESTINATIONS`].
pub(super) fn index(destination: Destination) -> usize {
    match destination {
        Destination::TmpApi => 0,
        Destination::LifecycleApi => 1,
        Destination::IssuerWebhook => 2,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_destination_has_its_own_signal() {
        for (i, destination) in super::DESTINATIONS.iter().enumerate() {
            assert_eq!(super::index(*destination), i, "{destination}");
        }
    }
}
