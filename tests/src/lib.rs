//! Shared helpers for aether's cross-crate tests.
