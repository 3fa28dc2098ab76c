//! How the rest of the adapter tells the relay that rows are due now — committed by a request,
//! or put back by an operator — so that it claims at once instead of at its next poll.
//!
//! One signal per destination: a processor event wakes only the claim loop of TMP's API (or the
//! Lifecycle API), a token event only the sinks'. (With one signal for all, every ingested event
//! made all three loops claim, two of them for nothing: measured on PostgreSQL, three claims per
//! event, whose planning was the costliest work of the database at 400 events/s.)

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

    /// Rows for any destination may be due now (an operator's retry or replay).
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
