//! Every outbound HTTP call of the kit goes through [`HttpClient`]: the adapter's relay, sinks,
//! processor bridge and ops API calls to TMP, mock-tmp's callbacks to the issuer, and the suite's
//! calls to a target. So every part of the kit trusts, presents certificates, times out, bounds
//! answers and refuses redirects the same way; [`SignedClient`] adds the Standard-Webhooks
//! signature, correlation id and idempotency key of the contract's calls.
//!
//! Built on awc, actix's client. An awc `Client` is `!Send` — it belongs to the actix runtime
//! thread that made it — while the kit's callers run on tokio's multi-thread runtime (the relay's
//! delivery tasks, the suite's cases). So an `HttpClient` owns `workers` threads, each running an
//! actix runtime with its own awc `Client` (its own keep-alive connection pool); a request reaches
//! a worker over a channel, runs there as a local task, and its answer — status, headers and the
//! whole body, read under the size limit — comes back over a oneshot. The handle is `Send`,
//! `Sync` and cheap to clone; when the last clone is dropped the workers finish what they were
//! given and stop.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::http::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use anyhow::Context;
use tmp_protocol::headers::{CORRELATION_ID, IDEMPOTENCY_KEY};
use tmp_protocol::trace_context::TRACEPARENT;
use tmp_protocol::webhook::{SignatureHeaders, WebhookSecret};
use tokio::sync::{mpsc, oneshot};

use crate::tls::{ClientIdentity, client_config, install_crypto_provider, platform_client_config};

/// The TLS of an outbound client: which CA the server's certificate must chain to (`None`: the
/// platform's trust store) and which client certificate to present when asked (mTLS).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientTls<'a> {
    pub ca_file: Option<&'a Path>,
    pub identity: Option<ClientIdentity<'a>>,
}

/// Connections a client's worker holds at most unless told otherwise (awc's own default).
pub const DEFAULT_MAX_CONNECTIONS: usize = 100;

/// How a client behaves.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The longest a request may take, from sending to the last byte of the answer.
    pub timeout: Duration,
    /// Largest answer body read; a longer one is refused ([`SendError::TooLarge`]).
    pub body_limit: usize,
    /// Threads (each with its own connection pool) the requests are spread over.
    pub workers: usize,
    /// Connections each worker holds open at once, busy or idle; a request beyond waits for
    /// one (within its timeout). Bounds the file descriptors an overloaded receiver can cost.
    pub max_connections: usize,
}

impl ClientOptions {
    /// One worker of at most [`DEFAULT_MAX_CONNECTIONS`] connections, 1 MiB answers, `timeout`.
    pub fn with_timeout(timeout: Duration) -> ClientOptions {
        ClientOptions { timeout, body_limit: 1024 * 1024, workers: 1, max_connections: DEFAULT_MAX_CONNECTIONS }
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("timeout")]
    Timeout,
    /// No connection could be made (refused, unresolvable, TLS handshake refused).
    #[error("connection failed")]
    Connect,
    /// The connection broke before a complete answer (reset, closed, malformed answer).
    #[error("connection error")]
    Dropped,
    #[error("answer too large")]
    TooLarge,
    /// The request itself could not be made (a bad URL or header); not worth retrying.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl SendError {
    /// The error's class, without detail: what an exported span or a metric may carry.
    pub fn kind(&self) -> &'static str {
        match self {
            SendError::Timeout => "timeout",
            SendError::Connect => "connect",
            SendError::Dropped => "dropped",
            SendError::TooLarge => "too_large",
            SendError::Invalid(_) => "invalid_request",
        }
    }
}

impl SendError {
    /// A short label for logs and the outbox's last error.
    pub fn as_str(&self) -> &'static str {
        match self {
            SendError::Timeout => "timeout",
            SendError::Connect => "connection failed",
            SendError::Dropped => "connection error",
            SendError::TooLarge => "answer too large",
            SendError::Invalid(_) => "invalid request",
        }
    }
}

/// A request to send.
#[derive(Clone)]
pub struct Request {
    pub method: Method,
    pub url: String,
    /// Checked when sent: a name or value that is not valid HTTP is [`SendError::Invalid`].
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
    /// Whether the caller reads a 2xx answer's body. When it does not (a delivery is done once
    /// the receiver said 2xx), a 2xx whose body is too long, too slow or cut off is still a 2xx.
    pub success_body_needed: bool,
}

/// Bodies may hold card data (the processor bridge) and headers secrets (`authorization`): the
/// header names and the body's length only.
impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| name.as_str()).collect();
        f.debug_struct("Request")
            .field("method", &self.method)
            .field("url", &self.url)
            .field("headers", &names)
            .field("body_bytes", &self.body.len())
            .finish()
    }
}

