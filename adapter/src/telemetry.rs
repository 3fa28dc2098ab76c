//! Logging: JSON or pretty, filtered by `log.level` or `RUST_LOG`, every line of a request
//! carrying its correlation id (the request span's field).

use tracing::Subscriber;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Registry};

use crate::config::LogFormat;

/// Builds the subscriber; `sink` is where lines go (stdout in the daemon, a buffer in tests).
pub fn subscriber<W>(format: LogFormat, level: &str, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    match format {
        LogFormat::Json => Box::new(
            Registry::default().with(filter).with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
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

/// Installs the subscriber process-wide. Call once, first thing in `main`.
pub fn init(format: LogFormat, level: &str) {
    let subscriber = subscriber(format, level, std::io::stdout);
    // A second call (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
}
