//! The command line: `serve` (default), `migrate`, `check-config`, `print-default-config`,
//! `import`, `keys generate`, `openapi`, `outbox list|show|retry|replay|skip`, `ops token`,
//! `apikey create|list|revoke`, `tokens reconcile`, `completions`, `man`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

use crate::config::{DEFAULT_CONFIG_YAML, Settings};
use crate::import::{ImportFormat, ImportOptions};
use crate::ops::OpsError;
use crate::ops::audit::{self, AuditDraft};
use crate::startup::Application;

#[derive(Debug, Parser)]
#[command(name = "tmp-adapter", version, about = "The issuer's daemon for Verestro TMP")]
pub struct Cli {
    /// Directory holding base.yaml and <environment>.yaml.
    #[arg(long, env = "TMP_ADAPTER_CONFIG_DIR", default_value = "config", global = true)]
    pub config_dir: PathBuf,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the Issuer API (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load and validate the configuration, print a summary without secrets, and exit.
    CheckConfig,
    /// Print the commented reference configuration (config/base.yaml).
    PrintDefaultConfig,
    /// Load cards into the local registry from a JSONL or CSV file.
    Import {
        /// The cards: JSON Lines (one `{"cardId", "pan", "expiry", "status", ...}` per line) or
        /// CSV with a header row; docs/operations.md lists the fields.
        file: PathBuf,
        /// File format; by default taken from the extension (.jsonl/.ndjson or .csv).
        #[arg(long, value_enum)]
        format: Option<ImportFormat>,
        /// Import the valid lines even when some are bad (bad lines are still reported).
        #[arg(long)]
        skip_invalid: bool,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the Issuer API's OpenAPI document (or the ops API's, with --ops).
    Openapi {
        #[arg(long)]
        ops: bool,
    },
    /// The ops API (the operator's HTTP surface on its own listener).
    Ops {
        #[command(subcommand)]
        command: OpsCommand,
    },
    /// Scoped API keys of the ops API (stored hashed; the key is printed once).
    Apikey {
        #[command(subcommand)]
        command: ApikeyCommand,
    },
    /// Inspect and re-drive the outbox (deliveries to TMP, DataCore and the webhook sinks).
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// The token mirror (fed by TMP's token events).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    #[command(flatten)]
    Docs(tmp_edge::cli_docs::DocsCommand),
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Compare the mirror with TMP's token list (forwarding.tmp_api) and repair what TMP's list
    /// settles: each repair is a token event of TMP's state, in the token's history and sent to
    /// the sinks. A live token TMP does not list is reported, not repaired.
    Reconcile {
        /// One card (the card id TMP knows it by).
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        card: Option<String>,
        /// Every card the mirror holds a token of (a card the mirror never heard a token of is
        /// not listed: reconcile it with --card).
        #[arg(long)]
        all: bool,
        /// With --card: also deactivate, in the mirror, its live tokens TMP does not list — once
        /// you know TMP dropped them (a token TMP moved to a replacement card looks the same
        /// until its token event arrives).
        #[arg(long, requires = "card")]
        deactivate_unknown: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum OutboxCommand {
    /// List rows, newest first (`--status held`: rows failed for good, each blocking its card,
    /// with their last error).
    List {
        /// pending, held, delivered or dead.
        #[arg(long)]
        status: Option<String>,
        /// Only this card's (ordering key's) rows.
        #[arg(long)]
        card: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Show one row with its delivery state (never card data: the payload holds none in clear).
    Show { id: uuid::Uuid },
    /// Make a pending (backing-off), held or dead row due now (a held or dead one with a fresh
    /// schedule).
    Retry { id: uuid::Uuid },
    /// Re-drive held and dead rows by id, by card, or created in a time range (RFC 3339, [since, until)).
    Replay {
        #[arg(long, conflicts_with_all = ["card", "since"])]
        id: Option<uuid::Uuid>,
        #[arg(long, conflicts_with = "since")]
        card: Option<String>,
        #[arg(long, requires = "until")]
        since: Option<String>,
        #[arg(long, requires = "since")]
        until: Option<String>,
        /// Deliver rows already delivered once more, too.
        #[arg(long)]
        include_delivered: bool,
    },
    /// Give up on a pending or held row: it goes dead and its card's next rows proceed.
    Skip { id: uuid::Uuid },
}

#[derive(Debug, Subcommand)]
pub enum ApikeyCommand {
    /// Make a key and print it once: `tmpk_<id>_<secret>`. Only its SHA-256 digest is stored.
    Create {
        /// What the key is for (shown by `list` and in the audit).
        #[arg(long)]
        name: String,
        /// A scope it grants; repeat for several: tokens:read, tokens:write, provisioning,
        /// audit:read, outbox:admin, config:admin.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Requests per minute for this key (default: ops.rate_limit.requests_per_minute).
        #[arg(long)]
        rate_limit_per_minute: Option<u32>,
    },
    /// List the keys (id, name, scopes, rate limit, created, revoked); never a secret.
    List,
    /// Revoke a key by id: it is refused from the next request on.
    Revoke {
        id: String,
        /// Why, for the audit.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Print a new random bearer token and its SHA-256 digest (the digest goes in ops.api_tokens;
    /// the token to the operator, and nowhere else).
    Token,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a new key into a new file (never overwrites), or print a new HMAC secret.
    Generate {
        #[arg(value_enum)]
        kind: KeyKind,
        /// File to create (not needed for `hmac`, which prints the secret).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Re-seal every card PAN, held activation code and outbox card data under the active data
    /// key (keys.data_keys.active), so an older key can leave keys.data_keys.files. Safe while
    /// the adapter runs; an interrupted run is finished by running it again. Reload or restart
    /// every replica with the new active key first.
    Reseal {
        /// Values re-sealed and written per transaction.
        #[arg(long, default_value_t = 500)]
        batch: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyKind {
    /// RSA-2048 JWE decryption key (PKCS#8 PEM): for keys.jwe.
    Jwe,
    /// AES-256 data key (64 hex characters): for keys.data_keys.
    Data,
    /// HMAC-SHA256 PAN fingerprint key (64 hex characters): for keys.fingerprint_key_file.
    Fingerprint,
    /// CVK pair for CVC2 (32 hex characters): for card_source.local_registry.cvk_file.
    Cvk,
    /// Standard-Webhooks secret (whsec_…), printed: for auth.hmac_secrets.
    Hmac,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// On every `SIGHUP`, loads the configuration again and replaces the keys and secrets it names
/// (see [`crate::startup::Reloader`]).
async fn reload_on_hangup(hangups: std::io::Result<tokio::signal::unix::Signal>, reloader: crate::startup::Reloader) {
    let Ok(mut hangups) = hangups else {
        tracing::warn!("cannot listen for SIGHUP: keys and secrets are reloaded only by a restart");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP: reloading keys, secrets and certificates");
        let _ = reloader.reload_from_source().await;
    }
}

fn load_settings(cli: &Cli) -> anyhow::Result<Settings> {
    Ok(Settings::load(&cli.config_dir)?)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Some(Command::Docs(docs)) => Ok(docs.clone().run(Cli::command())),
        None | Some(Command::Serve) => {
            let settings = load_settings(&cli)?;
            crate::telemetry::init(settings.log.format, &settings.log.level, settings.allows_log_override());
            runtime()?.block_on(async {
                // Listening for SIGHUP before the listeners open: a reload sent as soon as the
                // adapter is up must not meet the signal's default action (termination).
                let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
                let app = Application::build(settings).await?;
                let reloader = app.reloader();
                let config_dir = cli.config_dir.clone();
                reloader.read_from(std::sync::Arc::new(move || Ok(Settings::load(&config_dir)?)));
                tokio::spawn(reload_on_hangup(hangups, reloader));
                app.run_until_stopped().await?;
                Ok::<_, anyhow::Error>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Migrate) => {
            let settings = load_settings(&cli)?;
            crate::telemetry::init(settings.log.format, &settings.log.level, settings.allows_log_override());
            runtime()?.block_on(async {
                let store = crate::store::connect(&settings.database.url, 1).await?;
                store.migrate().await?;
                Ok::<_, anyhow::Error>(())
            })?;
            println!("migrations applied");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::CheckConfig) => {
            let settings = load_settings(&cli)?;
            settings.listen_address()?;
            if settings.environment == crate::config::Environment::Production {
                // Production never generates keys, so loading them only reads and checks them.
                crate::keys::KeyMaterial::load(&settings)?;
            }
            println!("configuration is valid");
            println!("  environment: {:?}", settings.environment);
            let transport = |tls: bool, proxy: bool| match (tls, proxy) {
                (true, _) => "https",
                (false, true) => "http, TLS terminated by a proxy",
                (false, false) => "plain http",
            };
            println!(
                "  Issuer API: {}:{} ({})",
                settings.server.host,
                settings.server.port,
                transport(settings.server.tls.is_some(), settings.server.tls_terminated_by_proxy)
            );
            println!("  database: {}", crate::config::redact_url(&settings.database.url));
            println!("  auth: {:?} ({} HMAC secret(s))", settings.auth.mode, settings.auth.hmac_secrets.len());
            println!("  card source: {:?}", settings.card_source.kind);
            println!("  stand-in decision: {:?}", settings.policy.stand_in_decision);
            if settings.processor.hmac_secrets.is_empty() {
                println!("  processor ingest: off (no processor.hmac_secrets)");
            } else {
                let destination = match settings.forwarding.approach {
                    crate::config::Approach::External => &settings.forwarding.tmp_api,
                    crate::config::Approach::Datacore => &settings.forwarding.lifecycle_api,
                };
                println!(
                    "  processor ingest: on, forwarding ({:?}) to {} ({} secret(s))",
                    settings.forwarding.approach,
                    crate::config::redact_url(&destination.base_url),
                    destination.hmac_secrets.len()
                );
            }
            for sink in &settings.sinks {
                println!("  sink {}: {}", sink.name, crate::config::redact_url(&sink.url));
            }
            println!("  relay: {}", if settings.relay.enabled { "on" } else { "off" });
            if settings.ops.enabled {
                println!(
                    "  ops API: {}:{} ({}; {} operator token digest(s), {} mTLS subject(s), {}/min burst {} per caller)",
                    settings.ops.host,
                    settings.ops.port,
                    transport(settings.ops.tls.is_some(), settings.ops.tls_terminated_by_proxy),
                    settings.ops.api_tokens.len(),
                    settings.ops.mtls.subjects.len(),
                    settings.ops.rate_limit.requests_per_minute,
                    settings.ops.rate_limit.burst,
                );
            }
            println!("  JWE keys: {}", settings.keys.jwe.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>().join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::PrintDefaultConfig) => {
            print!("{DEFAULT_CONFIG_YAML}");
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Import { file, format, skip_invalid }) => {
            let settings = load_settings(&cli)?;
            crate::telemetry::init(settings.log.format, "warn", settings.allows_log_override());
            let options = ImportOptions { format: *format, skip_invalid: *skip_invalid };
            let report = runtime()?.block_on(crate::import::run(&settings, file, options))?;
            for problem in &report.problems {
                eprintln!("line {}: {}", problem.line, problem.message);
            }
            println!(
                "{} card(s) imported, {} bad line(s){}",
                report.imported,
                report.problems.len(),
                if report.problems.is_empty() || *skip_invalid { "" } else { " — nothing written" }
            );
            Ok(if report.problems.is_empty() || *skip_invalid { ExitCode::SUCCESS } else { ExitCode::from(2) })
        }
        Some(Command::Keys { command: KeysCommand::Generate { kind, out } }) => generate_key(*kind, out.as_deref()),
        Some(Command::Keys { command: KeysCommand::Reseal { batch } }) => {
            let settings = load_settings(&cli)?;
            crate::telemetry::init(settings.log.format, "warn", settings.allows_log_override());
            runtime()?.block_on(reseal_command(&settings, *batch))
        }
        Some(Command::Apikey { command }) => {
            let settings = load_settings(&cli)?;
            crate::telemetry::init(settings.log.format, "warn", settings.allows_log_override());
            runtime()?.block_on(apikey_command(&settings, command))
        }
        Some(Command::Outbox { command }) => {
            let settings = load_settings(&cli)?;
            crate::telemetry::init(settings.log.format, "warn", settings.allows_log_override());
            runtime()?.block_on(outbox_command(&settings, command))
        }
        Some(Command::Tokens { command: TokensCommand::Reconcile { card, all, deactivate_unknown } }) => {
            let settings = load_settings(&cli)?;
            crate::telemetry::init(settings.log.format, "warn", settings.allows_log_override());
            let mode = crate::ops::tokens::Mode::Repair { deactivate_unknown: *deactivate_unknown };
            runtime()?.block_on(reconcile_command(&settings, card.as_deref(), *all, mode))
        }
        Some(Command::Openapi { ops }) => {
            print!("{}", if *ops { crate::openapi::ops_api_json() } else { crate::openapi::issuer_api_json() });
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Ops { command: OpsCommand::Token }) => {
            use sha2::{Digest, Sha256};
            let token = format!("tmpops_{}", crate::keys::random_hex(32).as_str());
            let digest = hex::encode(Sha256::digest(token.as_bytes()));
            println!("token:  {token}");
            println!("digest: {digest}");
            eprintln!(
                "Put the digest in ops.api_tokens (TMP_ADAPTER__OPS__API_TOKENS); give the token to the operator."
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Prints an operator action's outcome: a refusal on stderr, exit code 2 for "no such row or
/// key, or not in a state that allows this", 1 (the error) for anything else.
fn refused(error: OpsError) -> anyhow::Result<ExitCode> {
    match error {
        OpsError::NotFound(why) | OpsError::Conflict(why) => {
            eprintln!("{why}");
            Ok(ExitCode::from(2))
        }
        OpsError::Invalid(why) => Err(anyhow::anyhow!(why)),
        OpsError::Store(e) => Err(e.into()),
    }
}

/// A CLI write's audit row: done by [`audit::cli_actor`], under a correlation id of its own.
fn cli_audit(draft: &AuditDraft) -> crate::store::OpsAuditRecord {
    draft.record(&audit::cli_actor(), "ok", 0, uuid::Uuid::new_v4().to_string())
}

/// `keys reseal`: the operator action with a progress bar on standard error, and its audit row.
async fn reseal_command(settings: &Settings, batch: u32) -> anyhow::Result<ExitCode> {
    use std::io::{IsTerminal, Write};
    let keys = crate::keys::KeyMaterial::load(settings)?;
    let ring = keys.data_keys.current();
    let store = crate::store::connect(&settings.database.url, 1).await?;
    store.migrate().await?;
    let terminal = std::io::stderr().is_terminal();
    let show = |p: crate::ops::reseal::Progress| {
        let line = progress_line(p.kind.as_str(), p.moved, p.total);
        // On a terminal the bar redraws in place; in a log, one line per kind when it is done.
        if terminal {
            eprint!("\r{line}");
            let _ = std::io::stderr().flush();
        } else if p.moved >= p.total {
            eprintln!("{line}");
        }
    };
    let mut draft = AuditDraft::new("keys.reseal", Some(ring.active_key_id().to_owned()), None);
    let result = crate::ops::reseal::reseal(&*store, &ring, batch, show).await;
    if terminal {
        eprintln!();
    }
    match result {
        Ok(report) => {
            draft.reason = Some(format!("{} value(s) moved", report.total()));
            store.record_ops_audit(&cli_audit(&draft), None).await?;
            for (kind, moved) in &report.moved {
                println!("{}: {moved} re-sealed", kind.as_str());
            }
            println!("everything is sealed under data key `{}`", ring.active_key_id());
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => refused(error),
    }
}

/// `card PANs  [##########··········]  512/1024`
fn progress_line(what: &str, done: u64, total: u64) -> String {
    const WIDTH: u64 = 30;
    let filled = (done.min(total) * WIDTH).checked_div(total).unwrap_or(WIDTH);
    format!("{what:<18} [{}{}] {done}/{total}", "#".repeat(filled as usize), "·".repeat((WIDTH - filled) as usize))
}

async fn apikey_command(settings: &Settings, command: &ApikeyCommand) -> anyhow::Result<ExitCode> {
    use crate::domain::scopes;
    use crate::ops::api_keys;
    let store = crate::store::connect(&settings.database.url, 1).await?;
    store.migrate().await?;
    let correlation_id = || uuid::Uuid::new_v4().to_string();
    match command {
        ApikeyCommand::Create { name, scopes: names, rate_limit_per_minute } => {
            let parsed = scopes::parse_all(names.iter().map(String::as_str))
                .map_err(|bad| anyhow::anyhow!("`{bad}` is not a scope ({})", scopes::Scope::ALL_NAMES))?;
            let actor = audit::cli_actor();
            let (new, record) = match api_keys::create(
                &*store,
                name,
                &parsed,
                *rate_limit_per_minute,
                &actor,
                correlation_id(),
            )
            .await
            {
                Ok(created) => created,
                Err(error) => return refused(error),
            };
            println!("id:     {}", new.id);
            println!("scopes: {}", record.scopes.join(" "));
            println!("key:    {}", new.key.as_str());
            eprintln!(
                "The key is shown once and stored nowhere: give it to its holder now (Authorization: Bearer <key>)."
            );
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::List => {
            for key in api_keys::list(&*store).await? {
                println!(
                    "{}  {:<24} scopes={} rate_limit={} created={} {}",
                    key.id,
                    key.name,
                    key.scopes.join(","),
                    key.rate_limit_per_minute.map_or_else(|| "default".to_owned(), |n| format!("{n}/min")),
                    ts(key.created_at),
                    key.revoked_at.map_or_else(|| "live".to_owned(), |t| format!("revoked={}", ts(t))),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ApikeyCommand::Revoke { id, reason } => {
            match api_keys::revoke(&*store, id, reason.as_deref(), &audit::cli_actor(), correlation_id()).await {
                Ok(()) => {
                    println!("{id}: revoked");
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => refused(error),
            }
        }
    }
}

fn ts(t: time::OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

async fn outbox_command(settings: &Settings, command: &OutboxCommand) -> anyhow::Result<ExitCode> {
    use crate::ops::outbox;
    use crate::outbox::OutboxStatus;
    use crate::store::{OutboxEntry, OutboxFilter, ReplaySelector};
    use time::format_description::well_known::Rfc3339;
    let store = crate::store::connect(&settings.database.url, 1).await?;
    store.migrate().await?;
    let line = |e: &OutboxEntry| {
        format!(
            "{}  {:<9} {:<14} {:<28} key={} attempts={} created={} next={}{}",
            e.record.id,
            e.status,
            e.record.destination,
            e.record.event_type(),
            e.record.ordering_key,
            e.attempts,
            ts(e.record.created_at),
            ts(e.next_attempt_at),
            e.last_error.as_deref().map(|err| format!("  last_error={err}")).unwrap_or_default()
        )
    };
    // Runs an audited write: its audit row once it succeeded, its outcome printed.
    async fn write<T>(
        store: &dyn crate::store::Store,
        mut draft: AuditDraft,
        action: impl AsyncFnOnce(&mut AuditDraft) -> Result<T, OpsError>,
        done: impl FnOnce(T),
    ) -> anyhow::Result<ExitCode> {
        match action(&mut draft).await {
            Ok(value) => {
                store.record_ops_audit(&cli_audit(&draft), None).await?;
                done(value);
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => refused(error),
        }
    }
    match command {
        OutboxCommand::List { status, card, limit } => {
            let status = match status.as_deref() {
                None => None,
                Some(s) => Some(
                    OutboxStatus::parse(s)
                        .ok_or_else(|| anyhow::anyhow!("--status must be pending, held, delivered or dead"))?,
                ),
            };
            let filter = OutboxFilter { status, ordering_key: card.clone(), limit: *limit };
            for entry in outbox::list(&*store, &filter).await? {
                println!("{}", line(&entry));
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::Show { id } => match outbox::find(&*store, &id.to_string()).await {
            Ok(e) => {
                println!("{}", line(&e));
                println!("seq: {}", e.seq);
                println!(
                    "lease: {} until {}",
                    e.lease_owner.as_deref().unwrap_or("-"),
                    e.lease_until.map(ts).unwrap_or_default()
                );
                println!("delivered_at: {}", e.delivered_at.map(ts).unwrap_or_default());
                println!("not_after: {}", e.record.not_after.map(ts).unwrap_or_default());
                println!("correlation_id: {}", e.record.correlation_id.as_deref().unwrap_or("-"));
                println!("payload: {}", e.record.message.to_operator_json());
                Ok(ExitCode::SUCCESS)
            }
            Err(error) => refused(error),
        },
        OutboxCommand::Retry { id } => {
            let draft = AuditDraft::new("outbox.retry", Some(id.to_string()), None);
            let id = id.to_string();
            write(&*store, draft, async |d| outbox::retry(&*store, &id, d).await, |_| println!("{id}: due now")).await
        }
        OutboxCommand::Skip { id } => {
            let draft = AuditDraft::new("outbox.skip", Some(id.to_string()), None);
            let id = id.to_string();
            write(&*store, draft, async |d| outbox::skip(&*store, &id, d).await, |_| println!("{id}: skipped (dead)"))
                .await
        }
        OutboxCommand::Replay { id, card, since, until, include_delivered } => {
            let parse = |s: &str| {
                time::OffsetDateTime::parse(s, &Rfc3339).with_context(|| format!("`{s}` is not an RFC 3339 time"))
            };
            let selector = match (id, card, since, until) {
                (Some(id), _, _, _) => ReplaySelector::Id(*id),
                (_, Some(card), _, _) => ReplaySelector::OrderingKey(card.clone()),
                (_, _, Some(since), Some(until)) => ReplaySelector::CreatedBetween(parse(since)?, parse(until)?),
                _ => anyhow::bail!("pass --id, --card, or --since and --until"),
            };
            let draft = AuditDraft::new("outbox.replay", None, None);
            let replay = async |d: &mut AuditDraft| outbox::replay(&*store, &selector, *include_delivered, d).await;
            write(&*store, draft, replay, |count| println!("{count} row(s) queued for delivery again")).await
        }
    }
}

/// `tokens reconcile`: the mirror of one card, or of every card it holds, against TMP's lists;
/// one audit row for the run. A card TMP cannot list (or lists with an unusable id) is reported
/// and the others go on (exit 2); the database failing stops the run (exit 1).
pub async fn reconcile_command(
    settings: &Settings,
    card: Option<&str>,
    all: bool,
    mode: crate::ops::tokens::Mode,
) -> anyhow::Result<ExitCode> {
    use crate::ops::tokens::LeftBecause;
    let store = crate::store::connect(&settings.database.url, 1).await?;
    store.migrate().await?;
    let tmp = crate::startup::ops_tmp_client(settings)?;
    let cards = match card {
        Some(card) => vec![card.to_owned()],
        None if all => store.token_card_ids().await?,
        None => anyhow::bail!("pass --card ID or --all"),
    };
    let (mut repaired, mut left, mut failed) = (0usize, 0usize, 0usize);
    let mut stopped = None;
    for (n, card_id) in cards.iter().enumerate() {
        let correlation_id = uuid::Uuid::new_v4().to_string();
        let list = match tmp.card_tokens(card_id, &correlation_id).await {
            Ok(list) => list,
            Err(error) => {
                failed += 1;
                eprintln!("{card_id}: TMP did not list its tokens ({error}); try again later");
                continue;
            }
        };
        let report = match crate::ops::tokens::reconcile(&*store, &list, mode, time::OffsetDateTime::now_utc()).await {
            Ok(report) => report,
            Err(OpsError::Invalid(problem)) => {
                failed += 1;
                eprintln!("{card_id}: {problem}");
                continue;
            }
            Err(error) => {
                // The database failed: stop, but audit what the run has already written.
                stopped = Some(anyhow::Error::from(error));
                break;
            }
        };
        println!(
            "[{}/{}] {card_id}: {} token(s) checked, {} drifted",
            n + 1,
            cards.len(),
            report.checked,
            report.drift.len()
        );
        for d in &report.drift {
            let before = d.mirror_status.map_or("-", |s| s.as_str());
            let after = d.tmp_status.map_or("not listed", |s| s.as_str());
            let result = match (d.repaired, d.left) {
                (true, _) => "repaired",
                (false, Some(LeftBecause::NotListedAtTmp)) => {
                    "left: deactivate it with --deactivate-unknown once TMP is known to have dropped it"
                }
                (false, _) => "left: the mirror holds a newer event",
            };
            if d.repaired {
                repaired += 1
            } else {
                left += 1
            }
            println!("  {} {}: {before} -> {after} ({result})", d.token_id, d.kind.as_str());
        }
    }
    let action = match mode {
        crate::ops::tokens::Mode::Repair { deactivate_unknown: true } => crate::ops::tokens::DEACTIVATE_UNKNOWN_ACTION,
        _ => "tokens.reconcile",
    };
    let mut draft = AuditDraft::new(action, Some(card.unwrap_or("all").to_owned()), card.map(str::to_owned));
    draft.reason = Some(format!(
        "{} card(s), {repaired} token(s) repaired, {left} left, {failed} card(s) not reconciled{}",
        cards.len(),
        if stopped.is_some() { ", stopped by a database error" } else { "" }
    ));
    let audited = store.record_ops_audit(&cli_audit(&draft), None).await;
    if let Some(error) = stopped {
        // Best effort: the database that failed the run may refuse the audit row too.
        // The failing card's repairs before the error may be written too; a new run finds what is
        // left and writes nothing twice (a repair's event id follows from TMP's state).
        return Err(error.context("the reconciliation stopped: run it again to finish"));
    }
    audited?;
    println!(
        "{} card(s) reconciled, {repaired} token(s) repaired, {left} left as they are, {failed} card(s) failed",
        cards.len() - failed
    );
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(2) })
}

fn generate_key(kind: KeyKind, out: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    use crate::keys::{RSA_BITS, random_hex, write_private};
    if let KeyKind::Hmac = kind {
        let (_, whsec) = tmp_protocol::webhook::WebhookSecret::generate();
        println!("{}", whsec.as_str());
        return Ok(ExitCode::SUCCESS);
    }
    let out = out.context("--out FILE is required for this key kind")?;
    let contents = match kind {
        KeyKind::Jwe => tmp_protocol::jwk::RsaKeyPair::generate(RSA_BITS)?.to_pkcs8_pem()?,
        KeyKind::Data | KeyKind::Fingerprint => random_hex(32),
        KeyKind::Cvk => random_hex(16),
        KeyKind::Hmac => unreachable!("handled above"),
    };
    write_private(out, contents.as_bytes())?;
    println!("wrote {} (mode 0600)", out.display());
    Ok(ExitCode::SUCCESS)
}