impl Request {
    pub fn new(method: Method, url: impl Into<String>) -> Request {
        Request { method, url: url.into(), headers: Vec::new(), body: Bytes::new(), success_body_needed: true }
    }

    pub fn get(url: impl Into<String>) -> Request {
        Request::new(Method::GET, url)
    }

    pub fn post(url: impl Into<String>) -> Request {
        Request::new(Method::POST, url)
    }

    /// Adds a header; a name or value that is not valid HTTP is refused when sent.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The value of header `name` (case-insensitive), if set.
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// A JSON body (`content-type: application/json`).
    pub fn json_body(self, body: impl Into<Bytes>) -> Request {
        let mut request = self.header(CONTENT_TYPE.as_str(), "application/json");
        request.body = body.into();
        request
    }

    /// The caller does not read a 2xx answer's body (see [`Request::success_body_needed`]).
    pub fn ignore_success_body(mut self) -> Request {
        self.success_body_needed = false;
        self
    }

    /// Signs the body with `secrets` (Standard Webhooks, a fresh `webhook-id`); returns the id.
    pub fn sign(self, secrets: &[WebhookSecret]) -> Result<(Request, String), SendError> {
        let headers = SignatureHeaders::sign_now(secrets, &self.body)
            .map_err(|_| SendError::Invalid("the request could not be signed".into()))?;
        let mut request = self;
        for (name, value) in headers.to_header_pairs() {
            request = request.header(name, &value);
        }
        Ok((request, headers.id))
    }
}

/// An answer, its body read whole — or, for an error answer (and a 2xx whose body the caller
/// does not need), as much of it as arrived within the limits, with `truncated` set.
#[derive(Clone)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub truncated: bool,
}

/// The body's length only: an answer may echo card data.
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("body_bytes", &self.body.len())
            .field("truncated", &self.truncated)
            .finish()
    }
}

impl Response {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// What a failed answer said: its `Retry-After` and the contract's error code and message.
    pub fn error_answer(&self) -> ErrorAnswer {
        let retry_after =
            self.header(RETRY_AFTER.as_str()).and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
        let body = serde_json::from_slice::<serde_json::Value>(&self.body).ok();
        let code = body
            .as_ref()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
            .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        let message = body.as_ref().and_then(|v| v["error"]["message"].as_str().map(str::to_owned));
        ErrorAnswer { status: self.status.as_u16(), retry_after, code, message }
    }
}

/// What a failed answer said: its `Retry-After` (seconds) and the contract's error code and
/// message, when the body follows the contract. The code is kept only when it looks like one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorAnswer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub code: Option<String>,
    pub message: Option<String>,
}

impl ErrorAnswer {
    /// `HTTP 409 CONFLICT` / `HTTP 503`: the status and code, never a body.
    pub fn summary(&self) -> String {
        match &self.code {
            Some(code) => format!("HTTP {} {code}", self.status),
            None => format!("HTTP {}", self.status),
        }
    }

    /// 408, 429 and 5xx: worth another try.
    pub fn is_transient(&self) -> bool {
        self.status == 408 || self.status == 429 || self.status >= 500
    }
}

struct Job {
    request: Request,
    reply: oneshot::Sender<Result<Response, SendError>>,
}

/// An outbound HTTP client (see the module's comment for how it runs).
#[derive(Clone)]
pub struct HttpClient {
    workers: Arc<Vec<mpsc::UnboundedSender<Job>>>,
    next: Arc<AtomicUsize>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").field("workers", &self.workers.len()).finish()
    }
}

impl HttpClient {
    /// A client with `tls` and `options`. The TLS files are read here: a bad file is an error
    /// now, not at the first request.
    pub fn new(tls: ClientTls<'_>, options: ClientOptions) -> anyhow::Result<HttpClient> {
        install_crypto_provider();
        let mut config = match tls.ca_file {
            Some(ca_file) => client_config(ca_file, tls.identity)?,
            None => platform_client_config(tls.identity)?,
        };
        // HTTP/1.1 only: every peer of the kit speaks it, and one protocol is one behaviour.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let mut workers = Vec::with_capacity(options.workers.max(1));
        for n in 0..options.workers.max(1) {
            let (sender, receiver) = mpsc::unbounded_channel::<Job>();
            let (ready, started) = std::sync::mpsc::sync_channel(1);
            let (config, options) = (config.clone(), options.clone());
            std::thread::Builder::new()
                .name(format!("http-client-{n}"))
                .spawn(move || worker(receiver, config, options, ready))
                .context("starting an HTTP client thread")?;
            // A worker whose runtime failed to start would fail every request sent to it.
            started.recv().context("an HTTP client thread did not start")?;
            workers.push(sender);
        }
        Ok(HttpClient { workers: Arc::new(workers), next: Arc::new(AtomicUsize::new(0)) })
    }

