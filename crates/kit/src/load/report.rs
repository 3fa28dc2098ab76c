//! `load --json FILE`: the run's figures as JSON (for CI and for comparing runs), and beside it
//! `FILE` with `.svg` for `.json`: latency against offered rate for each scenario, every step of
//! the peak search and the half-peak run, so a reader sees where latency bends.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::open_loop::RunStats;

/// One run of `load`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `SQLite` or `PostgreSQL`.
    pub database: String,
    pub cores: usize,
    pub release: bool,
    /// Each ceiling measured in the run, requests or operations per second, by name (`rsa`,
    /// `openssl-rsa`, `http`, `db`).
    pub ceilings: BTreeMap<String, f64>,
    pub scenarios: Vec<ScenarioReport>,
    /// Resident memory of the whole `load` process after the run (generator, mock, adapter).
    pub rss_mb: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScenarioReport {
    pub name: String,
    /// Highest rate answered at ≥ 95% with no error.
    pub peak: f64,
    pub ceiling_name: String,
    pub ceiling_rate: f64,
    /// `peak / ceiling_rate`.
    pub ratio: f64,
    /// The latency run at half of peak.
    pub half_peak: Point,
    /// Every step of the peak search, in the order run.
    pub steps: Vec<Point>,
}

/// One open-loop run: what was offered, what was achieved, and the latency percentiles.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Point {
    pub offered: f64,
    pub achieved: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub errors: u64,
}

impl Point {
    pub fn of(stats: &RunStats) -> Point {
        Point {
            offered: stats.offered_rate,
            achieved: stats.achieved_rate,
            p50_ms: stats.percentile_ms(0.50),
            p99_ms: stats.percentile_ms(0.99),
            p999_ms: stats.percentile_ms(0.999),
            errors: stats.errors,
        }
    }
}

/// Writes the report to `path` and its chart next to it (`.svg`).
pub fn write(report: &Report, path: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    std::fs::write(path, serde_json::to_vec_pretty(report)?)?;
    let chart = path.with_extension("svg");
    std::fs::write(&chart, svg(report))?;
    Ok(chart)
}

/// Panel size and margins of the chart, in SVG units.
const PANEL_W: f64 = 460.0;
const PANEL_H: f64 = 300.0;
const MARGIN: f64 = 56.0;

/// One panel per scenario: offered rate (log) across, p50 and p99 latency (log, ms) up; points
/// that had errors or did not keep up are drawn hollow; the half-peak run is marked.
pub fn svg(report: &Report) -> String {
    let columns = 2;
    let rows = report.scenarios.len().div_ceil(columns).max(1);
    let (width, height) = (columns as f64 * (PANEL_W + MARGIN), rows as f64 * (PANEL_H + MARGIN * 1.5) + 40.0);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="11">"#
    );
    let _ = write!(
        out,
        r#"<text x="10" y="20" font-size="14">tmp-kit load · {} · {} cores · latency against offered rate (p50 blue, p99 red; hollow: errors or not kept up; ring: half peak)</text>"#,
        escape(&report.database),
        report.cores
    );
    for (i, scenario) in report.scenarios.iter().enumerate() {
        let x0 = (i % columns) as f64 * (PANEL_W + MARGIN) + MARGIN;
        let y0 = (i / columns) as f64 * (PANEL_H + MARGIN * 1.5) + MARGIN;
        panel(&mut out, scenario, x0, y0);
    }
    out.push_str("</svg>\n");
    out
}

fn panel(out: &mut String, scenario: &ScenarioReport, x0: f64, y0: f64) {
    let mut points: Vec<Point> = scenario.steps.clone();
    points.push(scenario.half_peak);
    points.retain(|p| p.offered > 0.0);
    points.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    let log = |v: f64| v.max(1e-3).log10();
    let (xs, ys): (Vec<f64>, Vec<f64>) = points.iter().map(|p| (log(p.offered), log(p.p99_ms.max(p.p50_ms)))).unzip();
    let (x_min, x_max) = bounds(&xs, log(10.0), log(100_000.0));
    let y_lows: Vec<f64> = points.iter().map(|p| log(p.p50_ms)).collect();
    let (y_min, _) = bounds(&y_lows, log(0.1), log(1000.0));
    let (_, y_max) = bounds(&ys, log(0.1), log(1000.0));
    let x = |v: f64| x0 + (log(v) - x_min) / (x_max - x_min) * PANEL_W;
    let y = |v: f64| y0 + PANEL_H - (log(v) - y_min) / (y_max - y_min) * PANEL_H;
    let _ = write!(
        out,
        r##"<rect x="{x0:.1}" y="{y0:.1}" width="{PANEL_W}" height="{PANEL_H}" fill="none" stroke="#999"/><text x="{:.1}" y="{:.1}" font-size="13">{} — peak {:.0}/s, {:.0}% of {} {:.0}/s</text>"##,
        x0,
        y0 - 8.0,
        escape(&scenario.name),
        scenario.peak,
        100.0 * scenario.ratio,
        escape(&scenario.ceiling_name),
        scenario.ceiling_rate
    );
    // Decade grid lines with labels.
    for exponent in (x_min.floor() as i32)..=(x_max.ceil() as i32) {
        let v = 10f64.powi(exponent);
        if (x_min..=x_max).contains(&log(v)) {
            let _ = write!(
                out,
                r##"<line x1="{0:.1}" y1="{y0:.1}" x2="{0:.1}" y2="{1:.1}" stroke="#eee"/><text x="{0:.1}" y="{2:.1}" text-anchor="middle">{3}/s</text>"##,
                x(v),
                y0 + PANEL_H,
                y0 + PANEL_H + 14.0,
                v
            );
        }
    }
    for exponent in (y_min.floor() as i32)..=(y_max.ceil() as i32) {
        let v = 10f64.powi(exponent);
        if (y_min..=y_max).contains(&log(v)) {
            let _ = write!(
                out,
                r##"<line x1="{x0:.1}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#eee"/><text x="{2:.1}" y="{0:.1}" text-anchor="end">{3} ms</text>"##,
                y(v),
                x0 + PANEL_W,
                x0 - 4.0,
                v
            );
        }
    }
    for (color, value) in [("#1f5fbf", (|p: &Point| p.p50_ms) as fn(&Point) -> f64), ("#c0392b", |p: &Point| p.p99_ms)]
    {
        let line: Vec<String> = points.iter().map(|p| format!("{:.1},{:.1}", x(p.offered), y(value(p)))).collect();
        let _ = write!(out, r#"<polyline fill="none" stroke="{color}" points="{}"/>"#, line.join(" "));
        for p in &points {
            let kept_up = p.errors == 0 && p.achieved >= 0.95 * p.offered;
            let fill = if kept_up { color } else { "white" };
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{fill}" stroke="{color}"/>"#,
                x(p.offered),
                y(value(p))
            );
        }
    }
    let half = scenario.half_peak;
    let _ = write!(
        out,
        r#"<circle cx="{:.1}" cy="{:.1}" r="7" fill="none" stroke="black"/>"#,
        x(half.offered),
        y(half.p99_ms)
    );
}

/// The range of `values` (log10), or the given one when there are none; never empty.
fn bounds(values: &[f64], low: f64, high: f64) -> (f64, f64) {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !min.is_finite() || !max.is_finite() {
        return (low, high);
    }
    let (min, max) = (min.floor(), max.ceil());
    if max - min < 1.0 { (min, min + 1.0) } else { (min, max) }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
