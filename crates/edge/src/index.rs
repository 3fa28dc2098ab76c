//! `GET /` on every listener of the kit: which service and listener answered, its version, and
//! the paths worth knowing there — so that someone who points a browser or `curl` at a port
//! learns where they are instead of meeting a 404.

use actix_web::HttpResponse;

/// The index of one listener: `service` (`tmp-adapter`, `mock-tmp`), `listener` (what this port
/// serves), `version`, and `links` as `(name, path or text)` pairs.
pub fn answer(service: &str, listener: &str, version: &str, links: &[(&str, &str)]) -> HttpResponse {
    let links: serde_json::Map<String, serde_json::Value> =
        links.iter().map(|(name, target)| ((*name).to_owned(), serde_json::Value::from(*target))).collect();
    HttpResponse::Ok().json(serde_json::json!({
        "service": service,
        "listener": listener,
        "version": version,
        "links": links,
    }))
}
