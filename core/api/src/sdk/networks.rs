//! Client networks for `allow` lists (the balancer manager's, CONNECT
//! tunnels'): `127.0.0.0/8`, `::1`, `10.0.0.5`, and whether a client's
//! address is in one of them. IPv4-mapped IPv6 clients count as IPv4.

use std::net::{IpAddr, SocketAddr};

/// One `allow` entry: an address with a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `127.0.0.0/8`, `::1`, `10.0.0.5`; a bare address is one host.
    pub fn parse(s: &str) -> Result<Net, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
        let addr: IpAddr = addr.trim().parse().map_err(|_| {
            format!("`{s}` is not an address or network: write e.g. \"127.0.0.0/8\", \"::1\" or \"10.0.0.5\"")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            "" => max,
            p => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Net { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let (net, got, width) = match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(g)) => {
                (u128::from(u32::from(n)), u128::from(u32::from(g)), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(g)) => (u128::from(n), u128::from(g), 128),
            _ => return false,
        };
        if self.prefix == 0 {
            return true;
        }
        let host_bits = width - u32::from(self.prefix);
        net >> host_bits == got >> host_bits
    }
}

/// Loopback only, the default of every `allow` list (as Debian ships
/// Apache's manager: `Require local`).
pub fn loopback() -> Vec<Net> {
    ["127.0.0.0/8", "::1"]
        .iter()
        .filter_map(|s| Net::parse(s).ok())
        .collect()
}

/// Whether the client `ip:port` is in `allow`.
pub fn allowed(allow: &[Net], client: &str) -> bool {
    client
        .parse::<SocketAddr>()
        .is_ok_and(|a| allow.iter().any(|n| n.contains(a.ip())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_hold_their_hosts() {
        let ten = [Net::parse("10.1.0.0/16").unwrap()];
        assert!(allowed(&ten, "10.1.2.3:5") && !allowed(&ten, "10.2.0.1:5"));
        assert!(allowed(&[Net::parse("0.0.0.0/0").unwrap()], "192.0.2.1:1"));
        assert!(allowed(&loopback(), "[::ffff:127.0.0.1]:9"), "mapped IPv4");
        assert!(Net::parse("10.0.0.0/33").unwrap_err().contains("0 to 32"));
    }
}
