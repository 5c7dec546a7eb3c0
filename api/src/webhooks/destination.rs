//! Where a webhook may go. A callback URL is the client's choice, and the api sends to it from
//! inside the operator's network: unchecked, it would let anyone make the service probe its own
//! network (Redis, RabbitMQ, a cloud's metadata endpoint at 169.254.169.254). So the scheme is
//! http or https, and every address the host resolves to must be public, unless the operator
//! allows a network explicitly (`RCE_WEBHOOK_ALLOW_NETS`). The check runs at admission and again
//! at each send, and the send connects to the address that was checked (no second lookup that
//! DNS could answer differently), without following redirects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A network in CIDR form (`10.0.0.0/8`, `::1/128`; a bare address is the single address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (addr, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = addr
            .trim_matches(['[', ']'])
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?} has a bad prefix length"))?,
        };
        Ok(Self { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let bits = |ip: IpAddr| -> (u128, u8) {
            match ip {
                IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let (net, width) = bits(self.addr);
        let (candidate, candidate_width) = bits(canonical(ip));
        if width != candidate_width {
            return false;
        }
        let shift = width - self.prefix;
        shift >= width || (net >> shift) == (candidate >> shift)
    }
}

/// Parses `RCE_WEBHOOK_ALLOW_NETS` (comma-separated; empty: none).
pub fn parse_nets(text: &str) -> Result<Vec<Net>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(Net::parse)
        .collect()
}

/// An IPv4 address mapped (`::ffff:a.b.c.d`) or embedded (`::a.b.c.d`) in IPv6 is judged as the
/// IPv4 address it is (`::1` reads as 0.0.0.1: not public either).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// Why `ip` is not a public address, if it is not one.
pub fn non_public(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => non_public_v6(v6),
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local",
        _ if ip.is_unspecified() || a == 0 => "unspecified",
        _ if ip.is_broadcast() => "broadcast",
        _ if ip.is_multicast() || a >= 240 => "multicast or reserved",
        _ if a == 100 && (64..128).contains(&b) => "shared (carrier-grade NAT)",
        _ if ip.is_documentation() => "documentation",
        _ if a == 198 && (b == 18 || b == 19) => "benchmarking",
        _ if a == 192 && b == 0 && ip.octets()[2] == 0 => "IETF protocol assignments",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_multicast() => "multicast",
        _ if (first & 0xfe00) == 0xfc00 => "unique local (private)",
        _ if (first & 0xffc0) == 0xfe80 => "link-local",
        _ if (first & 0xffc0) == 0xfec0 => "site-local",
        _ if first == 0x2001 && ip.segments()[1] == 0x0db8 => "documentation",
        // NAT64, 6to4, Teredo and SIIT embed IPv4 addresses the checks above would not see.
        _ if first == 0x0064 && ip.segments()[1] == 0xff9b => "NAT64",
        _ if first == 0x2002 => "6to4",
        _ if first == 0x2001 && ip.segments()[1] == 0 => "Teredo",
        _ if ip.segments()[..6] == [0, 0, 0, 0, 0xffff, 0] => "SIIT",
        _ if ip.segments()[..4] == [0x0100, 0, 0, 0] => "discard-only",
        _ => return None,
    })
}

/// Why a webhook may not be sent to `addr`: not public and not in an allowed network.
pub fn refused(addr: IpAddr, allowed: &[Net]) -> Option<String> {
    let why = non_public(addr)?;
    if allowed.iter().any(|n| n.contains(addr)) {
        return None;
    }
    Some(format!(
        "{addr} is a {why} address; webhooks go to public addresses only (an operator may allow networks with RCE_WEBHOOK_ALLOW_NETS)"
    ))
}

/// A callback URL, checked in form: http(s), a host, no credentials, at most 2048 bytes.
pub fn parse_url(text: &str) -> Result<url::Url, String> {
    if text.len() > 2048 {
        return Err("callback_url is longer than 2048 bytes".into());
    }
    let url = url::Url::parse(text).map_err(|e| format!("callback_url is not a URL: {e}"))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!(
            "callback_url must be http or https, not {:?}",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("callback_url has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("callback_url must not carry credentials".into());
    }
    Ok(url)
}

/// Host lookups under way at once. The system resolver runs on a blocking thread that no
/// timeout can stop, so a name whose DNS server never answers holds its thread for the
/// resolver's own timeout; the permit goes with the thread, so at most this many can be stuck,
/// and past them lookups fail at once instead of filling the runtime's blocking pool.
const LOOKUPS: usize = 16;
/// How long a lookup may take before it counts as failed.
const LOOKUP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

static LOOKUP_SLOTS: std::sync::OnceLock<std::sync::Arc<tokio::sync::Semaphore>> =
    std::sync::OnceLock::new();

async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, &'static str> {
    let slots =
        LOOKUP_SLOTS.get_or_init(|| std::sync::Arc::new(tokio::sync::Semaphore::new(LOOKUPS)));
    let Ok(permit) = slots.clone().try_acquire_owned() else {
        return Err("the resolver is busy");
    };
    let target = (host.to_string(), port);
    let resolving = tokio::task::spawn_blocking(move || {
        let _held = permit;
        std::net::ToSocketAddrs::to_socket_addrs(&target).map(Iterator::collect::<Vec<_>>)
    });
    match tokio::time::timeout(LOOKUP_PATIENCE, resolving).await {
        Ok(Ok(Ok(addrs))) => Ok(addrs),
        Ok(Ok(Err(_))) | Ok(Err(_)) => Err("does not resolve"),
        Err(_) => Err("did not resolve in time"),
    }
}

