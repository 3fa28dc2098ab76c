//! A `TestKit` (a real tmp-adapter on a temporary SQLite with shared test keys, a mock pointed at
//! it, both on port 0, talking over real sockets) with the fixture cards in the adapter's
//! registry. Request helpers sign and encrypt as the issuer does when it calls the TMP and
//! Lifecycle APIs.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use mock_tmp::MockConfig;
use serde_json::{Value, json};
use tmp_adapter::config::{Approach, Settings};
use tmp_adapter::keys::KeyMaterial;
use tmp_adapter::store::{self, DynStore};
use tmp_kit::{KitOptions, TestKit};

#[path = "../../../../mock-tmp/tests/mock/driver.rs"]
mod driver;

pub use driver::{EXPIRY, MockDriver, PAN_ACTIVE, PAN_BLOCKED, PAN_DATACORE, expect_error, expect_json};

fn fixture_cards() -> String {
    [
        json!({"cardId": "card-active", "pan": PAN_ACTIVE, "expiry": EXPIRY, "status": "ACTIVE",
               "phone": "+48500100200", "email": "holder@example.com"}),
        json!({"cardId": "card-blocked", "pan": PAN_BLOCKED, "expiry": EXPIRY, "status": "BLOCKED"}),
    ]
    .iter()
    .map(Value::to_string)
    .collect::<Vec<_>>()
    .join("\n")
}

/// Adapter keys generated once per build and shared by every test (RSA generation is slow).
fn shared_key_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = root.join("tmp-kit-e2e-keys-v1");
        if dir.join("complete").exists() {
            return dir;
        }
        // Generated aside and renamed into place: tests in other processes may race for it.
        let scratch = tempfile::tempdir_in(&root).expect("scratch dir").keep();
        TestKit::generate_keys(&scratch).expect("generate test keys");
        std::fs::write(scratch.join("complete"), "").expect("marker");
        if std::fs::rename(&scratch, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&scratch);
        }
        dir
    })
    .clone()
}

/// A started kit (`tmp_kit::TestKit`) with the fixture cards in the adapter's registry, and
/// what the tests reach into: the adapter's store and keys, and the issuer's signing secret.
pub struct Kit {
    pub inner: Arc<TestKit>,
    pub adapter_url: String,
    /// The adapter's ops API, when `ops.enabled`.
    pub ops_url: Option<String>,
    pub store: DynStore,
    pub adapter_keys: KeyMaterial,
    /// The mock, as the issuer calls it.
    pub driver: MockDriver,
}

impl std::ops::Deref for Kit {
    type Target = MockDriver;
    fn deref(&self) -> &MockDriver {
        &self.driver
    }
}

impl std::ops::DerefMut for Kit {
    fn deref_mut(&mut self) -> &mut MockDriver {
        &mut self.driver
    }
}

impl Kit {
    pub async fn spawn() -> Kit {
        Self::spawn_with(|_| {}, |_| {}).await
    }

    /// The kit with the adapter's settings and the mock's configuration changed by the test.
    /// The adapter's ops listener is off unless the test turns it on.
    pub async fn spawn_with(adapter: impl FnOnce(&mut Settings), mock: impl FnOnce(&mut MockConfig)) -> Kit {
        let options = KitOptions { key_dir: Some(shared_key_dir()), ..KitOptions::new(Approach::External) };
        let inner = TestKit::start_with(
            &options,
            |settings| {
                settings.ops.enabled = false;
                adapter(settings);
            },
            |config| {
                config.sender.backoff_initial_ms = 10;
                config.sender.backoff_max_ms = 50;
                mock(config);
            },
        )
        .await
        .expect("the kit starts");
        let settings = inner.settings();
        let adapter_keys = KeyMaterial::load(settings).expect("keys");
        let store = store::connect(&settings.database.url, 2).await.expect("store");
        let (records, problems) = tmp_adapter::import::parse(
            &fixture_cards(),
            tmp_adapter::import::ImportFormat::Jsonl,
            &adapter_keys.data_keys.current(),
            &adapter_keys.fingerprinter,
        )
        .expect("parse fixtures");
        assert!(problems.is_empty(), "{problems:?}");
        store.upsert_cards(&records.into_iter().map(|(_, r)| r).collect::<Vec<_>>()).await.expect("import fixtures");
        Kit {
            adapter_url: inner.adapter_url.clone(),
            ops_url: inner.ops.as_ref().map(|ops| ops.url.clone()),
            driver: MockDriver::new(&inner.mock_url, inner.secrets.issuer.clone().expect("the issuer's secret")),
            inner: Arc::new(inner),
            store,
            adapter_keys,
        }
    }

    pub async fn stop_adapter(&self) {
        self.inner.stop_adapter().await.expect("the adapter stops");
    }

    /// A green Google Pay token on `card-active` (approach external), delivered to the adapter.
    pub async fn green_token(&self) -> String {
        let token = self.simulate_green().await;
        self.inner.mock_idle().await;
        token
    }

    pub async fn adapter_token(&self, token_id: &str) -> tmp_adapter::store::TokenRecord {
        self.store.find_token(token_id).await.expect("store").expect("the adapter mirrors the token")
    }

    /// The activation code of notification `notification_id`, as the issuer's SMS gateway
    /// received it from the adapter (waits up to 10 s for the delivery).
    pub async fn delivered_otp(&self, notification_id: &str) -> String {
        let started = std::time::Instant::now();
        loop {
            let delivered = self
                .inner
                .sink
                .deliveries()
                .into_iter()
                .find_map(|d| (d.data["notificationId"] == notification_id).then_some(d.otp).flatten());
            if let Some(otp) = delivered {
                return otp.expose().to_owned();
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "no activation code delivered");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}
