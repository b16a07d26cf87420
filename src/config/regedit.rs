//! reg CLI (placeholder).
