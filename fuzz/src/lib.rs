//! Harnesses of the `tmp-protocol` fuzz targets.
//!
//! Each target in `fuzz_targets/` is a one-line call into a module here, so that the seed
//! generator (`examples/seed_corpus.rs`) and the targets agree on the input formats, and so
//! that an input can be replayed outside libFuzzer. How to run them: `docs/fuzzing.md`.

pub mod jwe;
pub mod payloads;
pub mod signatures;
