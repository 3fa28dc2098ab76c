//! `tmp-conformance`: the contract's cases as an executable suite.
//!
//! - [`catalogue`]: every case (id, requirement, rules, approaches) by API area;
//! - [`rules`]: the contract's rules as data, and which cases check each;
//! - [`client`], [`payload`], [`profile`]: calling a target as TMP and the card processor do;
//! - [`session`], [`runner`], [`report`]: running cases and reporting them (summary, JUnit,
//!   JSON, a reproduction per failure);
//! - [`mock_api`]: driving a mock-tmp the target forwards to (`--mock`);
//! - [`harness`]: what only a local deployment can do (restart, activation codes, ops API
//!   credentials), implemented by `tmp-kit check` — the suite itself speaks HTTP only;
//! - [`cli`]: the command line.

pub mod case;
pub mod catalogue;
pub mod cli;
pub mod client;
pub mod harness;
pub mod mock_api;
pub mod payload;
pub mod profile;
pub mod report;
pub mod rules;
pub mod runner;
pub mod session;
pub mod sign_proxy;
