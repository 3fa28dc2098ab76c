//! `tmp-conformance`: the contract's cases as an executable suite.
//!
//! - [`catalogue`]: every case (id, requirement, approaches) by API area;
//! - [`client`], [`payload`], [`profile`]: calling a target as TMP and the card processor do;
//! - [`session`], [`runner`], [`report`]: running cases and reporting them (summary, JUnit,
//!   JSON, a reproduction per failure);
//! - [`spawn`], [`sink`], [`mock_api`]: `--spawn`, the kit checking itself against mock-tmp;
//! - [`load`], [`soak`]: throughput against ceilings, footprint, and the soak under faults;
//! - [`cli`]: the command line.

pub mod case;
pub mod catalogue;
pub mod cli;
pub mod client;
pub mod load;
pub mod mock_api;
pub mod payload;
pub mod profile;
pub mod report;
pub mod runner;
pub mod session;
pub mod sink;
pub mod soak;
pub mod spawn;
