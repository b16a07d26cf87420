//! Hot reload (placeholder).
