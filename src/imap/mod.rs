//! IMAP4rev1 (see IMAP work).
