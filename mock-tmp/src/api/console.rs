//! The browser console at `/_mock/console`: a page over the control plane (cards, tokens with
//! their holds, the journal, faults, the sender), with the simulator's buttons. Its three files
//! are compiled into the binary — nothing to build or install — and it calls nothing but this
//! mock's `/_mock/v1`, as the page's Content-Security-Policy holds it to.

use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use actix_web::{HttpResponse, web};

/// Where the console is served.
pub const CONSOLE_PATH: &str = "/_mock/console";

const INDEX_HTML: &str = include_str!("../../console/index.html");
const CONSOLE_JS: &str = include_str!("../../console/console.js");
const CONSOLE_CSS: &str = include_str!("../../console/console.css");

/// Own scripts and styles only, no inline code, calls to this origin only, never framed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(CONSOLE_PATH, web::get().to(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route("/_mock/console/", web::get().to(|| async { asset("text/html; charset=utf-8", INDEX_HTML) }))
        .route(
            "/_mock/console/console.js",
            web::get().to(|| async { asset("text/javascript; charset=utf-8", CONSOLE_JS) }),
        )
        .route("/_mock/console/console.css", web::get().to(|| async { asset("text/css; charset=utf-8", CONSOLE_CSS) }));
}

fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = HttpResponse::Ok().body(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    // A new mock version serves new files: never a stale script against a changed API.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("content-security-policy".parse().expect("a header name"), HeaderValue::from_static(CSP));
    headers.insert("x-content-type-options".parse().expect("a header name"), HeaderValue::from_static("nosniff"));
    headers.insert("referrer-policy".parse().expect("a header name"), HeaderValue::from_static("no-referrer"));
    response
}
