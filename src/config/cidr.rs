//! `[proxy] trusted_networks`: address blocks in CIDR notation (RFC 4632 §3.1 for IPv4,
//! RFC 4291 §2.3 for IPv6), written `10.0.0.0/8`, `::1/128`, or a bare address (one host).

use std::fmt;
use std::net::IpAddr;

/// One address block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address, host bits zero.
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or `ADDR`; host bits set below the prefix are refused (a typo
    /// such as `10.0.0.1/8` is more likely than a wish for `10.0.0.0/8`).
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a
            .parse()
            .map_err(|_| format!("{a:?} is not an IPv4 or IPv6 address"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("prefix length {p:?} is not a number from 0 to {max}")),
            },
        };
        let c = Cidr { addr, prefix };
        if c.network() != addr {
            return Err(format!(
                "{s} has host bits set below /{prefix} (the network is {}/{prefix})",
                c.network()
            ));
        }
        Ok(c)
    }

    fn mask(bits: u32, prefix: u8) -> u128 {
        if prefix == 0 {
            0
        } else {
            (!0u128 << (bits - u32::from(prefix))) & (!0u128 >> (128 - bits))
        }
    }

    fn network(&self) -> IpAddr {
        match self.addr {
            IpAddr::V4(a) => {
                let m = Self::mask(32, self.prefix) as u32;
                IpAddr::V4((u32::from(a) & m).into())
            }
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) & Self::mask(128, self.prefix)).into()),
        }
    }

    /// Whether `ip` is in the block; an IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let m = Self::mask(32, self.prefix) as u32;
                u32::from(ip) & m == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & Self::mask(128, self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses_only() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(!c.contains(ip("11.0.0.0")));
        assert!(c.contains(ip("::ffff:10.1.2.3")), "v4-mapped counts as v4");
        let c = Cidr::parse("::1/128").unwrap();
        assert!(c.contains(ip("::1")));
        assert!(!c.contains(ip("127.0.0.1")));
        let c = Cidr::parse("2001:db8::/32").unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("192.0.2.1")));
        assert!(!Cidr::parse("0.0.0.0/0").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        let host = Cidr::parse("192.0.2.7").unwrap();
        assert_eq!(host.to_string(), "192.0.2.7/32");
        assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
        assert!(Cidr::parse("127.0.0.0/8").unwrap().contains(ip("127.0.0.1")));
    }

    #[test]
    fn bad_blocks_are_refused_with_a_reason() {
        for bad in ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/+8", "ten/8", "10.0.0.1/8", "", "::1/64"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
        assert!(Cidr::parse("10.0.0.1/8").unwrap_err().contains("10.0.0.0/8"));
    }
}
