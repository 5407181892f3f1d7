//! Running behind a reverse proxy, load balancer or API Gateway: who the client is and which
//! scheme and host it used (forwarding headers, believed only from `server.trusted_proxies`), the
//! path prefix in front of every route (`server.base_path`), and the gateway's cap on request
//! bodies (`server.max_request_body`).
//!
//! The client address is found the standard way: walk the forwarded addresses from the right
//! (nearest hop first), skipping trusted proxies; the first address that is not one is the
//! client. Everything left of it was written by that client and is never looked at. `Forwarded`
//! (RFC 7239) is preferred over `X-Forwarded-For` when a trusted peer sent it.

use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, Request, StatusCode, Uri};
use serde_json::json;

use super::{ConnInfo, Response, json_response};
use crate::config::TrustedProxy;
use forwarded::{parse_forwarded, parse_host, parse_node, parse_proto};

mod forwarded;

/// Requests outside `server.base_path` are routed to this path, which no route matches, so
/// they take the one 404 path (JSON body, access log, metrics) like any unknown path.
pub const OUTSIDE_BASE_PATH: &str = "/.outside-base-path";

/// ACME HTTP-01 challenges are always asked for at the root of the host, so they are served
/// there whatever `server.base_path` says.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The client as far as the trusted proxies vouch for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The client's address: the TCP peer's, or the one trusted proxies forwarded for.
    pub ip: IpAddr,
    /// `https` or `http`: the listener's, or the one a trusted proxy forwarded.
    pub scheme: &'static str,
    /// The host the client asked for: a trusted proxy's forwarded host, else `host`.
    pub host: Option<String>,
}

fn is_trusted(trusted: &[TrustedProxy], ip: IpAddr) -> bool {
    trusted.iter().any(|t| t.contains(ip))
}

/// Who sent the request on `conn`. `host` is the request's own `Host` (or URI authority).
/// Forwarding headers count only when the TCP peer is a trusted proxy.
pub fn resolve(
    trusted: &[TrustedProxy],
    conn: ConnInfo,
    headers: &HeaderMap,
    host: Option<String>,
) -> Client {
    let peer = conn.peer.ip().to_canonical();
    if !is_trusted(trusted, peer) {
        return Client {
            ip: peer,
            scheme: conn.scheme,
            host,
        };
    }
    let (ip, mut proto, mut fwd_host) = match parse_forwarded(headers) {
        Some(hops) if !hops.is_empty() => {
            let nodes: Vec<Option<IpAddr>> = hops.iter().map(|h| h.node).collect();
            let (ip, stop) = walk(trusted, peer, &nodes);
            // Hops from `stop` rightwards were written by trusted proxies; the one at `stop`
            // by the proxy that saw the client, so its proto and host describe the client's
            // request. Nearer hops fill in what it left out.
            let hops = hops.get(stop..).unwrap_or_default();
            let proto = hops.iter().find_map(|h| h.proto);
            let host = hops.iter().find_map(|h| h.host.clone());
            (ip, proto, host)
        }
        _ => (walk(trusted, peer, &x_forwarded_for(headers)).0, None, None),
    };
    // Proxies overwrite X-Forwarded-Proto/-Host rather than append to them; should there be a
    // list, the last item is the one our (trusted) peer wrote.
    if proto.is_none() {
        proto = last_item(headers, "x-forwarded-proto").and_then(parse_proto);
    }
    if fwd_host.is_none() {
        fwd_host = last_item(headers, "x-forwarded-host").and_then(parse_host);
    }
    Client {
        ip,
        scheme: proto.unwrap_or(conn.scheme),
        host: fwd_host.or(host),
    }
}

/// Walk `nodes` (left: farthest) from the right: the client is the first address that is not a
/// trusted proxy. An unknown or unreadable hop ends the walk at the proxy that reported it.
/// Also returns the index where the walk stopped.
fn walk(trusted: &[TrustedProxy], peer: IpAddr, nodes: &[Option<IpAddr>]) -> (IpAddr, usize) {
    let mut client = peer;
    let mut stop = nodes.len();
    for (i, node) in nodes.iter().enumerate().rev() {
        stop = i;
        let Some(ip) = *node else { break };
        client = ip;
        if !is_trusted(trusted, ip) {
            break;
        }
    }
    (client, stop)
}