/// Resolves `url`'s host and checks every address; the first one, to connect to. For a host
/// name the refusal says only that it does not lead to an allowed address (the details, which
/// would map the operator's internal names to addresses for anyone who asks, go to the log);
/// for an address the client wrote itself, it says what kind of address it is.
pub async fn resolve(url: &url::Url, allowed: &[Net]) -> Result<SocketAddr, String> {
    let host = url.host_str().expect("parse_url checked the host");
    let port = url
        .port_or_known_default()
        .expect("http and https have default ports");
    let literal = matches!(url.host(), Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)));
    let host = host.trim_matches(['[', ']']);
    let generic =
        || "callback_url's host does not resolve to an address webhooks may reach".to_string();
    let addrs = match lookup(host, port).await {
        Ok(addrs) if !addrs.is_empty() => addrs,
        Ok(_) => return Err(generic()),
        Err(why) => {
            tracing::info!(host, why, "a callback host was refused");
            return Err(generic());
        }
    };
    for addr in &addrs {
        if let Some(why) = refused(addr.ip(), allowed) {
            if literal {
                return Err(format!("callback_url: {why}"));
            }
            tracing::info!(host, %why, "a callback host resolves to an address that is refused");
            return Err(generic());
        }
    }
    Ok(addrs[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_loopback_link_local_and_friends_are_not_public() {
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2002:a00:1::",
            "::127.0.0.1",
            "::ffff:0:a00:1",
            "2001::1",
            "100::1",
        ] {
            assert!(non_public(ip(bad)).is_some(), "{bad} should not be public");
        }
        for good in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(non_public(ip(good)), None, "{good} is public");
        }
    }

    #[test]
    fn allowed_networks_let_exactly_themselves_through() {
        let nets = parse_nets("127.0.0.1/32, 10.0.0.0/8").unwrap();
        assert_eq!(refused(ip("127.0.0.1"), &nets), None);
        assert_eq!(refused(ip("::ffff:127.0.0.1"), &nets), None);
        assert_eq!(refused(ip("10.200.0.1"), &nets), None);
        assert!(refused(ip("127.0.0.2"), &nets).is_some());
        assert!(refused(ip("::1"), &nets).is_some());
        assert!(refused(ip("169.254.169.254"), &nets).is_some());
        assert_eq!(refused(ip("8.8.8.8"), &[]), None);
        assert!(parse_nets("10.0.0.0/33").is_err());
        assert!(parse_nets("nonsense").is_err());
        assert_eq!(parse_nets("").unwrap(), vec![]);
        assert!(Net::parse("0.0.0.0/0").unwrap().contains(ip("1.2.3.4")));
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        assert!(parse_url("https://example.com/hook?x=1").is_ok());
        assert!(parse_url("ftp://example.com/").is_err());
        assert!(parse_url("file:///etc/passwd").is_err());
        assert!(parse_url("http://user:pw@example.com/").is_err());
        assert!(parse_url("not a url").is_err());
        assert!(parse_url(&format!("http://example.com/{}", "a".repeat(3000))).is_err());
    }

    #[tokio::test]
    async fn every_resolved_address_is_checked() {
        let url = parse_url("http://127.0.0.1:9/x").unwrap();
        assert!(resolve(&url, &[]).await.unwrap_err().contains("loopback"));
        // A name: refused without saying where it leads.
        let url = parse_url("http://localhost:9/x").unwrap();
        let refused = resolve(&url, &[]).await.unwrap_err();
        assert!(
            !refused.contains("127.0.0.1") && !refused.contains("loopback"),
            "{refused}"
        );
        let allowed = parse_nets("127.0.0.1").unwrap();
        assert_eq!(
            resolve(&url, &allowed).await.unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        let url = parse_url("http://[::1]:9/x").unwrap();
        assert!(resolve(&url, &allowed).await.is_err());
        // Decimal and hex spellings of an address are addresses too.
        let url = parse_url("http://2130706433/").unwrap();
        assert!(resolve(&url, &[]).await.is_err());
        let url = parse_url("http://0x7f.1/").unwrap();
        assert!(resolve(&url, &[]).await.is_err());
    }
}
