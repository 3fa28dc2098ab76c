//! mock-tmp on its own, against a small fake issuer (`fake_issuer`), on port 0 over real
//! sockets: its TMP and Lifecycle API contract, the automated token lifecycle, mTLS, and the
//! sender's real-sender behaviour toward the issuer (retries, duplicates, reordering, the
//! yellow path's code). The mock driving a real tmp-adapter is tested in the kit's end-to-end
//! tests (`crates/kit/tests/e2e`).

mod contract;
mod driver;
mod fake_issuer;
mod helpers;
mod lifecycle;
mod pki;
mod sender;
mod tls;