/// Every `X-Forwarded-For` address, header lines in order. Empty items are skipped;
/// unreadable ones are unknown hops.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut out = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        match value.to_str() {
            Ok(s) => out.extend(
                s.split(',')
                    .map(str::trim)
                    .filter(|i| !i.is_empty())
                    .map(parse_node),
            ),
            Err(_) => out.push(None),
        }
    }
    out
}

/// The last non-empty comma-separated item of header `name`.
fn last_item<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .rfind(|s| !s.is_empty())
}

/// `path` without the `base` prefix (a whole-segment match: `/prod` takes `/prod/api/...` and
/// `/prod`, not `/production`); `None` when the path is outside it.
pub fn strip_base_path<'a>(base: &str, path: &'a str) -> Option<&'a str> {
    if base.is_empty() {
        return Some(path);
    }
    match path.strip_prefix(base)? {
        "" => Some("/"),
        rest if rest.starts_with('/') => Some(rest),
        _ => None,
    }
}

/// Rewrite the request's URI to the path the router sees: without `base`, or
/// [`OUTSIDE_BASE_PATH`] when outside it (ACME challenges excepted). The query is kept.
pub fn route_within_base_path<B>(base: &str, req: &mut Request<B>) {
    if base.is_empty() || req.uri().path().starts_with(ACME_CHALLENGE_PREFIX) {
        return;
    }
    let uri = req.uri();
    let path = strip_base_path(base, uri.path()).unwrap_or(OUTSIDE_BASE_PATH);
    let rewritten = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    *req.uri_mut() = rewritten
        .parse()
        .unwrap_or_else(|_| Uri::from_static(OUTSIDE_BASE_PATH));
}

/// The 413 for a body over `server.max_request_body`: says the limit, and where larger files
/// go (tus chunks no larger than the limit pass any gateway).
pub fn request_too_large(max: u64, base_path: &str) -> Response {
    json_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &json!({
            "detail": format!(
                "Request body exceeds the maximum of {max} bytes accepted here \
                 (server.max_request_body); send larger files with resumable uploads at \
                 {base_path}/api/v2/uploads (tus 1.0.0) in chunks of at most {max} bytes"
            ),
            "code": "request_too_large",
            "max_request_body": max,
        }),
    )
}

/// Why a [`Capped`] stream ended early.
#[derive(Debug, thiserror::Error)]
pub enum CappedError<E> {
    #[error(transparent)]
    Body(E),
    #[error("the request body is larger than {0} bytes (server.max_request_body)")]
    TooLarge(u64),
}

/// A request body that fails once more than `max` bytes have arrived, counting what actually
/// arrives (a `Content-Length` can be absent; hyper enforces it when present). [`exceeded`]
/// tells afterwards whether that is why reading stopped.
///
/// [`exceeded`]: Capped::exceeded
pub struct Capped<S> {
    inner: S,
    max: Option<u64>,
    seen: u64,
    exceeded: bool,
}

impl<S> Capped<S> {
    /// `max: None` counts nothing and never fails.
    pub fn new(inner: S, max: Option<u64>) -> Self {
        Self {
            inner,
            max,
            seen: 0,
            exceeded: false,
        }
    }

    pub fn exceeded(&self) -> bool {
        self.exceeded
    }

    /// Bytes the inner stream has yielded so far.
    pub fn received(&self) -> u64 {
        self.seen
    }
}

