//! Which addresses a function may reach without `allow_private`: publicly routable unicast
//! only. Everything else (loopback, RFC 1918, link-local with the cloud metadata address,
//! CGNAT, multicast, broadcast, unspecified, documentation, benchmarking and reserved ranges,
//! IPv6 unique-local, link-local and site-local, and the IPv6 forms that carry an IPv4 address)
//! is named by its range, so a refusal says which.
//!
//! IPv6 is judged by allowance rather than by exclusion: only global unicast (`2000::/3`) can be
//! public, so a range this list forgets is refused, not reached.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The class of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Publicly routable unicast.
    Public,
    /// Not publicly routable; the range it is in, e.g. `loopback`, `rfc1918`, `link-local`.
    NonPublic(&'static str),
}

impl AddressClass {
    /// Whether reaching it needs `allow_private`.
    pub fn is_private(self) -> bool {
        matches!(self, AddressClass::NonPublic(_))
    }

    /// The range's name, `public` for a public address.
    pub fn range(self) -> &'static str {
        match self {
            AddressClass::Public => "public",
            AddressClass::NonPublic(range) => range,
        }
    }
}

/// The class of `address`.
pub fn classify(address: IpAddr) -> AddressClass {
    match address {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

/// IPv4 ranges that are not publicly routable (IANA special-purpose registry), most specific
/// first where they overlap.
const V4_RANGES: &[([u8; 4], u8, &str)] = &[
    ([255, 255, 255, 255], 32, "broadcast"),
    ([0, 0, 0, 0], 32, "unspecified"),
    ([0, 0, 0, 0], 8, "this-network"),
    ([10, 0, 0, 0], 8, "rfc1918"),
    ([100, 64, 0, 0], 10, "cgnat"),
    ([127, 0, 0, 0], 8, "loopback"),
    ([169, 254, 0, 0], 16, "link-local"),
    ([172, 16, 0, 0], 12, "rfc1918"),
    ([192, 0, 0, 0], 24, "ietf-protocol"),
    ([192, 0, 2, 0], 24, "documentation"),
    ([192, 31, 196, 0], 24, "as112"),
    ([192, 52, 193, 0], 24, "amt"),
    ([192, 88, 99, 0], 24, "6to4-relay"),
    ([192, 168, 0, 0], 16, "rfc1918"),
    ([192, 175, 48, 0], 24, "as112"),
    ([198, 18, 0, 0], 15, "benchmarking"),
    ([198, 51, 100, 0], 24, "documentation"),
    ([203, 0, 113, 0], 24, "documentation"),
    ([224, 0, 0, 0], 4, "multicast"),
    ([240, 0, 0, 0], 4, "reserved"),
];

fn classify_v4(address: Ipv4Addr) -> AddressClass {
    let bits = u32::from(address);
    V4_RANGES
        .iter()
        .find(|(network, prefix, _)| in_v4(bits, *network, *prefix))
        .map_or(AddressClass::Public, |(_, _, range)| {
            AddressClass::NonPublic(range)
        })
}

fn in_v4(bits: u32, network: [u8; 4], prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    bits & mask == u32::from(Ipv4Addr::from(network)) & mask
}

fn in_v6(bits: u128, network: [u16; 8], prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    bits & mask == u128::from(Ipv6Addr::from(network)) & mask
}

/// Ranges inside global unicast (`2000::/3`) that are still not public.
const V6_RANGES_IN_GLOBAL: &[([u16; 8], u8, &str)] = &[
    // Documentation (RFC 3849, RFC 9637).
    ([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32, "documentation"),
    ([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation"),
    // IETF protocol assignments, among them Teredo (2001::/32), which carries an IPv4 address.
    ([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, "ietf-protocol"),
    // 6to4 carries an IPv4 address (2002:AABB:CCDD::); deprecated by RFC 7526.
    ([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4"),
];

fn classify_v6(address: Ipv6Addr) -> AddressClass {
    let bits = u128::from(address);
    if address.is_unspecified() {
        return AddressClass::NonPublic("unspecified");
    }
    if address.is_loopback() {
        return AddressClass::NonPublic("loopback");
    }
    // `::ffff:a.b.c.d` reaches the IPv4 host itself: judge that host.
    if let Some(v4) = address.to_ipv4_mapped() {
        return match classify_v4(v4) {
            AddressClass::Public => AddressClass::Public,
            AddressClass::NonPublic(_) => AddressClass::NonPublic("ipv4-mapped"),
        };
    }
    // The well-known NAT64 prefix reaches the IPv4 host through a translator (RFC 6052).
    if in_v6(bits, [0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96) {
        let v4 = Ipv4Addr::from((bits & 0xffff_ffff) as u32);
        return match classify_v4(v4) {
            AddressClass::Public => AddressClass::Public,
            AddressClass::NonPublic(_) => AddressClass::NonPublic("nat64"),
        };
    }
    if in_v6(bits, [0, 0, 0, 0, 0, 0, 0, 0], 96) {
        return AddressClass::NonPublic("ipv4-compatible");
    }
    if in_v6(bits, [0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48) {
        return AddressClass::NonPublic("nat64-local");
    }
    if in_v6(bits, [0xfc00, 0, 0, 0, 0, 0, 0, 0], 7) {
        return AddressClass::NonPublic("unique-local");
    }
    if in_v6(bits, [0xfe80, 0, 0, 0, 0, 0, 0, 0], 10) {
        return AddressClass::NonPublic("link-local");
    }
    if in_v6(bits, [0xfec0, 0, 0, 0, 0, 0, 0, 0], 10) {
        return AddressClass::NonPublic("site-local");
    }
    if in_v6(bits, [0xff00, 0, 0, 0, 0, 0, 0, 0], 8) {
        return AddressClass::NonPublic("multicast");
    }
    if !in_v6(bits, [0x2000, 0, 0, 0, 0, 0, 0, 0], 3) {
        return AddressClass::NonPublic("reserved");
    }
    V6_RANGES_IN_GLOBAL
        .iter()
        .find(|(network, prefix, _)| in_v6(bits, *network, *prefix))
        .map_or(AddressClass::Public, |(_, _, range)| {
            AddressClass::NonPublic(range)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(address: &str) -> AddressClass {
        classify(address.parse().unwrap())
    }

    #[test]
    fn every_non_public_ipv4_range_is_named_at_both_edges() {
        for (address, range) in [
            ("0.0.0.0", "unspecified"),
            ("0.0.0.1", "this-network"),
            ("0.255.255.255", "this-network"),
            ("10.0.0.0", "rfc1918"),
            ("10.255.255.255", "rfc1918"),
            ("100.64.0.0", "cgnat"),
            ("100.127.255.255", "cgnat"),
            ("127.0.0.1", "loopback"),
            ("127.255.255.254", "loopback"),
            ("169.254.0.0", "link-local"),
            ("169.254.169.254", "link-local"),
            ("169.254.255.255", "link-local"),
            ("172.16.0.0", "rfc1918"),
            ("172.31.255.255", "rfc1918"),
            ("192.0.0.0", "ietf-protocol"),
            ("192.0.0.255", "ietf-protocol"),
            ("192.0.2.1", "documentation"),
            ("192.88.99.1", "6to4-relay"),
            ("192.168.0.0", "rfc1918"),
            ("192.168.255.255", "rfc1918"),
            ("198.18.0.0", "benchmarking"),
            ("198.19.255.255", "benchmarking"),
            ("198.51.100.7", "documentation"),
            ("203.0.113.255", "documentation"),
            ("224.0.0.1", "multicast"),
            ("239.255.255.255", "multicast"),
            ("240.0.0.0", "reserved"),
            ("255.255.255.254", "reserved"),
            ("255.255.255.255", "broadcast"),
        ] {
            assert_eq!(class(address), AddressClass::NonPublic(range), "{address}");
        }
    }

    #[test]
    fn neighbours_of_the_ranges_are_public() {
        for address in [
            "1.1.1.1",
            "8.8.8.8",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.0.3.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "93.184.216.34",
        ] {
            assert_eq!(class(address), AddressClass::Public, "{address}");
        }
    }

    #[test]
    fn every_non_public_ipv6_range_is_named() {
        for (address, range) in [
            ("::", "unspecified"),
            ("::1", "loopback"),
            ("::ffff:127.0.0.1", "ipv4-mapped"),
            ("::ffff:169.254.169.254", "ipv4-mapped"),
            ("::ffff:10.0.0.1", "ipv4-mapped"),
            ("::127.0.0.1", "ipv4-compatible"),
            ("::8.8.8.8", "ipv4-compatible"),
            ("::2", "ipv4-compatible"),
            ("64:ff9b::127.0.0.1", "nat64"),
            ("64:ff9b::a9fe:a9fe", "nat64"),
            ("64:ff9b:1::1", "nat64-local"),
            ("100::1", "reserved"),
            ("fc00::", "unique-local"),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "unique-local"),
            ("fe80::", "link-local"),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local"),
            ("fec0::1", "site-local"),
            ("ff02::1", "multicast"),
            ("ff0e::1", "multicast"),
            ("2001:db8::1", "documentation"),
            ("3fff::1", "documentation"),
            ("2001::1", "ietf-protocol"),
            ("2001:1ff:ffff::1", "ietf-protocol"),
            ("2002:7f00:1::", "6to4"),
            ("4000::1", "reserved"),
            ("1fff:ffff::1", "reserved"),
        ] {
            assert_eq!(class(address), AddressClass::NonPublic(range), "{address}");
        }
    }

    #[test]
    fn global_ipv6_and_translations_of_public_ipv4_are_public() {
        for address in [
            "2606:4700:4700::1111",
            "2001:200::1",
            "2003::1",
            "3ffe:ffff::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ] {
            assert_eq!(class(address), AddressClass::Public, "{address}");
        }
        assert!(class("127.0.0.1").is_private());
        assert!(!class("8.8.8.8").is_private());
        assert_eq!(class("8.8.8.8").range(), "public");
        assert_eq!(class("::1").range(), "loopback");
    }
}
