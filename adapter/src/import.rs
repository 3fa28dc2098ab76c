//! `tmp-adapter import FILE`: loads cards into the local registry from JSONL or CSV.
//!
//! Every line is checked first and every bad one reported with its line number (never with
//! its content: it may hold a PAN). Nothing is written when a line is bad, unless
//! `--skip-invalid`; then the good lines are written, all in one transaction.
//!
//! Fields (JSONL keys and CSV header names alike): `cardId`, `pan`, `expiry` (`MM/YY`),
//! `status` (`ACTIVE`, `BLOCKED`, `CLOSED`; default `ACTIVE`), `phone`, `email`,
//! `productCategory`.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use clap::ValueEnum;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Deserialize;
use time::OffsetDateTime;
use tmp_protocol::enums::IssuerCardStatus;
use tmp_protocol::fields::{FreeText, Id, Phone};
use tmp_protocol::sensitive::{Expiry, Pan};

use crate::config::Settings;
use crate::crypto::aad;
use crate::crypto::at_rest::{DataKeyRing, Fingerprinter};
use crate::keys::KeyMaterial;
use crate::store::CardRecord;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImportFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    pub format: Option<ImportFormat>,
    pub skip_invalid: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based line number in the file (the CSV header is line 1).
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub imported: u64,
    pub problems: Vec<LineProblem>,
}

/// One card as it appears in the file.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CardLine {
    card_id: String,
    pan: Pan,
    expiry: Expiry,
    #[serde(default)]
    status: Option<IssuerCardStatus>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    product_category: Option<String>,
}

/// Parses, checks and (unless a line is bad and `skip_invalid` is off) writes the file.
pub async fn run(settings: &Settings, file: &Path, options: ImportOptions) -> anyhow::Result<ImportReport> {
    let format = options.format.or_else(|| format_from_extension(file)).with_context(|| {
        format!("cannot tell the format of {} from its extension: pass --format jsonl|csv", file.display())
    })?;
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let keys = KeyMaterial::load(settings)?;
    let (lines, mut problems) = parse(&text, format, &keys.data_keys.current(), &keys.fingerprinter)?;
    let store = crate::store::connect(&settings.database.url, 1).await?;
    store.migrate().await?;
    // A PAN already registered under another card id is a bad line too, reported before
    // anything is written (the store would refuse the whole batch).
    let mut records = Vec::with_capacity(lines.len());
    for (line, record) in lines {
        match store.find_card_by_fingerprint(&record.pan_fingerprint).await? {
            Some(existing) if existing.card_id != record.card_id => problems.push(LineProblem {
                line,
                message: format!("this PAN is already registered under card id `{}`", existing.card_id),
            }),
            _ => records.push(record),
        }
    }
    problems.sort_by_key(|p| p.line);
    let mut report = ImportReport { imported: 0, problems };
    if !report.problems.is_empty() && !options.skip_invalid {
        return Ok(report);
    }
    report.imported = store.upsert_cards(&records).await.context("writing the cards")?;
    Ok(report)
}

fn format_from_extension(file: &Path) -> Option<ImportFormat> {
    match file.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "jsonl" | "ndjson" => Some(ImportFormat::Jsonl),
        "csv" => Some(ImportFormat::Csv),
        _ => None,
    }
}

/// A registry record and the line it came from.
pub type NumberedCard = (usize, CardRecord);

