//! The wallet's web flow of a web push (`sign` with `web`): the page the issuer's website sends
//! the cardholder's browser to, at `/_mock/web-push/{receipt}`. It shows the card (last four
//! digits) and the wallet, asks for a device name and the wallet's terms, and on "Add card" runs
//! the push tokenization (`PUSH`, decided as any push: the issuer's verify-card or DataCore);
//! then it sends the browser back to the issuer's `callbackUrl` with `result` — `ADDED` (an
//! active token), `PENDING` (the token waits for a step-up), `DECLINED` or `CANCELLED` — and,
//! once added, `tokenId`. A receipt works once, until it expires by the mock's clock.
//!
//! The page is server-rendered HTML without scripts; it posts to itself only and then redirects
//! to the issuer's origin, which its Content-Security-Policy names.

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue, LOCATION};
use actix_web::web::{self, Bytes, Data, Path};
use tmp_protocol::enums::Wallet;
use tmp_protocol::fields::FreeText;

use crate::context::Mock;
use crate::simulator::push::PushPayload;
use crate::simulator::{PushRequest, push_payload};
use crate::state::PushGrant;

/// Where the web flow is served; the receipt follows.
pub const WEB_PUSH_PATH: &str = "/_mock/web-push";

/// The longest form the page takes (a device name and two short fields).
const MAX_FORM_BYTES: usize = 4096;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route(&format!("{WEB_PUSH_PATH}/{{receipt}}"), web::get().to(show))
        .route(&format!("{WEB_PUSH_PATH}/{{receipt}}"), web::post().to(submit));
}

/// Why a receipt cannot be used, as the page says it.
fn unusable(grant: Option<&PushGrant>, now: time::OffsetDateTime) -> Option<(StatusCode, &'static str)> {
    match grant {
        Some(PushGrant { web: Some(web), used, .. }) => {
            if *used {
                Some((StatusCode::CONFLICT, "This link was already used. Start again from your bank's website."))
            } else if web.expires_at <= now {
                Some((StatusCode::GONE, "This link has expired. Start again from your bank's website."))
            } else {
                None
            }
        }
        _ => Some((StatusCode::NOT_FOUND, "This link is not valid.")),
    }
}

fn wallet_name(wallet: Wallet) -> &'static str {
    match wallet {
        Wallet::GooglePay => "Google Pay",
        Wallet::SamsungPay => "Samsung Pay",
        Wallet::ApplePay => "Apple Pay",
        Wallet::Merchant => "the merchant",
        Wallet::Other => "the wallet",
    }
}

async fn show(mock: Data<Mock>, receipt: Path<String>) -> HttpResponse {
    let state = mock.state.lock().await;
    let grant = state.push_grants.get(receipt.as_str());
    if let Some((status, message)) = unusable(grant, mock.now()) {
        return page(status, "Add card", &format!("<p class=\"error\">{message}</p>"), None);
    }
    let Some(grant) = grant else { return page(StatusCode::NOT_FOUND, "Add card", "", None) };
    let last4 = state.cards.get(&grant.card_id).and_then(|c| c.pan_last4.clone()).unwrap_or_default();
    let wallet = wallet_name(grant.wallet);
    let body = format!(
        "<p>Add your card <strong class=\"card\">•••• {last4}</strong> to {wallet}.</p>\n\
         <form method=\"post\">\n\
         <label>Device name <input name=\"deviceName\" value=\"Web\" maxlength=\"64\"></label>\n\
         <label><input type=\"checkbox\" name=\"terms\" value=\"accepted\"> I accept {wallet}'s terms</label>\n\
         <button type=\"submit\" name=\"action\" value=\"add\" id=\"add\">Add card</button>\n\
         <button type=\"submit\" name=\"action\" value=\"cancel\" id=\"cancel\">Cancel</button>\n\
         </form>"
    );
    page(StatusCode::OK, &format!("Add card to {wallet}"), &body, grant.web.as_ref().map(|w| w.callback_url.as_str()))
}

async fn submit(mock: Data<Mock>, receipt: Path<String>, body: Bytes) -> HttpResponse {
    let form = match Form::parse(&body) {
        Ok(form) => form,
        Err(problem) => {
            return page(StatusCode::BAD_REQUEST, "Add card", &format!("<p class=\"error\">{problem}</p>"), None);
        }
    };
    let (grant, payload) = {
        let mut state = mock.state.lock().await;
        if let Some((status, message)) = unusable(state.push_grants.get(receipt.as_str()), mock.now()) {
            return page(status, "Add card", &format!("<p class=\"error\">{message}</p>"), None);
        }
        let Some(grant) = state.push_grants.get(receipt.as_str()).cloned() else {
            return page(StatusCode::NOT_FOUND, "Add card", "", None);
        };
        let card = state.cards.get(&grant.card_id);
        let payload = match card.and_then(|c| Some((c.pan.clone()?, c.expiry.clone()?))) {
            Some((pan, expiry)) => PushPayload {
                nonce: receipt.to_string(),
                ..PushPayload::new(&grant.card_id, pan, expiry, grant.wallet)
            },
            None => {
                return page(
                    StatusCode::CONFLICT,
                    "Add card",
                    "<p class=\"error\">TMP no longer holds this card.</p>",
                    None,
                );
            }
        };
        if form.action == "cancel" {
            if let Some(grant) = state.push_grants.get_mut(receipt.as_str()) {
                grant.used = true;
            }
            state.used_push_nonces.insert(receipt.to_string());
            // Spent for good, a restart included: a cancelled receipt never adds the card.
            if let Err(error) = mock.save(&mut state).await {
                tracing::warn!(error = %error, "web push: the cancelled receipt could not be stored");
                let message = "<p class=\"error\">Something went wrong. Try again later.</p>";
                return page(StatusCode::SERVICE_UNAVAILABLE, "Add card", message, None);
            }
            drop(state);
            return back(&grant, "CANCELLED", None);
        }
        (grant, payload)
    };
    if !form.terms {
        let callback = grant.web.as_ref().map(|w| w.callback_url.as_str());
        let message = "<p class=\"error\">Accept the terms to add the card.</p>";
        return page(StatusCode::UNPROCESSABLE_ENTITY, "Add card", message, callback);
    }
    let request = PushRequest {
        payload: String::new(),
        approach: None,
        tsp: None,
        wallet_score: None,
        device_score: None,
        wallet_recommendation: None,
        device_name: Some(form.device_name),
        device_id: None,
        activation_data: None,
        step_up_method: None,
    };
    match push_payload(&mock, payload, request).await {
        Ok(answer) => {
            let token = answer["tokenId"].as_str().map(str::to_owned);
            let result = match (answer["path"].as_str(), &token) {
                (Some("GREEN"), Some(_)) => "ADDED",
                (Some("YELLOW"), Some(_)) => "PENDING",
                _ => "DECLINED",
            };
            back(&grant, result, token.as_deref())
        }
        // The receipt is spent once the tokenization began: the cardholder goes back to the
        // issuer, which learns the card was not added, rather than being left on a dead page.
        Err(error) => {
            tracing::warn!(error = %error, "web push tokenization failed");
            back(&grant, "DECLINED", None)
        }
    }
}

