//! Where webhooks may be sent. An endpoint URL must be http(s) with a host; unless the
//! server allows them, loopback, private, link-local and other non-public addresses
//! are refused — when the URL is saved (IP literals and `localhost`) and again at every
//! delivery, after DNS resolution (a public name that resolves to a private address is
//! refused too), by the resolver of the delivery client. Redirects are not followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which non-public targets the server accepts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    pub allow_loopback: bool,
    pub allow_private: bool,
}

impl Policy {
    /// Why `ip` may not be a target, if it may not.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        if ip.is_loopback() {
            return (!self.allow_loopback).then_some("a loopback address");
        }
        if ip.is_unspecified() || ip.is_multicast() || is_broadcast(ip) {
            return Some("not a unicast address");
        }
        if is_non_public(ip) && !self.allow_private {
            return Some("a private or link-local address");
        }
        None
    }

    /// Checks an endpoint URL: scheme, host, and the host when it is an address or
    /// `localhost`. Returns the issue for a 422.
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, String> {
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("is not a valid URL ({e})"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err("must be an http or https URL".to_owned());
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err("must not carry credentials".to_owned());
        }
        if url.len() > 2048 {
            return Err("must be at most 2048 characters".to_owned());
        }
        let Some(host) = parsed.host_str() else {
            return Err("must name a host".to_owned());
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        let refused = match host.parse::<IpAddr>() {
            Ok(ip) => self.refuses(ip),
            Err(_) if host == "localhost" || host.ends_with(".localhost") => self.refuses(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            Err(_) => None,
        };
        match refused {
            Some(why) => Err(format!("points to {why}; this server does not send webhooks there")),
            None => Ok(parsed),
        }
    }
}

fn is_broadcast(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V4(v4) if v4.is_broadcast())
}

fn is_non_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_link_local()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && v4.octets()[2] == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240 // reserved
                || v4.is_documentation()
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || v6.segments()[..2] == [0x2001, 0x0db8] // documentation
                || is_nat64_of_non_public(v6)
        }
    }
}

/// `64:ff9b::/96` embeds an IPv4 address.
fn is_nat64_of_non_public(v6: Ipv6Addr) -> bool {
    let s = v6.segments();
    if s[..6] != [0x64, 0xff9b, 0, 0, 0, 0] {
        return false;
    }
    let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    v4.is_loopback() || is_non_public(IpAddr::V4(v4))
}

/// The delivery client's resolver: the system's, minus the addresses the policy
/// refuses; a name left with none fails to resolve.
pub struct GuardedResolver {
    pub policy: Policy,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| policy.refuses(a.ip()).is_none()).collect();
            if allowed.is_empty() {
                let why = if found.is_empty() { "resolves to no address" } else { "resolves only to refused addresses" };
                return Err(format!("webhook target {host} {why}").into());
            }
            let addrs: Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_public_targets_by_default() {
        let strict = Policy::default();
        for url in [
            "http://127.0.0.1/hook",
            "http://localhost:8080/x",
            "http://[::1]/",
            "http://10.1.2.3/",
            "http://192.168.0.10/",
            "http://172.16.5.4/",
            "http://169.254.169.254/latest/meta-data",
            "http://[fd00::1]/",
            "http://[fe80::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://0.0.0.0/",
            "http://100.64.0.1/",
        ] {
            assert!(strict.check_url(url).is_err(), "{url} should be refused");
        }
        for url in ["ftp://example.com/", "not a url", "http://user:pw@example.com/", "https://"] {
            assert!(strict.check_url(url).is_err(), "{url} should be refused");
        }
        assert!(strict.check_url("https://hooks.example.com/breadbox").is_ok());
        assert!(strict.check_url("http://93.184.216.34:8080/x").is_ok());
    }

    #[test]
    fn allows_what_the_server_is_configured_to() {
        let loopback = Policy { allow_loopback: true, allow_private: false };
        assert!(loopback.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(loopback.check_url("http://localhost/hook").is_ok());
        assert!(loopback.check_url("http://10.0.0.1/hook").is_err());
        let private = Policy { allow_loopback: false, allow_private: true };
        assert!(private.check_url("http://10.0.0.1/hook").is_ok());
        assert!(private.check_url("http://127.0.0.1/hook").is_err());
        assert!(private.check_url("http://0.0.0.0/hook").is_err(), "never the unspecified address");
    }
}