    /// A client trusting the platform's CAs, presenting no certificate.
    pub fn plain(options: ClientOptions) -> anyhow::Result<HttpClient> {
        HttpClient::new(ClientTls::default(), options)
    }

    /// Sends `request`; the answer's body is read whole (within the timeout and size limit).
    pub async fn send(&self, mut request: Request) -> Result<Response, SendError> {
        // Every call carries the trace it is part of (W3C Trace Context), unless the caller
        // named one: read here, on the caller's task, where the request's scope is.
        // A call made while exporting spans is one: a client span whose id is the parent id the
        // receiver sees (a caller that named its own trace is not followed here).
        let mut exported = None;
        if request.header_value(TRACEPARENT).is_none() {
            let trace = crate::correlation::outbound_trace();
            request = request.header(TRACEPARENT, &trace.to_string());
            exported = crate::correlation::current_exporter().map(|exporter| {
                let client = ClientSpan::begin(&request, trace);
                (exporter, client)
            });
        }
        let (reply, answer) = oneshot::channel();
        let n = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        self.workers[n].send(Job { request, reply }).map_err(|_| SendError::Dropped)?;
        let result = answer.await.unwrap_or(Err(SendError::Dropped));
        if let Some((exporter, client)) = exported {
            exporter.record(client.end(&result));
        }
        result
    }
}

/// An outbound call as an exported span: the method and the server's address, never the path
/// or query (ids, perhaps worse) nor any header or body.
struct ClientSpan {
    method: String,
    server: Option<(String, Option<u16>)>,
    position: tmp_protocol::trace_context::TraceParent,
    parent: Option<tmp_protocol::trace_context::TraceParent>,
    start: std::time::SystemTime,
}

impl ClientSpan {
    fn begin(request: &Request, position: tmp_protocol::trace_context::TraceParent) -> ClientSpan {
        let server = request.url.parse::<actix_web::http::Uri>().ok().and_then(|uri| {
            let port = uri.port_u16();
            uri.host().map(|host| (host.to_owned(), port))
        });
        ClientSpan {
            method: request.method.to_string(),
            server,
            position,
            parent: crate::correlation::current_trace(),
            start: std::time::SystemTime::now(),
        }
    }

    fn end(self, result: &Result<Response, SendError>) -> crate::otlp::SpanRecord {
        use crate::otlp::AttributeValue::{Int, Str};
        let mut attributes = vec![("http.request.method", Str(self.method.clone()))];
        if let Some((host, port)) = self.server {
            attributes.push(("server.address", Str(host)));
            attributes.extend(port.map(|p| ("server.port", Int(i64::from(p)))));
        }
        let failed = match result {
            Ok(answer) => {
                attributes.push(("http.response.status_code", Int(i64::from(answer.status.as_u16()))));
                answer.status.is_client_error() || answer.status.is_server_error()
            }
            Err(error) => {
                attributes.push(("error.type", Str(error.kind().to_owned())));
                true
            }
        };
        crate::otlp::SpanRecord {
            name: self.method,
            kind: crate::otlp::SpanKind::Client,
            position: self.position,
            parent: self.parent,
            start: self.start,
            end: std::time::SystemTime::now(),
            failed,
            attributes,
        }
    }
}

/// One worker thread: an actix runtime with its own awc client, serving jobs until every
/// handle is gone; jobs in flight then finish before the thread ends.
fn worker(
    mut jobs: mpsc::UnboundedReceiver<Job>,
    tls: Arc<rustls::ClientConfig>,
    options: ClientOptions,
    ready: std::sync::mpsc::SyncSender<()>,
) {
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        // A bound, not 0 (awc's "no limit"): without one, a receiver that slows down under load
        // makes the client open a connection per request in flight, until the process runs out
        // of file descriptors and fails unrelated work (seen with `tmp-kit load`).
        let connector =
            awc::Connector::new().rustls_0_23(tls).timeout(options.timeout).limit(options.max_connections.max(1));
        let client = awc::Client::builder()
            .connector(connector)
            .timeout(options.timeout)
            .disable_redirects()
            .no_default_headers()
            .finish();
        let _ = ready.send(());
        let mut running = Vec::new();
        while let Some(job) = jobs.recv().await {
            let client = client.clone();
            let options = options.clone();
            running.retain(|task: &actix_web::rt::task::JoinHandle<()>| !task.is_finished());
            running.push(actix_web::rt::spawn(async move {
                let Job { request, mut reply } = job;
                // A caller that gave up (its own deadline, a dropped task) cancels the request:
                // it is not left running to reach the server after the answer stopped mattering.
                let outcome = tokio::select! {
                    result = execute(&client, request, &options) => Some(result),
                    () = reply.closed() => None,
                };
                if let Some(result) = outcome {
                    let _ = reply.send(result);
                }
            }));
        }
        for task in running {
            let _ = task.await;
        }
    });
}