/// The form's fields: `deviceName` (free text, default `Web`), `terms` (`accepted`), `action`
/// (`add` or `cancel`).
struct Form {
    device_name: FreeText,
    terms: bool,
    action: String,
}

impl Form {
    fn parse(body: &[u8]) -> Result<Form, &'static str> {
        if body.len() > MAX_FORM_BYTES {
            return Err("The form is too large.");
        }
        let text = std::str::from_utf8(body).map_err(|_| "The form is not UTF-8.")?;
        let mut form =
            Form { device_name: FreeText::parse("Web").expect("a plain word"), terms: false, action: "add".into() };
        for pair in text.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).ok_or("The form is malformed.")?;
            match name {
                "deviceName" if !value.trim().is_empty() => {
                    form.device_name = FreeText::parse(value.trim()).map_err(|_| "The device name is not accepted.")?
                }
                "deviceName" => {}
                "terms" => form.terms = value == "accepted",
                "action" if value == "add" || value == "cancel" => form.action = value,
                _ => return Err("The form is malformed."),
            }
        }
        Ok(form)
    }
}

/// `application/x-www-form-urlencoded` value: `+` is a space, `%XX` a byte.
fn percent_decode(value: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(value.len());
    let mut input = value.bytes();
    while let Some(b) = input.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [input.next()?, input.next()?];
                bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
            }
            b => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

/// 303 to the issuer's callback with the outcome in its query.
fn back(grant: &PushGrant, result: &str, token_id: Option<&str>) -> HttpResponse {
    let Some(callback) = grant.web.as_ref().map(|w| w.callback_url.as_str()) else {
        return page(StatusCode::NOT_FOUND, "Add card", "", None);
    };
    let separator = if callback.contains('?') { '&' } else { '?' };
    let mut location = format!("{callback}{separator}result={result}");
    if let Some(token_id) = token_id {
        location.push_str(&format!("&tokenId={token_id}"));
    }
    let mut response = HttpResponse::SeeOther().finish();
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The callback's origin (`https://bank.example:8443`), which the page may send the browser to.
fn origin(callback: &str) -> Option<&str> {
    let scheme_end = callback.find("://")? + 3;
    let end = callback[scheme_end..].find(['/', '?']).map_or(callback.len(), |i| scheme_end + i);
    Some(&callback[..end])
}

/// The page: no script, its own inline-free markup, posting to itself and (after the post) the
/// issuer's origin only.
fn page(status: StatusCode, title: &str, body: &str, callback: Option<&str>) -> HttpResponse {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{title}</title>\n\
         <link rel=\"stylesheet\" href=\"/_mock/console/console.css\"></head>\n\
         <body class=\"web-push\"><main><h1>{title}</h1>\n{body}\n\
         <p class=\"small\">mock-tmp: a stand-in for the wallet's web flow.</p></main></body>\n</html>\n"
    );
    let form_action = match callback.and_then(origin) {
        Some(origin) => format!("'self' {origin}"),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src 'self'; base-uri 'none'; form-action {form_action}; frame-ancestors 'none'"
    );
    let mut response = HttpResponse::build(status).body(html);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(value) = HeaderValue::from_str(&csp) {
        headers.insert("content-security-policy".parse().expect("a header name"), value);
    }
    headers.insert("referrer-policy".parse().expect("a header name"), HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::{Form, origin, percent_decode};

    #[test]
    fn the_form_is_decoded_strictly() {
        let form = Form::parse(b"deviceName=Pixel+8%20Pro&terms=accepted&action=add").unwrap();
        assert_eq!((form.device_name.as_str(), form.terms, form.action.as_str()), ("Pixel 8 Pro", true, "add"));
        assert!(Form::parse(b"deviceName=4111+1111+1111+1111&action=add").is_err(), "a card number is no name");
        assert!(Form::parse(b"action=delete").is_err());
        assert!(Form::parse(b"other=1").is_err());
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(origin("https://bank.example:8443/back?x=1"), Some("https://bank.example:8443"));
        assert_eq!(origin("http://localhost?x"), Some("http://localhost"));
    }
}
