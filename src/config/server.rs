//! `[server]`: the listeners, the state directory, the path prefix and the protections against
//! slow or hostile clients (timeouts, header and body sizes, connection count), and who may speak
//! for a client (`trusted_proxies`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Listeners, state directory and protections against slow or hostile clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// HTTPS listener, `host:port`.
    pub listen: String,
    /// Optional plain-HTTP listener for running behind a TLS-terminating proxy. Off by default.
    pub plain_listen: Option<String>,
    /// Where the SQLite database, local blobs, generated secrets and certificates live.
    pub data_dir: PathBuf,
    /// Base URL used for links mtfu builds (signed download URLs), e.g. `https://files.example.com`,
    /// used as-is (behind a gateway stage it must include the stage). Unset: built from the
    /// request's scheme and `Host` (as forwarded by a trusted proxy) and `base_path`.
    pub public_url: Option<String>,
    /// Time allowed to finish the TLS handshake.
    pub tls_handshake_timeout_secs: u64,
    /// Time allowed to send a request's headers (HTTP/1).
    pub header_read_timeout_secs: u64,
    /// A connection with no request being handled and no response bytes sent for this long is
    /// closed (HTTP/2 PINGs are not activity); one with no bytes at all, too.
    pub idle_timeout_secs: u64,
    /// An upload whose body sends nothing for this long is aborted (a minimum body rate).
    pub body_read_timeout_secs: u64,
    /// Largest request head (request line + headers) accepted, in bytes.
    pub max_header_bytes: usize,
    /// Connections served at once; further ones wait in the kernel's backlog.
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    pub shutdown_grace_secs: u64,
    /// Addresses of the reverse proxies, load balancers or gateways in front of mtfu. Only a
    /// connection from one of them may say who the client is (`Forwarded`, `X-Forwarded-For`,
    /// `-Proto`, `-Host`). Empty: nobody is trusted and those headers are ignored.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// A path prefix in front of every route, e.g. `/prod` (an API Gateway stage). Stripped before
    /// routing; requests outside it answer 404. Empty: none.
    pub base_path: String,
    /// Largest request body an upload route accepts, in bytes (a gateway's cap, e.g. API
    /// Gateway's 10485760). Larger bodies answer 413 and point at resumable uploads. Unset: none.
    pub max_request_body: Option<u64>,
    /// Listener of `/metrics` (plain HTTP), `host:port`; kept off the service port. Empty or
    /// `"off"`: no metrics listener.
    pub metrics_listen: String,
    /// Slowest average rate of a request body, bytes per second of waiting for it, checked once
    /// the body has been waited for `body_read_timeout_secs`; slower: 408. 0: no minimum.
    pub body_min_rate_bytes_per_sec: u64,
    /// Whole time a body on a route without a token (`/api/token/`, `/api/token/refresh/`) may
    /// take, seconds.
    pub unauthenticated_body_deadline_secs: u64,
}

/// One entry of `server.trusted_proxies`: a CIDR block (`10.0.0.0/8`, `fd00::/8`) or a single
/// address (`10.1.2.3`, `::1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(pub ipnet::IpNet);

impl TrustedProxy {
    pub fn parse(s: &str) -> Result<TrustedProxy, String> {
        let s = s.trim();
        let net = match s.parse::<ipnet::IpNet>() {
            Ok(n) => n.trunc(),
            Err(_) => s.parse::<IpAddr>().map(ipnet::IpNet::from).map_err(|_| {
                format!("{s:?} is neither an IP address nor a CIDR block like 10.0.0.0/8")
            })?,
        };
        Ok(TrustedProxy(net))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&ip)
    }
}

impl Serialize for TrustedProxy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TrustedProxy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        TrustedProxy::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8443".into(),
            plain_listen: None,
            data_dir: PathBuf::from("data"),
            public_url: None,
            tls_handshake_timeout_secs: 10,
            header_read_timeout_secs: 10,
            idle_timeout_secs: 60,
            body_read_timeout_secs: 30,
            max_header_bytes: 16 * 1024,
            max_connections: 1024,
            shutdown_grace_secs: 30,
            trusted_proxies: Vec::new(),
            base_path: String::new(),
            max_request_body: None,
            metrics_listen: "127.0.0.1:9898".into(),
            body_min_rate_bytes_per_sec: 1024,
            unauthenticated_body_deadline_secs: 10,
        }
    }
}

