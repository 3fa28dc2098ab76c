//! A failure's reproduction: a bash script of `curl` commands that sends the case's requests
//! again. Secrets come from environment variables and card data from the profile, through
//! `tmp-conformance encrypt` and `tmp-conformance sign`, so neither appears in a report.
//! Idempotency keys and fixed `webhook-id`s become fresh values that keep the case's pattern
//! (the same key twice stays the same key twice), so the script can run again and again.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use crate::client::{Body, Exchange, Signer, Signing};
use crate::session::Session;

pub fn script(session: &Session, case_id: &str, exchanges: &[Arc<Exchange>], total: usize) -> String {
    let mut out = String::new();
    let profile = session.profile_path.clone().unwrap_or_else(|| "conformance-profile.yaml".to_owned());
    let secret_env = |signer: Signer| match signer {
        Signer::Tmp => session.client.profile.secret_env.clone(),
        Signer::Processor => session.client.profile.processor_secret_env.clone(),
        Signer::Issuer => session.client.profile.issuer_secret_env.clone(),
    };
    let _ = writeln!(out, "# {case_id}: run with bash; needs curl and tmp-conformance on PATH.");
    let mut envs: Vec<String> = exchanges.iter().filter_map(|e| e.call.signer).map(secret_env).collect();
    envs.extend(exchanges.iter().filter_map(|e| e.call.bearer.as_ref()).map(|b| b.env.to_owned()));
    envs.sort();
    envs.dedup();
    for env in &envs {
        let _ = writeln!(out, "# export {env}=whsec_…   (the secret, never printed in a report)");
    }
    if exchanges.iter().any(|e| !e.call.payloads.is_empty()) {
        let _ =
            writeln!(out, "# Card data is read from the profile by `tmp-conformance encrypt`; it is not printed here.");
    }
    if total > exchanges.len() {
        let _ = writeln!(out, "# ({} earlier request(s) of the case omitted)", total - exchanges.len());
    }
    let _ = writeln!(out, "PROFILE={}", quote(&profile));

    let mut keys: BTreeMap<String, String> = BTreeMap::new();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for exchange in exchanges {
        let call = &exchange.call;
        let _ = writeln!(out);
        // The body, into $BODY.
        match &call.body {
            Body::Empty => {
                let _ = writeln!(out, "BODY=''");
            }
            Body::Raw { shell, .. } => {
                let _ = writeln!(out, "BODY={shell}");
            }
            Body::Json(value) => {
                let mut text = quote(&value.to_string());
                for (i, spec) in call.payloads.iter().enumerate() {
                    let encrypt = format!(
                        "'\"$(tmp-conformance encrypt --target {} --profile \"$PROFILE\" --payload {})\"'",
                        quote(&session.target),
                        quote(&spec.to_string())
                    );
                    text = text.replace(&format!("@@payload{i}@@"), &encrypt);
                }
                let _ = writeln!(out, "BODY={text}");
            }
        }
        let mut command = format!("curl -sS -i -X {} {}", call.method, quote(&call.url()));
        if let Some(ct) = &call.content_type {
            let _ = write!(command, " -H {}", quote(&format!("content-type: {ct}")));
        }
        if let Some(key) = &call.idempotency_key {
            let n = keys.len() + 1;
            let var = keys.entry(key.clone()).or_insert_with(|| format!("KEY{n}")).clone();
            if n == keys.len() {
                let _ = writeln!(out, "{var}=$(cat /proc/sys/kernel/random/uuid)");
            }
            let _ = write!(command, " -H \"X-Idempotency-Key: ${var}\"");
        }
        if let Some(id) = &call.correlation_id {
            let _ = write!(command, " -H {}", quote(&format!("X-Correlation-Id: {id}")));
        }
        if let Some(bearer) = &call.bearer {
            let _ = write!(command, " -H \"Authorization: Bearer ${}\"", bearer.env);
        }
        if let Some(signer) = call.signer {
            let mut sign = format!("tmp-conformance sign --secret-env {} --body \"$BODY\"", secret_env(signer));
            match &call.signing {
                Signing::Valid | Signing::TamperedBody => {}
                Signing::Missing => sign.clear(),
                Signing::WrongSecret => sign.push_str(" --wrong-secret"),
                Signing::Stale => sign.push_str(" --skew -600"),
                Signing::Future => sign.push_str(" --skew 600"),
                Signing::MalformedHeader => sign.push_str(" --malformed"),
                Signing::SeveralEntries => sign.push_str(" --several-entries"),
                Signing::WithId(id) => {
                    let n = ids.len() + 1;
                    let var = ids.entry(id.clone()).or_insert_with(|| format!("MSG{n}")).clone();
                    if n == ids.len() {
                        let _ = writeln!(out, "{var}=msg_$(cat /proc/sys/kernel/random/uuid | tr -d -)");
                    }
                    let _ = write!(sign, " --id \"${var}\"");
                }
            }
            if !sign.is_empty() {
                let _ = write!(command, " -H @<({sign})");
            }
        }
        match (&call.body, &call.signing) {
            (Body::Empty, _) => {}
            (_, Signing::TamperedBody) => command.push_str(" --data-binary \"$BODY \""),
            _ => command.push_str(" --data-binary \"$BODY\""),
        }
        let _ = writeln!(out, "{command}");
        let answered = match exchange.status {
            Some(status) => format!("HTTP {status} {}", one_line(&exchange.response)),
            None => one_line(&exchange.response),
        };
        let _ = writeln!(out, "# the run got: {answered}");
    }
    out
}

/// Single-quotes for bash.
fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

fn one_line(text: &str) -> String {
    crate::client::truncate(&text.replace('\n', " "), 300)
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_survive_bash() {
        assert_eq!(super::quote("it's"), "'it'\\''s'");
    }
}
