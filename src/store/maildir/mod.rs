//! Maildir++ backend (see store work).
