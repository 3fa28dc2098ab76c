//! The conformance suite's [`Harness`] for a [`TestKit`]: what only the one who started the
//! target can do — restart it, read the activation codes its webhook sink received, hand out
//! ops API keys — and the session `tmp-kit check`, `load` and `soak` run in.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::future::BoxFuture;
use tmp_conformance::case::Approach;
use tmp_conformance::client::Client;
use tmp_conformance::harness::{Capability, EngineAnswer, Harness, OpsAccess};
use tmp_conformance::mock_api::MockApi;
use tmp_conformance::payload::PayloadSpec;
use tmp_conformance::session::Session;
use tmp_protocol::sensitive::Otp;

use crate::test_kit::{TestKit, fixture_events};

impl Harness for TestKit {
    fn capabilities(&self) -> &[Capability] {
        use Capability::*;
        match (self.ops.is_some(), self.engine.is_some()) {
            (true, true) => &[Restart, ActivationCodes, HoldDeliveries, OpsApi, DecisionEngine],
            (true, false) => &[Restart, ActivationCodes, HoldDeliveries, OpsApi],
            (false, true) => &[Restart, ActivationCodes, HoldDeliveries, DecisionEngine],
            (false, false) => &[Restart, ActivationCodes, HoldDeliveries],
        }
    }

    fn stop_target(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.stop_adapter())
    }

    fn start_target(&self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(self.start_adapter())
    }

    fn activation_code(&self, token_id: &str) -> Option<Otp> {
        self.sink.otp_for(token_id)
    }

    fn ops_api(&self) -> Option<&OpsAccess> {
        self.ops.as_ref()
    }

    fn hold_deliveries(&self, hold: bool) {
        self.sink.refuse(hold);
    }

    fn engine_answer(&self, tokenization_id: &str, answer: EngineAnswer) {
        if let Some(engine) = &self.engine {
            engine.set_answer(tokenization_id, answer);
        }
    }

    fn engine_question(&self, tokenization_id: &str) -> Option<serde_json::Value> {
        self.engine.as_ref().and_then(|e| e.question(tokenization_id))
    }
}

/// A session against a spawned kit: its profile and secrets, its mock, the kit as harness, its
/// fixture cards loaded. `target` is the kit's adapter, or something in front of it (tests put a
/// broken proxy there).
pub async fn spawned_session(
    kit: &Arc<TestKit>,
    target: &str,
    approach: Approach,
    seed: u64,
) -> anyhow::Result<Session> {
    let client = Client::new(kit.profile.clone(), target, kit.secrets.clone())?;
    // The fixtures go to the adapter itself, whatever stands in front of it.
    let mut session = Session::new(client, &kit.adapter_url, approach, seed);
    session.mock = Some(MockApi::new(&kit.mock_url)?);
    let harness: Arc<dyn Harness> = kit.clone();
    session.harness = Some(harness);
    load_fixtures(&session).await.context("loading the fixture cards into the spawned kit")?;
    damage_failing_card(&session, &kit.settings().database.url).await.context("damaging the failing card's record")?;
    session.target = target.trim_end_matches('/').to_owned();
    Ok(session)
}

/// Puts the profile's cards into the target through its processor ingest (a tmp-adapter's),
/// and (datacore) waits until DataCore holds them in their states.
pub async fn load_fixtures(session: &Session) -> anyhow::Result<()> {
    let run = session.id("run");
    for (name, event) in fixture_events(&run, &session.client.profile) {
        let mut call = tmp_conformance::catalogue::ingest_call(session, event);
        if call.body_mentions_payload() {
            call = call.payload(PayloadSpec::card_data(&name));
        }
        let answer = session.client.send(call).await?;
        anyhow::ensure!(answer.status == 202, "fixture {name}: HTTP {} {}", answer.status, answer.text());
    }
    if session.approach == Approach::Datacore {
        let mock = session.mock.as_ref().expect("spawned");
        for (name, status) in
            [("active", "ACTIVE"), ("blocked", "BLOCKED"), ("closed", "CLOSED"), ("expired", "ACTIVE")]
        {
            let card_id = session.client.profile.card(name)?.card_id.clone().context("a fixture card id")?;
            let mut ready = false;
            for _ in 0..200 {
                // A closed card leaves DataCore (DELETE): gone is its final state.
                let card = mock.card(&card_id).await?;
                ready = match (&card, status) {
                    (None, "CLOSED") => true,
                    (Some(card), _) => card["status"] == status,
                    _ => false,
                };
                if ready {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            anyhow::ensure!(ready, "the fixture card {card_id} did not reach DataCore as {status}");
        }
    }
    Ok(())
}

/// Gives a tmp-adapter on the local registry the card its card source fails on (the profile's
/// `cards.failing`, loaded by [`load_fixtures`]): the card's record in the adapter's database
/// gets an expiry no card has, as a botched migration or a manual edit would leave it, so every
/// lookup of the card errors (contract §7.4). A real fault in the real store: the adapter has
/// no switch for it. Nothing to do when the profile has no such card.
pub async fn damage_failing_card(session: &Session, database_url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let Some(card) = session.client.profile.cards.get("failing") else {
        return Ok(());
    };
    let card_id = card.card_id.clone().context("the profile's `cards.failing` has no card_id to damage")?;
    // Not a date, and of the column's width: `facts_from_record` refuses it.
    const DAMAGE: &str = "UPDATE cards SET expiry_yymm = 'XXXX' WHERE card_id = $1";
    let damaged = if tmp_adapter::store::is_postgres_url(database_url) {
        let mut db = sqlx::PgConnection::connect(database_url).await?;
        sqlx::query(DAMAGE).bind(&card_id).execute(&mut db).await?.rows_affected()
    } else {
        let mut db = sqlx::SqliteConnection::connect(database_url).await?;
        sqlx::query(DAMAGE).bind(&card_id).execute(&mut db).await?.rows_affected()
    };
    anyhow::ensure!(damaged == 1, "the adapter's database has no card {card_id} to damage");
    Ok(())
}

/// The adapter's approach for the suite's.
pub fn adapter_approach(approach: Approach) -> tmp_adapter::config::Approach {
    match approach {
        Approach::External => tmp_adapter::config::Approach::External,
        Approach::Datacore => tmp_adapter::config::Approach::Datacore,
    }
}

/// The suite's approach for the adapter's.
pub fn suite_approach(approach: tmp_adapter::config::Approach) -> Approach {
    match approach {
        tmp_adapter::config::Approach::External => Approach::External,
        tmp_adapter::config::Approach::Datacore => Approach::Datacore,
    }
}
