//! IP networks (CIDR blocks), used to decide which proxies may speak for a
//! visitor through `X-Forwarded-For`, and the guard that keeps affiliate
//! postbacks from reaching addresses inside the network ([`is_internal`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::DomainError;

/// An IPv4 or IPv6 network such as `10.0.0.0/8` or `2001:db8::/32`; a bare
/// address is a network of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Whether `ip` lies inside this network. An IPv4-mapped IPv6 address
    /// (`::ffff:1.2.3.4`) counts as its IPv4 address, which is how dual-stack
    /// sockets report IPv4 peers.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u128::from(u32::from(net)), self.prefix, 32)
                    == masked(u128::from(u32::from(ip)), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128)
                    == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    if prefix == 0 {
        0
    } else {
        bits >> (width - prefix)
    }
}

impl std::fmt::Display for IpNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = if self.addr.is_ipv4() { 32 } else { 128 };
        if self.prefix == width {
            write!(f, "{}", self.addr)
        } else {
            write!(f, "{}/{}", self.addr, self.prefix)
        }
    }
}

impl FromStr for IpNet {
    type Err = DomainError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let invalid =
            || DomainError::invalid(format!("{raw:?} is not an IP address or CIDR block"));
        let (addr, prefix) = match raw.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw.trim(), None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| invalid())?;
        let width = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= width)
                .ok_or_else(invalid)?,
            None => width,
        };
        Ok(Self { addr, prefix })
    }
}

/// Whether delivering to `ip` could reach something inside the network rather
/// than the affiliate's server.
///
/// An affiliate chooses the URL clickback calls, so without this guard an
/// affiliate account could make clickback fetch its own admin API, a cloud
/// metadata service (`169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`)
/// or anything else only reachable from inside. Refused: unspecified,
/// loopback, private, carrier-grade NAT, link-local, benchmarking, multicast,
/// reserved and broadcast ranges, IPv6 unique-local, link-local and (the
/// deprecated) site-local ranges. An IPv6 address that carries an IPv4
/// address (IPv4-mapped, IPv4-compatible, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) is judged by that IPv4 address, since that is where a packet
/// to it ends up.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

/// IPv4 blocks that lead inside: (network, prefix length).
const INTERNAL_V4: &[(Ipv4Addr, u8)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8), // "this network", 0.0.0.0 reaches the local host
    (Ipv4Addr::new(10, 0, 0, 0), 8), // private
    (Ipv4Addr::new(100, 64, 0, 0), 10), // carrier-grade NAT, Alibaba metadata 100.100.100.200
    (Ipv4Addr::new(127, 0, 0, 0), 8), // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16), // link-local, cloud metadata 169.254.169.254
    (Ipv4Addr::new(172, 16, 0, 0), 12), // private
    (Ipv4Addr::new(192, 0, 0, 0), 24), // IETF protocol assignments
    (Ipv4Addr::new(192, 168, 0, 0), 16), // private
    (Ipv4Addr::new(198, 18, 0, 0), 15), // benchmarking
    (Ipv4Addr::new(224, 0, 0, 0), 4), // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4), // reserved, and 255.255.255.255 broadcast
];

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    INTERNAL_V4.iter().any(|&(net, prefix)| {
        let shift = 32 - u32::from(prefix);
        bits >> shift == u32::from(net) >> shift
    })
}

/// IPv6 blocks that lead inside: (network, prefix length).
const INTERNAL_V6: &[(Ipv6Addr, u8)] = &[
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local, AWS metadata fd00:ec2::254
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated, still routed inside)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),  // multicast
];

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    if ip.is_unspecified() || ip.is_loopback() {
        return true;
    }
    if let Some(v4) = embedded_v4(ip) {
        return is_internal_v4(v4);
    }
    let bits = u128::from(ip);
    INTERNAL_V6.iter().any(|&(net, prefix)| {
        let shift = 128 - u32::from(prefix);
        bits >> shift == u128::from(net) >> shift
    })
}

