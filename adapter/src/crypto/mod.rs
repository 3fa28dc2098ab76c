//! Cryptography that stays inside the adapter: PAN/OTP encryption at rest and PAN
//! fingerprints, and CVC2 computation for the local registry.

pub mod at_rest;
pub mod cvc2;
