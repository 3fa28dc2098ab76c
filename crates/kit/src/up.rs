//! `tmp-kit up`: the kit for local work — `mock-tmp` (TMP API, Lifecycle API, simulator) and
//! `tmp-adapter` on embedded SQLite, each from its own configuration file, wired to each other
//! by those files (`config/local.yaml` points the adapter at the mock, `config/mock-tmp.yaml`
//! points the mock at the adapter). Both stop together: on Ctrl-C, or when either fails.

use std::path::PathBuf;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// The adapter's configuration directory (`base.yaml` + `<TMP_ADAPTER_ENV>.yaml`, `local` by
    /// default).
    #[arg(long, default_value = "config")]
    pub adapter_config_dir: PathBuf,
    /// The mock's configuration file.
    #[arg(long, default_value = "config/mock-tmp.yaml", env = "MOCK_TMP_CONFIG")]
    pub mock_config: PathBuf,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let settings = tmp_adapter::config::Settings::load(&args.adapter_config_dir)?;
    // One log for both, in the adapter's format and level.
    tmp_adapter::telemetry::init(settings.log.format, &settings.log.level, settings.allows_log_override());
    let mock_config = mock_tmp::MockConfig::load(&args.mock_config).map_err(|e| anyhow::anyhow!("{e}"))?;
    let adapter = tmp_adapter::startup::Application::build(settings).await.context("tmp-adapter did not start")?;
    tracing::info!(port = adapter.port(), "tmp-adapter ready");
    let mock = mock_tmp::start(mock_config).await.context("mock-tmp did not start")?;
    tracing::info!(url = %mock.base_url(), "mock-tmp ready");
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
    Ok(())
}
