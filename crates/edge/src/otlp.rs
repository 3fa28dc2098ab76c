//! Optional export of the kit's spans to an OpenTelemetry collector: OTLP over HTTP with the JSON
//! encoding (`POST {endpoint}/v1/traces`, <https://opentelemetry.io/docs/specs/otlp/>), which
//! every OTLP collector accepts.
//!
//! The spans are the hops the W3C `traceparent` already names ([`crate::correlation`]), so the
//! exported tree and the headers on the wire agree: a request served is a server span whose id
//! is the hop's own and whose parent is the caller's; each outbound call is a client span whose
//! id is the parent id the receiver sees; a delivery made later from the outbox is an internal
//! span under the request that queued it. A collector therefore links TMP's spans, the
//! adapter's and the issuer's sink's into one trace.
//!
//! Written here rather than taken from the `opentelemetry` crates: those bring their own HTTP
//! client (reqwest or tonic) beside the kit's awc, and a second span model beside the one the
//! headers already carry. What is exported is chosen here: names are route patterns and
//! methods, attributes are the method, route, status, peer address and outbox destination —
//! never a path, body or header value that could hold card data or a secret.
//!
//! Export never slows the work it describes: spans go into a bounded queue and a background
//! task posts them in batches; a full queue drops the span (counted, and logged once per
//! flush), a collector that fails loses that batch (logged).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::http::Method;
use serde_json::{Value, json};
use tmp_protocol::trace_context::TraceParent;
use tokio::sync::mpsc;

use crate::client::{ClientOptions, ClientTls, HttpClient, Request};

/// Spans in one export request at most (OTLP collectors take far more; this bounds a request).
const MAX_BATCH: usize = 512;

/// Where and how spans are exported.
#[derive(Debug, Clone)]
pub struct OtlpSettings {
    /// The collector's base URL (`http://collector:4318`); spans go to `{endpoint}/v1/traces`.
    pub endpoint: String,
    /// `service.name` of every span.
    pub service_name: String,
    /// Longest a span waits in the queue before it is sent.
    pub flush_interval: Duration,
    /// Spans queued at most; beyond, new spans are dropped.
    pub max_queued_spans: usize,
    /// Timeout of one export request.
    pub timeout: Duration,
}

/// OTLP's span kinds (the values of `Span.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Internal = 1,
    Server = 2,
    Client = 3,
}

#[derive(Debug, Clone)]
pub enum AttributeValue {
    Str(String),
    Int(i64),
}

/// One finished span.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub name: String,
    pub kind: SpanKind,
    /// The span's place: its trace, and as the parent id its own span id (what it sends on).
    pub position: TraceParent,
    /// The span it is part of: the caller's id, the hop's, or none for a trace's first span.
    pub parent: Option<TraceParent>,
    pub start: SystemTime,
    pub end: SystemTime,
    pub failed: bool,
    pub attributes: Vec<(&'static str, AttributeValue)>,
}

/// The handle spans are recorded through: cheap to clone; when the last clone is gone the
/// exporter sends what is queued and stops.
#[derive(Clone)]
pub struct Exporter {
    queue: mpsc::Sender<SpanRecord>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Exporter")
    }
}

impl Exporter {
    /// Starts the export task on the current tokio runtime.
    pub fn start(settings: &OtlpSettings, tls: ClientTls<'_>) -> anyhow::Result<Exporter> {
        let endpoint = settings.endpoint.trim_end_matches('/');
        let http = HttpClient::new(tls, ClientOptions::with_timeout(settings.timeout))?;
        let (queue, spans) = mpsc::channel(settings.max_queued_spans.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let task = ExportTask {
            http,
            url: format!("{endpoint}/v1/traces"),
            service_name: settings.service_name.clone(),
            dropped: dropped.clone(),
        };
        tokio::spawn(task.run(spans, settings.flush_interval));
        Ok(Exporter { queue, dropped })
    }

    /// Queues a finished span; never waits.
    pub fn record(&self, span: SpanRecord) {
        if self.queue.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

struct ExportTask {
    http: HttpClient,
    url: String,
    service_name: String,
    dropped: Arc<AtomicU64>,
}

impl ExportTask {
    async fn run(self, mut spans: mpsc::Receiver<SpanRecord>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                span = spans.recv() => match span {
                    Some(span) => {
                        batch.push(span);
                        if batch.len() >= MAX_BATCH {
                            self.flush(&mut batch).await;
                        }
                    }
                    None => {
                        self.flush(&mut batch).await;
                        return;
                    }
                },
                _ = ticker.tick() => self.flush(&mut batch).await,
            }
        }
    }

    async fn flush(&self, batch: &mut Vec<SpanRecord>) {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "OTLP export queue full: spans dropped (otlp.max_queued_spans)");
        }
        if batch.is_empty() {
            return;
        }
        let body = export_request(&self.service_name, batch);
        let count = batch.len();
        batch.clear();
        let request = Request::new(Method::POST, self.url.as_str()).json_body(body.to_string()).ignore_success_body();
        match self.http.send(request).await {
            Ok(answer) if answer.status.is_success() => {}
            Ok(answer) => {
                tracing::warn!(status = answer.status.as_u16(), spans = count, "OTLP collector refused spans")
            }
            Err(error) => tracing::warn!(%error, spans = count, "OTLP export failed: spans lost"),
        }
    }
}

