//! The `[ParametersSystem]` registry schema (see config work).

/// Every value of the table (placeholder until the config work lands).
#[derive(Debug, Clone, Default)]
pub struct Values {}