impl<S, E> Stream for Capped<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
{
    type Item = Result<Bytes, CappedError<E>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let (true, Some(max)) = (this.exceeded, this.max) {
            return Poll::Ready(Some(Err(CappedError::TooLarge(max))));
        }
        match Pin::new(&mut this.inner).poll_next(cx) {
            Poll::Ready(Some(Ok(chunk))) => {
                this.seen += chunk.len() as u64;
                match this.max {
                    Some(max) if this.seen > max => {
                        this.exceeded = true;
                        Poll::Ready(Some(Err(CappedError::TooLarge(max))))
                    }
                    _ => Poll::Ready(Some(Ok(chunk))),
                }
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(CappedError::Body(e)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use futures_util::StreamExt;
    use http::HeaderValue;

    use super::*;

    pub(super) fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn nets(list: &[&str]) -> Vec<TrustedProxy> {
        list.iter()
            .map(|s| TrustedProxy::parse(s).expect("net"))
            .collect()
    }

    fn conn(peer: &str) -> ConnInfo {
        ConnInfo {
            peer: SocketAddr::new(ip(peer), 40000),
            scheme: "http",
        }
    }

    pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let h = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=203.0.113.9;proto=https;host=evil.example"),
        ]);
        let c = resolve(
            &nets(&["10.0.0.0/8"]),
            conn("192.0.2.5"),
            &h,
            Some("files.local".into()),
        );
        assert_eq!(
            c,
            Client {
                ip: ip("192.0.2.5"),
                scheme: "http",
                host: Some("files.local".into())
            }
        );
        let c = resolve(&[], conn("10.0.0.1"), &h, None);
        assert_eq!(c.ip, ip("10.0.0.1"));
        assert_eq!(c.host, None);
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right_past_trusted_hops() {
        let trusted = nets(&["10.0.0.0/8", "fd00::/8"]);
        let xff = |v: &str| {
            resolve(
                &trusted,
                conn("10.0.0.1"),
                &headers(&[("x-forwarded-for", v)]),
                None,
            )
            .ip
        };
        // The client forged the leftmost entry; the proxies appended the real one.
        assert_eq!(xff("1.1.1.1, 198.51.100.7, 10.1.1.1"), ip("198.51.100.7"));
        assert_eq!(xff("198.51.100.7:5555,[fd00::5]:80"), ip("198.51.100.7"));
        assert_eq!(xff("[2001:db8::7]"), ip("2001:db8::7"));
        // Every hop trusted: the farthest one.
        assert_eq!(xff("10.9.9.9, 10.1.1.1"), ip("10.9.9.9"));
        // Garbage stops the walk at the proxy that wrote it.
        assert_eq!(xff("198.51.100.7, garbage, 10.1.1.1"), ip("10.1.1.1"));
        assert_eq!(xff("198.51.100.7, unknown"), ip("10.0.0.1"));
        assert_eq!(xff(""), ip("10.0.0.1"));
        // Several lines are one list.
        let h = headers(&[
            ("x-forwarded-for", "1.1.1.1, 198.51.100.7"),
            ("x-forwarded-for", "10.2.2.2"),
        ]);
        assert_eq!(
            resolve(&trusted, conn("10.0.0.1"), &h, None).ip,
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_trusted_peer_sets_proto_and_host_when_they_are_sane() {
        let trusted = nets(&["127.0.0.1"]);
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.7"),
            ("x-forwarded-proto", "http, HTTPS"),
            ("x-forwarded-host", "files.example.com"),
        ]);
        let c = resolve(&trusted, conn("127.0.0.1"), &h, Some("backend:8080".into()));
        assert_eq!(c.scheme, "https");
        assert_eq!(c.host.as_deref(), Some("files.example.com"));
        for (proto, host) in [("ftp", "a/b"), ("", "user@host"), ("https x", "a b")] {
            let h = headers(&[("x-forwarded-proto", proto), ("x-forwarded-host", host)]);
            let c = resolve(&trusted, conn("127.0.0.1"), &h, Some("backend".into()));
            assert_eq!(c.scheme, "http", "{proto}");
            assert_eq!(c.host.as_deref(), Some("backend"), "{host}");
        }
    }

    #[test]
    fn forwarded_is_preferred_and_its_proto_host_come_from_the_clients_hop() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[
            (
                "forwarded",
                r#"for=1.1.1.1;host=forged.example, for="198.51.100.7:1234";proto=https;host=files.example.com, for=10.1.1.1;proto=http;host=internal"#,
            ),
            ("x-forwarded-for", "203.0.113.1"),
            ("x-forwarded-host", "other.example"),
        ]);
        let c = resolve(&trusted, conn("10.0.0.1"), &h, None);
        assert_eq!(c.ip, ip("198.51.100.7"));
        assert_eq!(c.scheme, "https");
        assert_eq!(c.host.as_deref(), Some("files.example.com"));
        // Missing from the client's hop: a nearer trusted hop's, then X-Forwarded-*.
        let h = headers(&[
            ("forwarded", "for=198.51.100.7, for=10.1.1.1;proto=https"),
            ("x-forwarded-host", "files.example.com"),
        ]);
        let c = resolve(&trusted, conn("10.0.0.1"), &h, None);
        assert_eq!((c.ip, c.scheme), (ip("198.51.100.7"), "https"));
        assert_eq!(c.host.as_deref(), Some("files.example.com"));
        // A malformed Forwarded falls back to X-Forwarded-For.
        let h = headers(&[
            ("forwarded", r#"for="198.51.100.7"#),
            ("x-forwarded-for", "203.0.113.1"),
        ]);
        assert_eq!(
            resolve(&trusted, conn("10.0.0.1"), &h, None).ip,
            ip("203.0.113.1")
        );
    }