/// An `ExportTraceServiceRequest` in OTLP's JSON encoding (ids in hex, times as strings).
fn export_request(service_name: &str, spans: &[SpanRecord]) -> Value {
    let spans: Vec<Value> = spans.iter().map(span_json).collect();
    json!({"resourceSpans": [{
        "resource": {"attributes": [attribute("service.name", &AttributeValue::Str(service_name.to_owned()))]},
        "scopeSpans": [{"scope": {"name": "tmp-kit", "version": env!("CARGO_PKG_VERSION")}, "spans": spans}],
    }]})
}

fn span_json(span: &SpanRecord) -> Value {
    let nanos = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()).to_string();
    let mut value = json!({
        "traceId": span.position.trace_id(),
        "spanId": span.position.parent_id(),
        "name": span.name,
        "kind": span.kind as u8,
        "startTimeUnixNano": nanos(span.start),
        "endTimeUnixNano": nanos(span.end),
        "attributes": span.attributes.iter().map(|(key, value)| attribute(key, value)).collect::<Vec<_>>(),
        // STATUS_CODE_ERROR (2) or UNSET (0): OTel leaves OK for an operator to set.
        "status": {"code": if span.failed { 2 } else { 0 }},
    });
    if let Some(parent) = &span.parent {
        value["parentSpanId"] = json!(parent.parent_id());
    }
    value
}

fn attribute(key: &str, value: &AttributeValue) -> Value {
    let value = match value {
        AttributeValue::Str(s) => json!({"stringValue": s}),
        // OTLP's JSON encodes 64-bit integers as strings.
        AttributeValue::Int(i) => json!({"intValue": i.to_string()}),
    };
    json!({"key": key, "value": value})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_is_encoded_as_otlp_json_with_hex_ids_and_its_parent() {
        let caller = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let own = caller.child();
        let start = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let span = SpanRecord {
            name: "POST /issuer-api/v1/tokens/events".into(),
            kind: SpanKind::Server,
            position: own,
            parent: Some(caller),
            start,
            end: start + Duration::from_millis(5),
            failed: true,
            attributes: vec![("http.response.status_code", AttributeValue::Int(503))],
        };
        let body = export_request("tmp-adapter", &[span]);
        let resource = &body["resourceSpans"][0];
        assert_eq!(resource["resource"]["attributes"][0]["value"]["stringValue"], "tmp-adapter");
        let span = &resource["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(span["spanId"], own.parent_id());
        assert_ne!(span["spanId"], span["parentSpanId"]);
        assert_eq!((span["kind"].as_u64(), span["status"]["code"].as_u64()), (Some(2), Some(2)));
        assert_eq!(span["startTimeUnixNano"], "1700000000123000000");
        assert_eq!(span["endTimeUnixNano"], "1700000000128000000");
        assert_eq!(span["attributes"][0], json!({"key": "http.response.status_code", "value": {"intValue": "503"}}));
    }

    #[test]
    fn the_first_span_of_a_trace_has_no_parent() {
        let now = SystemTime::now();
        let span = SpanRecord {
            name: "deliver".into(),
            kind: SpanKind::Internal,
            position: TraceParent::start(),
            parent: None,
            start: now,
            end: now,
            failed: false,
            attributes: vec![],
        };
        let json = span_json(&span);
        assert!(json.get("parentSpanId").is_none(), "{json}");
        assert_eq!(json["status"]["code"], 0);
    }
}
