//! The suite's own checks that need no target: the catalogue documented in docs/conformance.md
//! is the catalogue the binary runs; the profile declares what it says and documents every key. The suite run against the kit, a bare adapter and
//! deliberately broken Issuer APIs is tested in the kit's end-to-end tests
//! (`crates/kit/tests/e2e`): the suite itself speaks HTTP only and knows no implementation.

mod catalogue_doc;
mod profile;
mod rules;