    #[test]
    fn an_ipv4_mapped_peer_matches_ipv4_blocks() {
        let trusted = nets(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "198.51.100.7")]);
        let c = resolve(&trusted, conn("::ffff:10.0.0.1"), &h, None);
        assert_eq!(c.ip, ip("198.51.100.7"));
    }

    #[test]
    fn the_base_path_is_matched_by_whole_segments() {
        assert_eq!(strip_base_path("", "/api/token/"), Some("/api/token/"));
        assert_eq!(
            strip_base_path("/prod", "/prod/api/token/"),
            Some("/api/token/")
        );
        assert_eq!(strip_base_path("/prod", "/prod"), Some("/"));
        assert_eq!(strip_base_path("/prod", "/production/api/token/"), None);
        assert_eq!(strip_base_path("/prod", "/api/token/"), None);
        assert_eq!(strip_base_path("/a/b", "/a/b/dl/1/x"), Some("/dl/1/x"));
        let mut req = Request::new(());
        *req.uri_mut() = Uri::from_static("/prod/api/list_files?page=2");
        route_within_base_path("/prod", &mut req);
        assert_eq!(req.uri(), "/api/list_files?page=2");
        *req.uri_mut() = Uri::from_static("/production/api/list_files");
        route_within_base_path("/prod", &mut req);
        assert_eq!(req.uri().path(), OUTSIDE_BASE_PATH);
        assert_eq!(super::super::router::route(OUTSIDE_BASE_PATH), None);
        *req.uri_mut() = Uri::from_static("/.well-known/acme-challenge/abc");
        route_within_base_path("/prod", &mut req);
        assert_eq!(req.uri().path(), "/.well-known/acme-challenge/abc");
    }

    #[tokio::test]
    async fn the_cap_counts_arriving_bytes() {
        let chunks = || {
            futures_util::stream::iter(
                (0..4).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![0u8; 100]))),
            )
        };
        let mut s = Capped::new(chunks(), Some(400));
        let mut n = 0;
        while let Some(c) = s.next().await {
            n += c.expect("within the cap").len();
        }
        assert_eq!((n, s.exceeded()), (400, false));
        let mut s = Capped::new(chunks(), Some(250));
        assert!(matches!(s.next().await, Some(Ok(_))));
        assert!(matches!(s.next().await, Some(Ok(_))));
        assert!(!s.exceeded());
        assert!(matches!(
            s.next().await,
            Some(Err(CappedError::TooLarge(250)))
        ));
        assert!(s.exceeded());
        // It never looks like a clean end afterwards.
        assert!(matches!(
            s.next().await,
            Some(Err(CappedError::TooLarge(250)))
        ));
        let mut s = Capped::new(chunks(), None);
        assert_eq!((&mut s).count().await, 4);
    }
}
