//! Connection driver (see POP3 work).
