//! `tmp-kit`: the one crate that names the kit's concrete parts and composes them. The three
//! products (`tmp-adapter`, `mock-tmp`, `tmp-conformance`) depend on the contract and the shared
//! edge only; wiring them together happens here.
//!
//! - [`test_kit`]: [`TestKit`] starts mock-tmp, tmp-adapter and a webhook sink in this process,
//!   wired to each other, on ports the system picks — what `check`, `load`, `soak` and the
//!   end-to-end tests run against;
//! - [`harness`]: the suite's `Harness` for a `TestKit` (restart, activation codes, ops API
//!   credentials) and the session that loads its fixture cards;
//! - [`sink`]: the issuer's own system as the adapter sees it (a signed-webhook receiver that
//!   decrypts activation codes, as an SMS gateway would);
//! - [`up`]: the kit for local work, adapter on embedded SQLite wired to the mock;
//! - [`prepare`]: a running development adapter made a conformance target (its cards, profile
//!   and secrets);
//! - [`load`], [`soak`]: throughput against ceilings measured in the same run, footprint, and
//!   the soak under faults and restarts;
//! - [`cli`]: the `tmp-kit` command line.

pub mod cli;
pub mod engine;
pub mod harness;
pub mod load;
pub mod prepare;
pub mod sink;
pub mod soak;
pub mod test_kit;
pub mod up;

pub use test_kit::{KitOptions, TestKit};
