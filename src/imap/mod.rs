pub mod encode;
pub mod framing;
pub mod mime;
