//! mock-tmp against a real tmp-adapter, both in-process on port 0, over real sockets.

mod contract;
mod forwarding;
mod helpers;
mod lifecycle;
mod mtls;
mod ops_api;
mod sender;
mod simulator;