async fn execute(client: &awc::Client, request: Request, options: &ClientOptions) -> Result<Response, SendError> {
    let deadline = tokio::time::Instant::now() + options.timeout;
    let success_body_needed = request.success_body_needed;
    let mut outbound = client.request(request.method, request.url.as_str());
    for (name, value) in request.headers {
        let name = HeaderName::try_from(name).map_err(|_| SendError::Invalid("a header name is not valid".into()))?;
        let value =
            HeaderValue::try_from(value).map_err(|_| SendError::Invalid(format!("the {name} header is not valid")))?;
        outbound = outbound.insert_header((name, value));
    }
    let mut answer = tokio::time::timeout_at(deadline, outbound.send_body(request.body))
        .await
        .map_err(|_| SendError::Timeout)?
        .map_err(classify)?;
    let status = answer.status();
    let headers = answer.headers().clone();
    // An error answer is kept whatever its body does: its status is what counts.
    let body_needed = status.is_success() && success_body_needed;
    let mut body = actix_web::web::BytesMut::new();
    let mut truncated = false;
    let mut stream = actix_web::HttpMessage::take_payload(&mut answer);
    loop {
        match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut stream)).await {
            Ok(None) => break,
            Ok(Some(Ok(chunk))) if body.len() + chunk.len() <= options.body_limit => body.extend_from_slice(&chunk),
            Ok(Some(Ok(_))) if body_needed => return Err(SendError::TooLarge),
            Ok(Some(Err(_))) if body_needed => return Err(SendError::Dropped),
            Err(_) if body_needed => return Err(SendError::Timeout),
            // Too long, cut off or too slow, on an answer whose status is all that matters.
            _ => {
                truncated = true;
                break;
            }
        }
    }
    Ok(Response { status, headers, body: body.freeze(), truncated })
}

fn classify(e: awc::error::SendRequestError) -> SendError {
    use awc::error::{ConnectError, SendRequestError};
    match e {
        SendRequestError::Timeout | SendRequestError::Connect(ConnectError::Timeout) => SendError::Timeout,
        SendRequestError::Connect(_) => SendError::Connect,
        SendRequestError::Url(url) => SendError::Invalid(url.to_string()),
        // The request could not be built (a URI or header awc refuses): sending it again fails
        // the same way.
        SendRequestError::Http(e) => SendError::Invalid(e.to_string()),
        SendRequestError::TunnelNotSupported => SendError::Invalid("tunnels are not supported".into()),
        _ => SendError::Dropped,
    }
}

/// A base URL with its signing secrets: the contract's calls (TMP API, Lifecycle API, webhook
/// sinks, the processor bridge). Every request carries `X-Correlation-Id`, `X-Idempotency-Key`
/// when given, and — when secrets are configured — a Standard-Webhooks signature with a fresh
/// `webhook-id` (receivers refuse a replayed one).
#[derive(Debug, Clone)]
pub struct SignedClient {
    pub base_url: String,
    pub secrets: Vec<WebhookSecret>,
    pub http: HttpClient,
}

impl SignedClient {
    pub fn new(base_url: &str, secrets: Vec<WebhookSecret>, http: HttpClient) -> SignedClient {
        SignedClient { base_url: base_url.to_owned(), secrets, http }
    }

    /// `path` under the base URL; an empty `path` is the base URL exactly as configured (a
    /// webhook sink's URL is its whole address).
    pub fn url(&self, path: &str) -> String {
        match path {
            "" => self.base_url.clone(),
            path => format!("{}{path}", self.base_url.trim_end_matches('/')),
        }
    }

    /// The signed request for `body` (JSON) to `path` under the base URL.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
        correlation_id: &str,
    ) -> Result<Request, SendError> {
        let mut request = Request::new(method, self.url(path)).header(CORRELATION_ID, correlation_id);
        if let Some(key) = idempotency_key {
            request = request.header(IDEMPOTENCY_KEY, key);
        }
        if let Some(body) = body.filter(|b| !b.is_empty()) {
            request = request.json_body(body);
        }
        if !self.secrets.is_empty() {
            request = request.sign(&self.secrets)?.0;
        }
        Ok(request)
    }

    /// Sends `body` (JSON) to `path` under the base URL.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        idempotency_key: Option<&str>,
        correlation_id: &str,
    ) -> Result<Response, SendError> {
        self.http.send(self.request(method, path, body, idempotency_key, correlation_id)?).await
    }
}
