//! `tmp-kit up`: the kit for local work — `mock-tmp` (TMP API, Lifecycle API, simulator) and
//! `tmp-adapter` on embedded SQLite, each from its own configuration file, wired to each other
//! by those files (`config/local.yaml` points the adapter at the mock, `config/mock-tmp.yaml`
//! points the mock at the adapter) — and a dev inbox standing for the issuer's own systems,
//! which the adapter delivers token events and activation codes to, so the yellow path can be
//! finished by hand. All stop together: on Ctrl-C, or when one fails.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tmp_adapter::config::SinkSettings;

use crate::sink::Sink;

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The adapter's configuration directory (`base.yaml` + `<TMP_ADAPTER_ENV>.yaml`, `local` by
    /// default).
    #[arg(long, default_value = "config")]
    pub adapter_config_dir: PathBuf,
    /// The mock's configuration file.
    #[arg(long, default_value = "config/mock-tmp.yaml", env = "MOCK_TMP_CONFIG")]
    pub mock_config: PathBuf,
    /// Where the dev inbox listens (a loopback address): a webhook sink added to the adapter's
    /// (local) settings that decrypts and shows activation codes, `GET /inbox`.
    #[arg(long, default_value = "127.0.0.1:8091")]
    pub inbox: String,
    /// Start no dev inbox (the adapter delivers only to the sinks its configuration names).
    #[arg(long)]
    pub no_inbox: bool,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let mut settings = tmp_adapter::config::Settings::load(&args.adapter_config_dir)?;
    // One log for both, in the adapter's format and level.
    tmp_adapter::telemetry::init(settings.log.format, &settings.log.level, settings.allows_log_override());
    let mock_config = mock_tmp::MockConfig::load(&args.mock_config).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Kept for as long as the kit runs: the inbox's public key file lives in it.
    let inbox_dir = tempfile::Builder::new().prefix("tmp-kit-inbox-").tempdir()?;
    let inbox = if wants_inbox(&args, settings.environment)? {
        let inbox = Sink::start_inbox(&args.inbox).await.context("the dev inbox did not start (--no-inbox)")?;
        settings.sinks.push(inbox_sink(&inbox, inbox_dir.path())?);
        tracing::info!(inbox = %inbox.inbox_url(), "dev inbox ready: activation codes show here and in this log");
        Some(inbox)
    } else {
        None
    };
    let adapter = tmp_adapter::startup::Application::build(settings).await.context("tmp-adapter did not start")?;
    tracing::info!(port = adapter.port(), "tmp-adapter ready");
    let mock = mock_tmp::start(mock_config).await.context("mock-tmp did not start")?;
    tracing::info!(url = %mock.base_url(), console = %format!("{}/_mock/console", mock.base_url()), "mock-tmp ready");
    let adapter_handle = adapter.handle();
    tokio::select! {
        result = mock.run_until_stopped() => {
            adapter_handle.stop(true).await;
            result?;
        }
        // The adapter drains on Ctrl-C or SIGTERM and returns Ok: the kit stops with it (the
        // mock has the same signal); an error stops the kit with that error.
        result = adapter.run_until_stopped() => result?,
    }
    if let Some(inbox) = inbox {
        inbox.stop().await;
    }
    Ok(())
}

/// Whether to start the dev inbox: for a local adapter only — never in production, for it shows
/// activation codes in clear — unless `--no-inbox`, and only on a loopback address (unauthenticated,
/// it must not be reachable beyond this machine).
fn wants_inbox(args: &UpArgs, environment: tmp_adapter::config::Environment) -> anyhow::Result<bool> {
    if args.no_inbox || environment != tmp_adapter::config::Environment::Local {
        return Ok(false);
    }
    let loopback = args.inbox.parse::<std::net::SocketAddr>().is_ok_and(|a| a.ip().is_loopback());
    anyhow::ensure!(loopback, "--inbox {} must be a loopback address (it shows activation codes)", args.inbox);
    Ok(true)
}

/// The adapter's sink for the dev inbox: every event type, signed with the inbox's secret,
/// activation codes encrypted to the inbox's key.
fn inbox_sink(inbox: &Sink, dir: &Path) -> anyhow::Result<SinkSettings> {
    let jwk = dir.join("dev-inbox-otp.jwk.json");
    std::fs::write(&jwk, &inbox.otp_jwk_json)?;
    Ok(SinkSettings {
        name: "dev-inbox".into(),
        url: inbox.url.clone(),
        hmac_secrets: vec![inbox.secret.clone()],
        event_types: Vec::new(),
        otp_jwk_file: Some(jwk),
        tls: Default::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use tmp_adapter::config::Environment;

    fn args(extra: &[&str]) -> UpArgs {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            up: UpArgs,
        }
        Cli::parse_from(std::iter::once("tmp-kit-up").chain(extra.iter().copied())).up
    }

    #[test]
    fn the_dev_inbox_runs_only_for_a_local_adapter_on_loopback() {
        assert!(wants_inbox(&args(&[]), Environment::Local).unwrap());
        assert!(!wants_inbox(&args(&[]), Environment::Production).unwrap(), "never in production");
        assert!(!wants_inbox(&args(&["--inbox", "0.0.0.0:8091"]), Environment::Production).unwrap());
        assert!(!wants_inbox(&args(&["--no-inbox"]), Environment::Local).unwrap());
        let exposed = wants_inbox(&args(&["--inbox", "0.0.0.0:8091"]), Environment::Local).unwrap_err();
        assert!(exposed.to_string().contains("loopback"), "{exposed}");
    }
}
