//! coffer-scan
