//! Cryptography that stays inside the adapter: encryption at rest and what binds each
//! ciphertext to its row, PAN fingerprints, and CVC2 computation for the local registry.

pub mod aad;
pub mod at_rest;
pub mod cvc2;
