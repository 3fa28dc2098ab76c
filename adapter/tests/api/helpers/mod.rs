//! Shared test fixtures.

pub mod app;
pub mod bridge;
pub mod db;
pub mod receiver;
