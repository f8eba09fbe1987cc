//! coffer-crypto
