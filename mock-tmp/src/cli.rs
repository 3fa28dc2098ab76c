//! The `mock-tmp` command line. The mock runs alone; `tmp-kit up` runs it together with the
//! adapter for local work.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, MockConfig};

#[derive(Debug, Parser)]
#[command(name = "mock-tmp", version, about = "A stateful stand-in for Verestro TMP and DataCore")]
pub struct Cli {
    /// The configuration file (every key is documented in it).
    #[arg(long, default_value = "config/mock-tmp.yaml", env = "MOCK_TMP_CONFIG")]
    pub config: PathBuf,
    /// Print the embedded default configuration and exit.
    #[arg(long)]
    pub print_default_config: bool,
    /// Print the shell completion script (bash, zsh, fish, elvish, powershell) and exit.
    #[arg(long, value_enum, value_name = "SHELL")]
    pub completions: Option<tmp_edge::cli_docs::Shell>,
    /// Print the man page and exit.
    #[arg(long)]
    pub man: bool,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_default_config {
        print!("{}", crate::config::DEFAULT_CONFIG_YAML);
        return ExitCode::SUCCESS;
    }
    if let Some(shell) = cli.completions {
        tmp_edge::cli_docs::completions(<Cli as clap::CommandFactory>::command(), shell, &mut std::io::stdout());
        return ExitCode::SUCCESS;
    }
    if cli.man {
        return match tmp_edge::cli_docs::write_man_pages(<Cli as clap::CommandFactory>::command(), None) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("mock-tmp: {e:#}");
                ExitCode::from(2)
            }
        };
    }
    let config = match MockConfig::load(&cli.config) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log.format, &config.log.level);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = ?e, "mock-tmp failed");
            eprintln!("mock-tmp: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat, level: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.with_target(false).try_init(),
    };
}

async fn run(config: MockConfig) -> anyhow::Result<()> {
    let mock = crate::start(config).await?;
    tracing::info!(url = %mock.base_url(), "mock-tmp ready");
    mock.run_until_stopped().await?;
    Ok(())
}