/// The IPv4 address a packet to `ip` is delivered to, for the IPv6 forms that
/// carry one.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    // The low 32 bits, as the mapped, compatible and NAT64 forms place them.
    let low = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
    match bits >> 32 {
        // ::ffff:0:0/96 (IPv4-mapped), ::/96 (IPv4-compatible), 64:ff9b::/96 (NAT64).
        0xffff | 0 | 0x0064_ff9b_0000_0000_0000_0000 => return Some(low),
        _ => {}
    }
    // 2002:AABB:CCDD::/48, 6to4: the IPv4 address follows the 16-bit prefix.
    if bits >> 112 == 0x2002 {
        return Some(Ipv4Addr::from(((bits >> 80) & 0xffff_ffff) as u32));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect(s)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect(s)
    }

    #[test]
    fn matches_ipv4_and_ipv6_blocks() {
        assert!(net("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(net("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("2001:db8::/32").contains(ip("2001:db8:1::5")));
        assert!(!net("2001:db8::/32").contains(ip("2001:db9::5")));
        assert!(net("10.0.0.0/8").contains(ip("::ffff:10.1.2.3")));
        assert!(!net("::/0").contains(ip("1.2.3.4")));
    }

    #[test]
    fn refuses_malformed_blocks() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "abc",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<IpNet>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn internal_addresses_are_recognised_and_public_ones_pass() {
        let cases: &[(&str, bool)] = &[
            // IPv4 ranges that lead inside.
            ("0.0.0.0", true),
            ("0.255.255.255", true),
            ("10.0.0.1", true),
            ("10.255.255.255", true),
            ("100.64.0.1", true),
            ("100.100.100.200", true),
            ("100.127.255.255", true),
            ("127.0.0.1", true),
            ("127.255.255.254", true),
            ("169.254.169.254", true),
            ("172.16.0.1", true),
            ("172.31.255.255", true),
            ("192.0.0.170", true),
            ("192.168.1.1", true),
            ("198.18.0.1", true),
            ("198.19.255.255", true),
            ("224.0.0.1", true),
            ("239.255.255.250", true),
            ("240.0.0.1", true),
            ("255.255.255.255", true),
            // IPv4 neighbours just outside those ranges.
            ("8.8.8.8", false),
            ("1.1.1.1", false),
            ("9.255.255.255", false),
            ("11.0.0.1", false),
            ("100.63.255.255", false),
            ("100.128.0.0", false),
            ("126.255.255.255", false),
            ("128.0.0.1", false),
            ("169.253.255.255", false),
            ("172.15.255.255", false),
            ("172.32.0.0", false),
            ("192.0.1.1", false),
            ("192.167.255.255", false),
            ("198.17.255.255", false),
            ("198.20.0.0", false),
            ("223.255.255.255", false),
            ("93.184.216.34", false),
            // IPv6.
            ("::", true),
            ("::1", true),
            ("fc00::1", true),
            ("fd00:ec2::254", true),
            ("fe80::1", true),
            ("febf::1", true),
            ("fec0::1", true),
            ("ff02::1", true),
            ("2606:4700:4700::1111", false),
            ("2001:4860:4860::8888", false),
            ("fbff::1", false),
            // IPv4 inside IPv6 is judged as IPv4.
            ("::ffff:127.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("::ffff:8.8.8.8", false),
            ("::127.0.0.1", true),
            ("::10.0.0.1", true),
            ("::8.8.8.8", false),
            ("64:ff9b::127.0.0.1", true),
            ("64:ff9b::a9fe:a9fe", true),
            ("64:ff9b::8.8.8.8", false),
            ("2002:7f00:1::", true),
            ("2002:a9fe:a9fe::1", true),
            ("2002:0808:0808::1", false),
        ];
        for &(raw, internal) in cases {
            assert_eq!(is_internal(ip(raw)), internal, "{raw}");
        }
    }
}
