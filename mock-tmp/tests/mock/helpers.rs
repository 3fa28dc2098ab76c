//! A mock started for a test, its callbacks going to a [`FakeIssuer`], driven through a
//! [`MockDriver`].

use mock_tmp::{MockConfig, MockHandle};
use tmp_protocol::webhook::WebhookSecret;

use crate::driver::MockDriver;
use crate::fake_issuer::FakeIssuer;

pub struct Mock {
    pub handle: MockHandle,
    pub issuer: FakeIssuer,
    pub driver: MockDriver,
    /// Scratch space for the test (the mock's SQLite state, certificates).
    pub dir: tempfile::TempDir,
}

impl std::ops::Deref for Mock {
    type Target = MockDriver;
    fn deref(&self) -> &MockDriver {
        &self.driver
    }
}

impl std::ops::DerefMut for Mock {
    fn deref_mut(&mut self) -> &mut MockDriver {
        &mut self.driver
    }
}

/// The mock's defaults, tuned for tests: port 0, fast retries, callbacks to `issuer`, and a
/// fresh secret for the issuer's calls to the mock.
pub fn mock_config(issuer: &FakeIssuer) -> (MockConfig, WebhookSecret) {
    let mut config = MockConfig::defaults();
    config.server.port = 0;
    config.issuer.base_url = issuer.url.clone();
    config.issuer.hmac_secrets = vec![issuer.secret.clone()];
    config.sender.backoff_initial_ms = 10;
    config.sender.backoff_max_ms = 50;
    let (secret, _) = WebhookSecret::generate();
    config.auth.hmac_secrets = vec![secret.clone()];
    (config, secret)
}

impl Mock {
    pub async fn start() -> Mock {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(edit: impl FnOnce(&mut MockConfig)) -> Mock {
        let issuer = FakeIssuer::start().await;
        let (mut config, secret) = mock_config(&issuer);
        edit(&mut config);
        let handle = mock_tmp::start(config).await.expect("mock starts");
        let driver = MockDriver::new(&handle.base_url(), secret);
        let dir = tempfile::Builder::new().prefix("mock-tmp-test-").tempdir().expect("temp dir");
        Mock { handle, issuer, driver, dir }
    }

    /// A green Google Pay token on `card-active`, its token event delivered to the issuer.
    pub async fn green_token(&self) -> String {
        let token = self.simulate_green().await;
        self.handle.wait_idle().await;
        token
    }
}
