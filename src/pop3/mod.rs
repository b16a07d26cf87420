//! POP3 (see POP3 work).
