//! Contract v1 of the TMP Issuer Kit.
//!
//! Everything the kit says on the wire is defined here once: the Issuer API, TMP API,
//! Lifecycle API and processor-event payloads, their enums and error shape, the
//! Standard-Webhooks signature scheme, JWE field encryption and the sensitive-data types
//! (`Pan`, `Cvc`, `Otp`, `Expiry`) that mask themselves and zeroize on drop.

pub mod bridge;
pub mod enums;
pub mod error;
pub mod fields;
pub mod headers;
pub mod issuer_api;
pub mod json;
pub mod jwe;
pub mod jwk;
pub mod lifecycle_api;
pub mod processor;
pub mod rsa;
pub mod sensitive;
pub mod tmp_api;
pub mod trace_context;
pub mod webhook;
