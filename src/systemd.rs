//! systemd integration (see server work).
