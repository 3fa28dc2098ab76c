//! `HttpClient` and `SignedClient` over real sockets.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::http::Method;
use actix_web::web::{self, Bytes, Data};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use tmp_edge::client::{ClientOptions, HttpClient, Request, SendError, SignedClient};
use tmp_protocol::webhook::{Verifier, WebhookSecret};

/// What the test server saw of each request: its headers (name, value) and body.
type Seen = Arc<Mutex<Vec<(Vec<(String, String)>, Bytes)>>>;

struct Server {
    url: String,
    seen: Seen,
    handle: ServerHandle,
}

async fn record(seen: Data<Seen>, request: HttpRequest, body: Bytes) -> HttpResponse {
    let headers = request
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    seen.lock().expect("seen").push((headers, body));
    HttpResponse::Ok().json(serde_json::json!({"ok": true}))
}

async fn start() -> Server {
    let seen: Seen = Arc::default();
    let data = Data::new(seen.clone());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/ok", web::post().to(record))
            .route("/big-ok", web::get().to(|| async { HttpResponse::Ok().body(vec![b'x'; 3 * 1024]) }))
            .route(
                "/big-error",
                web::get().to(|| async {
                    let mut body = br#"{"error":{"code":"UNAVAILABLE","message":"down"}}"#.to_vec();
                    body.extend(vec![b' '; 3 * 1024]);
                    HttpResponse::ServiceUnavailable().insert_header(("retry-after", "7")).body(body)
                }),
            )
            .route(
                "/slow",
                web::get().to(|| async {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    HttpResponse::Ok().finish()
                }),
            )
            .route(
                "/redirect",
                web::get().to(|| async { HttpResponse::Found().insert_header(("location", "/ok")).finish() }),
            )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Server { url, seen, handle }
}

fn client(body_limit: usize, timeout: Duration) -> HttpClient {
    HttpClient::plain(ClientOptions { body_limit, ..ClientOptions::with_timeout(timeout) }).expect("client")
}

#[actix_web::test]
async fn a_signed_call_carries_the_contracts_headers_and_a_verifiable_signature() {
    let server = start().await;
    let (secret, _) = WebhookSecret::generate();
    let signed =
        SignedClient::new(&format!("{}/", server.url), vec![secret.clone()], client(1024, Duration::from_secs(5)));
    let answer = signed
        .send(Method::POST, "/ok", Some(br#"{"a":1}"#.to_vec()), Some("key-1"), "corr-1")
        .await
        .expect("answered");
    assert!(answer.is_success());
    assert_eq!(answer.json::<serde_json::Value>().expect("json")["ok"], true);
    let seen = server.seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 1);
    let (headers, body) = &seen[0];
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(header("x-correlation-id"), Some("corr-1"));
    assert_eq!(header("x-idempotency-key"), Some("key-1"));
    assert_eq!(header("content-type"), Some("application/json"));
    assert_eq!(body.as_ref(), br#"{"a":1}"#);
    let verifier = Verifier::new(vec![secret], Duration::from_secs(60));
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    verifier
        .verify(header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"), body, now)
        .expect("the signature verifies over the body sent");
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn an_error_answer_is_kept_whatever_its_body_and_a_needed_body_is_bounded() {
    let server = start().await;
    let http = client(1024, Duration::from_secs(5));
    // An error answer longer than the limit: its status and Retry-After still come back.
    let error = http.send(Request::get(format!("{}/big-error", server.url))).await.expect("an answer");
    assert_eq!(error.status.as_u16(), 503);
    assert!(error.truncated && error.body.len() <= 1024);
    let answer = error.error_answer();
    assert_eq!(answer.retry_after, Some(Duration::from_secs(7)));
    assert!(answer.is_transient());
    // A 2xx whose body the caller reads must fit; one it does not read is a 2xx.
    let needed = http.send(Request::get(format!("{}/big-ok", server.url))).await;
    assert_eq!(needed.err(), Some(SendError::TooLarge));
    let ignored = http.send(Request::get(format!("{}/big-ok", server.url)).ignore_success_body()).await.expect("a 2xx");
    assert!(ignored.is_success() && ignored.truncated);
    server.handle.stop(true).await;
}

#[actix_web::test]
async fn timeouts_refusals_redirects_and_bad_headers_are_told_apart() {
    let server = start().await;
    let http = client(1024, Duration::from_millis(300));
    let slow = http.send(Request::get(format!("{}/slow", server.url))).await;
    assert_eq!(slow.err(), Some(SendError::Timeout));
    // Never followed: a signed request is answered where it was sent.
    let redirect = http.send(Request::get(format!("{}/redirect", server.url))).await.expect("an answer");
    assert_eq!(redirect.status.as_u16(), 302);
    assert!(server.seen.lock().expect("seen").is_empty(), "the redirect target was not called");
    let bad = http.send(Request::get(format!("{}/ok", server.url)).header("x-bad", "line\nbreak")).await;
    assert!(matches!(bad, Err(SendError::Invalid(_))), "{bad:?}");
    server.handle.stop(true).await;
    // Nothing listens there any more.
    let refused = http.send(Request::get(format!("{}/ok", server.url))).await;
    assert_eq!(refused.err(), Some(SendError::Connect));
}

#[actix_web::test]
async fn a_request_and_its_answer_print_no_body_and_no_header_values() {
    let request = Request::post("http://127.0.0.1:1/x")
        .header("authorization", "Bearer secret-token")
        .json_body(r#"{"pan":"4111111111111111"}"#);
    let printed = format!("{request:?}");
    assert!(!printed.contains("secret-token") && !printed.contains("4111111111111111"), "{printed}");
    assert!(printed.contains("authorization") && printed.contains("body_bytes"), "{printed}");
}

#[actix_web::test]
async fn a_request_its_caller_gave_up_on_is_never_sent() {
    let server = start().await;
    // One connection: while `/slow` holds it, the next request waits for it inside the client.
    let http =
        HttpClient::plain(ClientOptions { max_connections: 1, ..ClientOptions::with_timeout(Duration::from_secs(10)) })
            .expect("client");
    let holder = {
        let http = http.clone();
        let url = format!("{}/slow", server.url);
        tokio::spawn(async move { http.send(Request::get(url)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiting = http.send(Request::post(format!("{}/ok", server.url)).json_body("{}"));
    assert!(
        tokio::time::timeout(Duration::from_millis(100), waiting).await.is_err(),
        "still waiting for the connection"
    );
    // The caller dropped it: once the connection is free, it must not go out after all.
    let held = holder.await.expect("task").expect("the slow answer");
    assert!(held.is_success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(server.seen.lock().expect("seen").is_empty(), "the abandoned request reached the server");
    server.handle.stop(true).await;
}
