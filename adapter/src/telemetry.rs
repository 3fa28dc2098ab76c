//! Logging: JSON or pretty, filtered by `log.level` or `RUST_LOG`, every line of a request
//! carrying its correlation id (the request span's field).

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

use crate::config::LogFormat;

/// Builds the subscriber; `sink` is where lines go (stdout in the daemon, a buffer in tests).
/// `RUST_LOG`, when set and `env_override` allows it, replaces `level`.
pub fn subscriber<W>(format: LogFormat, level: &str, env_override: bool, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let from_env = if env_override { EnvFilter::try_from_default_env().ok() } else { None };
    let filter = from_env.unwrap_or_else(|| EnvFilter::new(level));
    match format {
        LogFormat::Json => Box::new(
            Registry::default().with(filter).with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    // Every enclosing span, so each line carries the request span's correlation id.
                    .with_span_list(true)
                    .with_writer(sink),
            ),
        ),
        LogFormat::Pretty => Box::new(
            Registry::default()
                .with(filter)
                .with(tracing_subscriber::fmt::layer().with_target(false).with_writer(sink)),
        ),
    }
}

/// Installs the subscriber process-wide. Call once, first thing in `main`. Production passes
/// `env_override = false`: its level is validated (no debug or trace), and `RUST_LOG` must not
/// get around that.
pub fn init(format: LogFormat, level: &str, env_override: bool) {
    let subscriber = subscriber(format, level, env_override, std::io::stdout);
    // A second call (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
}
