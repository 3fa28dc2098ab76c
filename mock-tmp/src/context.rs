//! The shared state of one running mock: configuration, state, keys, journal, faults and the
//! handle of the callback sender. Handlers, the simulator and the sender all work on it.

use std::sync::{Arc, RwLock};

use tmp_protocol::webhook::Verifier;

use crate::config::{MockConfig, SenderBehaviour};
use crate::faults::Faults;
use crate::journal::Journal;
use crate::keys::MockKeys;
use crate::sender::{Outbox, issuer::IssuerLink};
use crate::state::persist::Persistence;
use crate::state::{Effect, MockState};
use tmp_edge::error::ApiError;

pub struct Mock {
    pub config: MockConfig,
    pub state: tokio::sync::Mutex<MockState>,
    pub keys: RwLock<MockKeys>,
    pub persistence: Option<Persistence>,
    pub journal: Arc<Journal>,
    pub faults: Arc<Faults>,
    pub issuer: IssuerLink,
    pub outbox: Outbox,
    pub behaviour: RwLock<SenderBehaviour>,
    /// Present when `auth.mode` requires HMAC signatures.
    pub verifier: Option<Verifier>,
    /// Seconds the mock's clock is ahead of the wall clock (`POST /_mock/v1/clock/advance`): it
    /// times activation codes, so a test can watch one expire without waiting.
    pub clock_offset_secs: std::sync::atomic::AtomicI64,
}

impl Mock {
    pub fn new(
        config: MockConfig,
        state: MockState,
        keys: MockKeys,
        persistence: Option<Persistence>,
        outbox: Outbox,
    ) -> anyhow::Result<Mock> {
        let journal = Arc::new(Journal::new(config.journal.capacity));
        let faults = Arc::new(Faults::new(&config.faults));
        let issuer =
            IssuerLink::new(&config.issuer, config.issuer.hmac_secrets.clone(), journal.clone(), faults.clone())?;
        let verifier = if config.auth.mode.requires_hmac() {
            let tolerance = std::time::Duration::from_secs(config.auth.timestamp_tolerance_secs);
            Some(Verifier::new(config.auth.hmac_secrets.clone(), tolerance))
        } else {
            None
        };
        Ok(Mock {
            behaviour: RwLock::new(config.sender.clone()),
            config,
            state: tokio::sync::Mutex::new(state),
            keys: RwLock::new(keys),
            persistence,
            journal,
            faults,
            issuer,
            outbox,
            verifier,
            clock_offset_secs: std::sync::atomic::AtomicI64::new(0),
        })
    }

    /// The mock's clock: the wall clock, moved ahead by `/_mock/v1/clock/advance`. Activation
    /// codes are issued and expire by it; everything else keeps the wall clock.
    pub fn now(&self) -> time::OffsetDateTime {
        let offset = self.clock_offset_secs.load(std::sync::atomic::Ordering::Relaxed);
        time::OffsetDateTime::now_utc() + time::Duration::seconds(offset)
    }

    /// Moves the mock's clock ahead by `secs`; answers the new offset.
    pub fn advance_clock(&self, secs: i64) -> i64 {
        self.clock_offset_secs.fetch_add(secs, std::sync::atomic::Ordering::Relaxed) + secs
    }

    pub fn keys(&self) -> std::sync::RwLockReadGuard<'_, MockKeys> {
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn keys_mut(&self) -> std::sync::RwLockWriteGuard<'_, MockKeys> {
        self.keys.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn sender_behaviour(&self) -> SenderBehaviour {
        self.behaviour.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_sender_behaviour(&self, behaviour: SenderBehaviour) {
        *self.behaviour.write().unwrap_or_else(|e| e.into_inner()) = behaviour;
    }

    /// Saves the state (when persistent), then queues the effects for the issuer: a callback
    /// never announces a change that is not saved.
    pub async fn commit(&self, state: &mut MockState, effects: Vec<Effect>) -> Result<(), ApiError> {
        self.save(state).await?;
        for effect in effects {
            self.outbox.push(effect);
        }
        Ok(())
    }

    pub async fn save(&self, state: &mut MockState) -> Result<(), ApiError> {
        if let Some(persistence) = &self.persistence {
            state.keys = Some(self.keys().store().map_err(ApiError::Internal)?);
            let result = persistence.save(state).await;
            state.keys = None;
            result.map_err(ApiError::Unavailable)?;
        }
        Ok(())
    }
}
