//! The load generator and the soak's check, without a kit: the open-loop scheduler measures
//! from each request's due time (tokio's paused clock, so nothing here depends on the
//! machine's speed), and the soak's journal check tells lost, misordered and doubled events.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tmp_kit::load::open_loop;

/// A server that answers one request at a time, 20 ms each (50/s), offered 100/s for 1 s:
/// request i is due at 10·i ms and answered at 20·(i+1) ms. Measured from the due time the
/// last requests wait about a second; measured from sending they would all take 20 ms.
#[tokio::test(start_paused = true)]
async fn latency_is_measured_from_the_due_time() {
    let server = Arc::new(tokio::sync::Mutex::new(()));
    let send: open_loop::Send = Arc::new(move |_| {
        let server = server.clone();
        Box::pin(async move {
            let _busy = server.lock().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        })
    });
    let stats = open_loop::run(100.0, Duration::from_secs(1), send).await;
    assert_eq!((stats.sent, stats.ok, stats.errors), (100, 100, 0));
    assert!(stats.latency_us.max() >= 900_000, "max {} µs", stats.latency_us.max());
    assert!(stats.latency_us.min() >= 20_000, "min {} µs", stats.latency_us.min());
    assert!(stats.achieved_rate < 60.0, "achieved {}", stats.achieved_rate);
    assert!(!stats.kept_up());
}

#[tokio::test(start_paused = true)]
async fn a_fast_server_keeps_up_and_errors_are_counted() {
    let send: open_loop::Send = Arc::new(|i| {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            anyhow::ensure!(i != 7, "HTTP 503");
            Ok(())
        })
    });
    let stats = open_loop::run(200.0, Duration::from_secs(1), send).await;
    assert_eq!((stats.sent, stats.ok, stats.errors), (200, 199, 1));
    assert_eq!(stats.first_error.as_deref(), Some("HTTP 503"));
    assert!(!stats.kept_up(), "an error fails the step");
}

fn delivery(card: &str, k: u64, key: &str, status: u16) -> Value {
    json!({"direction": "received", "method": "POST",
           "path": format!("/tmp-api/v1/cards/{card}/status"), "status": status,
           "idempotencyKey": key, "body": {"status": "BLOCKED", "reason": format!("soak-{k}")}})
}

#[test]
fn the_soak_check_tells_lost_misordered_and_doubled_events() {
    let expected = BTreeMap::from([("a".to_owned(), 3), ("b".to_owned(), 2)]);
    let clean = [
        delivery("a", 0, "k0", 200),
        delivery("a", 1, "k1", 503),
        delivery("a", 1, "k1", 200),
        delivery("b", 0, "m0", 200),
        delivery("a", 1, "k1", 200), // a retry answered from the idempotency record
        delivery("a", 2, "k2", 200),
        delivery("b", 1, "m1", 200),
    ];
    let report = tmp_kit::soak::check_entries(&clean, &expected);
    assert_eq!(
        (report.applied, report.lost, report.out_of_order, report.applied_twice, report.unexpected),
        (5, 0, 0, 0, 0)
    );

    let broken = [
        delivery("a", 1, "k1", 200),
        delivery("a", 0, "k0", 200),  // after 1: out of order
        delivery("a", 0, "k0b", 200), // under another key: applied twice
        delivery("b", 0, "m0", 200),  // b's event 1 never arrives: lost
    ];
    let report = tmp_kit::soak::check_entries(&broken, &expected);
    assert_eq!((report.lost, report.out_of_order, report.applied_twice), (2, 1, 1));
}

/// `load --json`: the figures survive the trip through the file, and the chart draws every
/// scenario's p50 and p99 over every step, marking the steps that did not keep up.
#[test]
fn the_json_report_round_trips_and_its_chart_draws_every_scenario() {
    use tmp_kit::load::report::{Point, Report, ScenarioReport};
    let point = |offered: f64, p50: f64, p99: f64, errors: u64| Point {
        offered,
        achieved: if errors == 0 { offered } else { offered / 2.0 },
        p50_ms: p50,
        p99_ms: p99,
        p999_ms: p99 * 1.5,
        errors,
    };
    let scenario = |name: &str| ScenarioReport {
        name: name.into(),
        peak: 800.0,
        ceiling_name: "http".into(),
        ceiling_rate: 25_600.0,
        ratio: 800.0 / 25_600.0,
        half_peak: point(400.0, 3.5, 12.0, 0),
        steps: vec![point(100.0, 2.0, 5.0, 0), point(800.0, 4.0, 20.0, 0), point(1600.0, 900.0, 4000.0, 3)],
    };
    let report = Report {
        database: "SQLite".into(),
        cores: 2,
        release: true,
        ceilings: [("http".to_owned(), 25_600.0)].into(),
        scenarios: vec![scenario("token-events"), scenario("ingest→delivery")],
        rss_mb: 142.8,
    };
    let dir = tempfile::tempdir().unwrap();
    let chart = tmp_kit::load::report::write(&report, &dir.path().join("run.json")).unwrap();
    let read: Report = serde_json::from_slice(&std::fs::read(dir.path().join("run.json")).unwrap()).unwrap();
    assert_eq!(read.scenarios[1].steps, report.scenarios[1].steps);
    assert_eq!(read.scenarios[0].half_peak, report.scenarios[0].half_peak);
    let svg = std::fs::read_to_string(&chart).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<polyline").count(), 4, "p50 and p99 of two scenarios");
    // Four points per scenario and percentile; the overloaded step is hollow on both lines.
    assert_eq!(svg.matches(r#"r="3""#).count(), 16);
    assert_eq!(svg.matches(r#"fill="white""#).count(), 4);
    assert!(svg.contains("token-events") && svg.contains("ingest→delivery") && svg.contains("3% of http"), "{svg}");
}