/// Turns the file into registry records (with their line numbers) and a list of bad lines.
pub fn parse(
    text: &str,
    format: ImportFormat,
    data_keys: &DataKeyRing,
    fingerprinter: &Arc<Fingerprinter>,
) -> anyhow::Result<(Vec<NumberedCard>, Vec<LineProblem>)> {
    let lines: Vec<(usize, Result<CardLine, String>)> = match format {
        ImportFormat::Jsonl => text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(i, line)| (i + 1, parse_json_line(line)))
            .collect(),
        ImportFormat::Csv => parse_csv(text)?,
    };

    let progress = ProgressBar::new(lines.len() as u64);
    progress.set_style(
        ProgressStyle::with_template("{spinner} checking and encrypting {pos}/{len} cards [{bar:30}] {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    let now = OffsetDateTime::now_utc();
    let mut records = Vec::with_capacity(lines.len());
    let mut problems = Vec::new();
    let mut card_ids = HashSet::new();
    let mut fingerprints = HashSet::new();
    for (line, parsed) in lines {
        progress.inc(1);
        let card = match parsed.and_then(|card| check(card, &mut card_ids)) {
            Ok(card) => card,
            Err(message) => {
                problems.push(LineProblem { line, message });
                continue;
            }
        };
        let fingerprint = fingerprinter.fingerprint(&card.pan).to_vec();
        if !fingerprints.insert(fingerprint.clone()) {
            problems.push(LineProblem { line, message: "the same PAN appears on an earlier line".into() });
            continue;
        }
        let sealed = data_keys.encrypt(card.pan.expose().as_bytes(), &aad::card_pan(&card.card_id));
        records.push((
            line,
            CardRecord {
                card_id: card.card_id,
                pan_fingerprint: fingerprint,
                pan_ciphertext: sealed.bytes,
                pan_key_id: sealed.key_id,
                pan_last4: card.pan.last4().to_owned(),
                expiry_yymm: card.expiry.yymm(),
                status: card.status.unwrap_or(IssuerCardStatus::Active),
                cardholder_phone: card.phone,
                cardholder_email: card.email,
                product_category: card.product_category,
                updated_at: now,
            },
        ));
    }
    progress.finish_and_clear();
    Ok((records, problems))
}

fn parse_json_line(line: &str) -> Result<CardLine, String> {
    tmp_protocol::json::parse(line.as_bytes(), "").map_err(|e| match e {
        tmp_protocol::json::JsonError::Syntax(_) => "not a valid JSON object".to_owned(),
        tmp_protocol::json::JsonError::Shape(m) => m,
    })
}

fn parse_csv(text: &str) -> anyhow::Result<Vec<(usize, Result<CardLine, String>)>> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(text.as_bytes());
    let headers = reader.headers().context("the CSV file has no header line")?.clone();
    let mut lines = Vec::new();
    for (index, record) in reader.records().enumerate() {
        let line = record.as_ref().ok().and_then(|r| r.position()).map_or(index + 2, |p| p.line() as usize);
        let parsed = match record {
            Err(_) => Err("not a valid CSV record".to_owned()),
            Ok(record) if record.len() != headers.len() => {
                Err(format!("has {} fields, the header has {}", record.len(), headers.len()))
            }
            Ok(record) => {
                // Reuse the JSON field rules: empty CSV cells are absent fields.
                let object: serde_json::Map<String, serde_json::Value> = headers
                    .iter()
                    .zip(record.iter())
                    .filter(|(_, value)| !value.is_empty())
                    .map(|(name, value)| (name.to_owned(), serde_json::Value::String(value.to_owned())))
                    .collect();
                parse_json_line(&serde_json::Value::Object(object).to_string())
            }
        };
        lines.push((line, parsed));
    }
    Ok(lines)
}

fn check(card: CardLine, card_ids: &mut HashSet<String>) -> Result<CardLine, String> {
    Id::parse(card.card_id.as_str()).map_err(|e| format!("`cardId` {e}"))?;
    if !card_ids.insert(card.card_id.clone()) {
        return Err(format!("card id `{}` appears on an earlier line", card.card_id));
    }
    if let Some(phone) = &card.phone {
        Phone::parse(phone.as_str()).map_err(|e| format!("`phone` {e}"))?;
    }
    for (field, value) in [("email", &card.email), ("productCategory", &card.product_category)] {
        if let Some(value) = value {
            FreeText::parse(value.as_str()).map_err(|e| format!("`{field}` {e}"))?;
        }
    }
    Ok(card)
}
