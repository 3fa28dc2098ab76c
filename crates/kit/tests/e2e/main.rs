//! The kit end to end: mock-tmp and a real tmp-adapter wired together in this process
//! ([`tmp_kit::TestKit`], port 0, real sockets), and the conformance suite run against it and
//! against deliberately broken Issuer APIs.
//!
//! - forwarding, lifecycle, mtls, ops_api, sender, simulator: the mock driving the adapter the
//!   way TMP does, and the adapter forwarding to the mock;
//! - variants, proxy, reports: the mutation matrix — each broken Issuer API fails exactly the
//!   cases that catch its mistake, each legitimate variant passes every case — and a failure's
//!   reproduction shows the same failure when run by hand;
//! - policies: the suite judges the policy the profile declares, for three different ones;
//! - bare_target: the `tmp-conformance` binary against an adapter with no mock and no harness;
//! - sign_proxy: `tmp-conformance sign-proxy` (for schema-driven fuzzers) in front of an adapter;
//! - load: the load generator and the soak's check;
//! - docs: every link of the docs stays in the repository and arrives;
//! - console: mock-tmp's browser console clicked through in a real headless Chromium.

mod bare_target;
mod browser;
mod console;
mod deployment;
mod docs;
mod forwarding;
mod helpers;
mod lifecycle;
mod load;
mod mtls;
mod ops_api;
mod policies;
mod proxy;
mod reports;
mod sender;
mod sign_proxy;
mod simulator;
mod variants;
