//! W3C Trace Context (`traceparent`, <https://www.w3.org/TR/trace-context/>): the one header
//! that lets a tokenization be followed from TMP through the adapter to the issuer's sink.
//!
//! Every kit listener takes the caller's `traceparent` (or starts a trace when it is absent or
//! malformed, as the recommendation says), every outbound call carries the trace on with a new
//! parent id, and the adapter's outbox keeps it with each message, so a delivery made minutes
//! later by the relay still names the trace of the request that caused it. `tracestate` is not
//! carried: it is vendor free text, and the kit keeps free text out of what it stores.

use std::fmt;

/// The header, as W3C names it (lower case).
pub const TRACEPARENT: &str = "traceparent";

/// Sampled: the caller may have recorded this trace. The kit sets it on the traces it starts —
/// its log lines carry the trace id — and keeps the caller's flags otherwise.
const SAMPLED: u8 = 0x01;

/// One position in a trace: the trace id shared by every hop, the id of the hop that sent it
/// (the parent of whoever receives it), and the trace flags.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    trace_id: [u8; 16],
    parent_id: [u8; 8],
    flags: u8,
}

impl TraceParent {
    /// A trace that begins here.
    pub fn start() -> TraceParent {
        TraceParent { trace_id: *uuid::Uuid::new_v4().as_bytes(), parent_id: span_id(), flags: SAMPLED }
    }

    /// The header a hop sends on: the same trace and flags, a new parent id (this hop's).
    pub fn child(&self) -> TraceParent {
        TraceParent { parent_id: span_id(), ..*self }
    }

    /// The caller's trace continued by this hop, or a new trace when the header is absent or
    /// malformed (W3C: a receiver that cannot parse `traceparent` restarts the trace).
    pub fn continue_or_start(header: Option<&str>) -> TraceParent {
        header.and_then(|h| TraceParent::parse(h).ok()).map(|t| t.child()).unwrap_or_else(TraceParent::start)
    }

    /// Parses a `traceparent` value. Version `00` is exactly `00-<32 hex>-<16 hex>-<2 hex>`;
    /// a later version may append fields after the flags, which are ignored. Upper-case hex,
    /// all-zero ids and version `ff` are invalid.
    pub fn parse(value: &str) -> Result<TraceParent, InvalidTraceParent> {
        let value = value.trim_matches([' ', '\t']);
        // Sliced by byte position below: anything but ASCII is not a traceparent.
        if !value.is_ascii() {
            return Err(InvalidTraceParent);
        }
        let bytes = value.as_bytes();
        if bytes.len() < 55 || (bytes.len() > 55 && bytes[55] != b'-') {
            return Err(InvalidTraceParent);
        }
        let version = hex::<1>(&value[0..2])?[0];
        if version == 0xff || (version == 0 && bytes.len() != 55) {
            return Err(InvalidTraceParent);
        }
        if [2, 35, 52].iter().any(|&i| bytes[i] != b'-') {
            return Err(InvalidTraceParent);
        }
        let trace_id = hex::<16>(&value[3..35])?;
        let parent_id = hex::<8>(&value[36..52])?;
        let flags = hex::<1>(&value[53..55])?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return Err(InvalidTraceParent);
        }
        Ok(TraceParent { trace_id, parent_id, flags })
    }

    /// The trace id, 32 lower-case hex digits: what log lines and journals show.
    pub fn trace_id(&self) -> String {
        to_hex(&self.trace_id)
    }

    /// The parent id, 16 lower-case hex digits: the id of the span that sent this value — for
    /// a hop's own position, the hop's span id (what an exported span is named by).
    pub fn parent_id(&self) -> String {
        to_hex(&self.parent_id)
    }
}

/// A fresh non-zero 8-byte id.
fn span_id() -> [u8; 8] {
    loop {
        let bytes = uuid::Uuid::new_v4().into_bytes();
        let id: [u8; 8] = bytes[8..].try_into().expect("8 bytes");
        if id != [0; 8] {
            return id;
        }
    }
}

fn hex<const N: usize>(text: &str) -> Result<[u8; N], InvalidTraceParent> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        _ => Err(InvalidTraceParent),
    };
    let text = text.as_bytes();
    if text.len() != 2 * N {
        return Err(InvalidTraceParent);
    }
    let mut out = [0u8; N];
    for (i, pair) in text.chunks(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Ok(out)
}

/// Lower-case hex, as the header spells it. (A `format!` per byte cost ≈ 17 k instructions per
/// traceparent, written several times for every request and delivery: callgrind.)
fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The header value, version `00`.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "00-{}-{}-{:02x}", to_hex(&self.trace_id), to_hex(&self.parent_id), self.flags)
    }
}

impl fmt::Debug for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceParent({self})")
    }
}

/// A `traceparent` value that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a W3C traceparent")]
pub struct InvalidTraceParent;

#[cfg(test)]
mod tests {
    use super::*;

    const W3C_EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specifications_example_round_trips() {
        let t = TraceParent::parse(W3C_EXAMPLE).unwrap();
        assert_eq!(t.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.to_string(), W3C_EXAMPLE);
    }

    #[test]
    fn malformed_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4111111111111111111111111111111-1-00f067aa0ba902b7-01",
            // 55 bytes, a two-byte character where the version's slice ends.
            "0é4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(bad), Err(InvalidTraceParent), "{bad}");
        }
        // A later version may carry more after the flags.
        let future = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-comes-next";
        assert_eq!(TraceParent::parse(future).unwrap().trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn a_hop_keeps_the_trace_and_flags_and_names_itself_the_parent() {
        let caller = TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        let here = TraceParent::continue_or_start(Some(&caller.to_string()));
        assert_eq!((here.trace_id(), here.flags), (caller.trace_id(), 0));
        assert_ne!(here.parent_id, caller.parent_id);
        let sent = here.child();
        assert_eq!(sent.trace_id(), caller.trace_id());
        assert_ne!(sent.parent_id, here.parent_id);
        assert_eq!(TraceParent::parse(&sent.to_string()), Ok(sent));
    }

    #[test]
    fn a_missing_or_bad_header_starts_a_new_sampled_trace() {
        let a = TraceParent::continue_or_start(None);
        let b = TraceParent::continue_or_start(Some("garbage"));
        assert_ne!(a.trace_id(), b.trace_id());
        assert_eq!(a.flags, SAMPLED);
        assert_eq!(TraceParent::parse(&a.to_string()), Ok(a));
    }
}
