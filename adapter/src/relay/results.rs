//! Delivery results on their way to the store, recorded in batches.
//!
//! Every attempt ends with a write to its outbox row (delivered, retry at, held). Written one by
//! one, that is a commit per delivery — on SQLite one WAL append each behind the single writer,
//! on PostgreSQL a commit each — and under load the commits, not the deliveries, set the pace.
//! So one task writes them: it takes the first result that arrives and every other one waiting
//! by then, and records them in one statement ([`OutboxStore::finish_outbox_many`]). Nothing
//! waits for company: a lone result is written at once, as before; results that arrive while a
//! batch is being written go together in the next. A batch is never larger than the deliveries
//! in flight (each has at most one result waiting), so it needs no bound of its own.
//!
//! A delivery's task waits for its result to be written before it ends, and so keeps its slot
//! until then (per-card order itself is the claim's: a card's next row is claimable only once
//! the row before it is recorded). A batch that fails is written again row by row, so one row
//! that cannot be written fails alone; a row that still fails is retried by its task within its
//! lease (see `relay::record`).

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::store::{FinishedAttempt, OutboxStore, Recorded, StoreError};

/// Why a result could not be handed in: the writing task ended (a bug: it panicked; logged
/// when the relay stops).
const WRITER_GONE: &str = "the relay's result writer has ended";

/// What recording the attempt did, or why it failed.
pub type Written = Result<Recorded, Arc<StoreError>>;

struct Pending {
    attempt: FinishedAttempt,
    reply: oneshot::Sender<Written>,
}

/// Where a delivery's task hands its result (cloned into every task).
#[derive(Clone)]
pub struct ResultWriter {
    queue: mpsc::UnboundedSender<Pending>,
}

impl ResultWriter {
    /// Starts the writing task; it ends once every `ResultWriter` is dropped and what they
    /// handed in is written (await the handle).
    pub fn start(store: Arc<dyn OutboxStore>, owner: String) -> (ResultWriter, tokio::task::JoinHandle<()>) {
        let (queue, waiting) = mpsc::unbounded_channel();
        (ResultWriter { queue }, tokio::spawn(write_batches(store, owner, waiting)))
    }

    /// Records `attempt` with the others that arrive meanwhile.
    pub async fn record(&self, attempt: FinishedAttempt) -> Written {
        let (reply, written) = oneshot::channel();
        if self.queue.send(Pending { attempt, reply }).is_err() {
            return Err(Arc::new(StoreError::NotDurable(WRITER_GONE)));
        }
        written.await.unwrap_or_else(|_| Err(Arc::new(StoreError::NotDurable(WRITER_GONE))))
    }
}

#[tracing::instrument(skip_all)]
async fn write_batches(store: Arc<dyn OutboxStore>, owner: String, mut waiting: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::new();
    while waiting.recv_many(&mut batch, usize::MAX).await > 0 {
        let (attempts, replies): (Vec<_>, Vec<_>) = batch.drain(..).map(|p| (p.attempt, p.reply)).unzip();
        match store.finish_outbox_many(&owner, &attempts).await {
            Ok(recorded) => {
                for (reply, recorded) in replies.into_iter().zip(recorded) {
                    let _ = reply.send(Ok(recorded));
                }
            }
            Err(error) if attempts.len() == 1 => {
                let _ = replies.into_iter().next().map(|reply| reply.send(Err(Arc::new(error))));
            }
            Err(error) => {
                tracing::warn!(error = ?error, results = attempts.len(), "recording results together failed; one by one");
                for (attempt, reply) in attempts.into_iter().zip(replies) {
                    let recorded = store.finish_outbox_many(&owner, std::slice::from_ref(&attempt)).await;
                    let recorded = recorded.map(|r| r.first().copied().unwrap_or(Recorded::LeaseLost));
                    let _ = reply.send(recorded.map_err(Arc::new));
                }
            }
        }
    }
}