impl ServerConfig {
    /// Addresses parse, the path prefix is well formed, and no timeout or size is zero.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        fn at_least_1(key: &'static str, v: u64) -> Result<(), (&'static str, String)> {
            if v == 0 {
                return Err((key, "must be at least 1".into()));
            }
            Ok(())
        }
        parse_addr(&self.listen).map_err(|m| ("server.listen", m))?;
        if let Some(p) = &self.plain_listen {
            parse_addr(p).map_err(|m| ("server.plain_listen", m))?;
        }
        if let Some(u) = &self.public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            return Err((
                "server.public_url",
                "must start with https:// or http://".into(),
            ));
        }
        validate_base_path(&self.base_path).map_err(|m| ("server.base_path", m))?;
        if !metrics_off(&self.metrics_listen) {
            parse_addr(&self.metrics_listen).map_err(|m| ("server.metrics_listen", m))?;
        }
        at_least_1("server.idle_timeout_secs", self.idle_timeout_secs)?;
        at_least_1("server.body_read_timeout_secs", self.body_read_timeout_secs)?;
        at_least_1(
            "server.unauthenticated_body_deadline_secs",
            self.unauthenticated_body_deadline_secs,
        )?;
        if self.max_request_body == Some(0) {
            return Err(("server.max_request_body", "must be at least 1".into()));
        }
        if self.max_connections == 0 {
            return Err(("server.max_connections", "must be at least 1".into()));
        }
        if self.max_header_bytes < 8192 {
            return Err(("server.max_header_bytes", "must be at least 8192".into()));
        }
        Ok(())
    }
}

/// Whether `server.metrics_listen` turns the metrics listener off.
pub fn metrics_off(listen: &str) -> bool {
    let l = listen.trim();
    l.is_empty() || l.eq_ignore_ascii_case("off")
}

/// `""`, or `/` and path segments without a trailing `/` (`/prod`, `/v1/files`).
fn validate_base_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Ok(());
    }
    let ok_segment = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&b))
    };
    match p.strip_prefix('/') {
        Some(rest) if rest.split('/').all(ok_segment) => Ok(()),
        _ => Err(format!(
            "{p:?} must be empty or start with / and have no trailing /, e.g. \"/prod\""
        )),
    }
}

/// `host:port` with a literal address (`0.0.0.0:443`, `[::]:443`) or `localhost:port`.
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Some(port) = s.strip_prefix("localhost:") {
        let port: u16 = port.parse().map_err(|_| format!("bad port in {s:?}"))?;
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("{s:?} is not host:port with a literal IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn trusted_proxies_take_cidr_blocks_and_single_addresses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"192.168.1.7\", \"fd00::/8\", \"::1\"]\n",
        )
        .expect("write");
        let c = Config::load(Some(&p)).expect("loads");
        let t = &c.server.trusted_proxies;
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(t[0].contains(ip("10.200.0.1")));
        assert!(t[1].contains(ip("192.168.1.7")) && !t[1].contains(ip("192.168.1.8")));
        assert!(t[2].contains(ip("fd12::1")));
        assert!(t[3].contains(ip("::1")));
        std::fs::write(&p, "[server]\ntrusted_proxies = [\"10.0.0.0/33\"]\n").expect("write");
        let err = Config::load(Some(&p)).expect_err("must fail").to_string();
        assert!(err.contains("server.trusted_proxies"), "{err}");
    }

    #[test]
    fn a_base_path_is_a_slash_and_segments() {
        for good in ["", "/prod", "/v1/files", "/stage-2"] {
            validate_base_path(good).expect(good);
        }
        for bad in [
            "prod", "/prod/", "/", "//prod", "/a//b", "/a?b", "/a b", "/..",
        ] {
            assert!(validate_base_path(bad).is_err(), "{bad}");
        }
        let mut c = Config::default();
        c.server.base_path = "prod".into();
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("server.base_path"), "{err}");
        c.server.base_path = "/prod".into();
        c.server.max_request_body = Some(0);
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("server.max_request_body"), "{err}");
    }

    #[test]
    fn a_bad_listen_address_names_its_key() {
        let mut c = Config::default();
        c.server.listen = "nowhere".into();
        let err = c.validate().expect_err("must fail").to_string();
        assert!(err.contains("server.listen"), "{err}");
    }

    #[test]
    fn metrics_listen_off_or_an_address() {
        assert!(metrics_off("") && metrics_off("off") && metrics_off(" OFF "));
        let mut c = Config::default();
        assert!(c.validate().is_ok());
        c.server.metrics_listen = "nonsense".into();
        assert!(c.validate().is_err());
    }
}
