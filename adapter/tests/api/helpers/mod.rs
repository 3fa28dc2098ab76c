//! Shared test fixtures.

pub mod db;
pub mod app;
pub mod bridge;
