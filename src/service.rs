//! Leaf types every part shares. Nothing here imports anything of the crate, so `config`,
//! `protolog`, the driver and the server can all use them without importing each other.

/// The services the daemon runs; each has its own listeners, idle timeout and protocol
/// log stream (KB Q182504: one logging level and path per protocol; LMTP is our extension of
/// the scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    Pop3,
    Imap4,
    /// LMTP (RFC 2033): mail delivery from the MTA.
    Lmtp,
}

impl Service {
    /// The name written in the protocol log's `#Service:` header line.
    pub fn header_name(self) -> &'static str {
        match self {
            Service::Pop3 => "POP3",
            Service::Imap4 => "IMAP4",
            Service::Lmtp => "LMTP",
        }
    }

    /// Every service, in [`Service::index`] order.
    pub const ALL: [Service; 3] = [Service::Pop3, Service::Imap4, Service::Lmtp];

    /// A dense index (0, 1, 2) for per-service arrays.
    pub fn index(self) -> usize {
        match self {
            Service::Pop3 => 0,
            Service::Imap4 => 1,
            Service::Lmtp => 2,
        }
    }
}
