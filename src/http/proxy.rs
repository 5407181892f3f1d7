//! Running behind a reverse proxy, load balancer or API Gateway: who the client is and which
//! scheme and host it used (forwarding headers, believed only from `server.trusted_proxies`), the
//! path prefix in front of every route (`server.base_path`), and the gateway's cap on request
//! bodies (`server.max_request_body`).
//!
//! The client address is found the standard way: walk the forwarded addresses from the right
//! (nearest hop first), skipping trusted proxies; the first address that is not one is the
//! client. Everything left of it was written by that client and is never looked at. `Forwarded`
//! (RFC 7239) is preferred over `X-Forwarded-For` when a trusted peer sent it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use http::{HeaderMap, Request, StatusCode, Uri, header};
use serde_json::json;

use super::{ConnInfo, Response, json_response};
use crate::config::TrustedProxy;

/// Requests outside `server.base_path` are routed to this path, which no route matches, so
/// they take the one 404 path (JSON body, access log, metrics) like any unknown path.
pub const OUTSIDE_BASE_PATH: &str = "/.outside-base-path";

/// ACME HTTP-01 challenges are always asked for at the root of the host, so they are served
/// there whatever `server.base_path` says.
const ACME_CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// Longest forwarded host believed (a DNS name is at most 253 bytes, plus a port).
const MAX_HOST_LEN: usize = 260;

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

/// One element of a `Forwarded` header: what one proxy saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Hop {
    /// `for=`: the address that connected to that proxy; `None` for `unknown`, an obfuscated
    /// identifier, garbage, or no `for=`.
    node: Option<IpAddr>,
    proto: Option<&'static str>,
    host: Option<String>,
}

/// All `Forwarded` headers, in order, as hops. `None` when they are malformed (unbalanced
/// quotes, a pair without `=`, a repeated parameter): then the header is ignored as a whole,
/// since where one element ends can no longer be told.
fn parse_forwarded(headers: &HeaderMap) -> Option<Vec<Hop>> {
    let mut hops = Vec::new();
    for value in headers.get_all(header::FORWARDED) {
        parse_forwarded_value(value.to_str().ok()?, &mut hops)?;
    }
    Some(hops)
}

/// RFC 7239 §4: `1#forwarded-element`, an element is `[pair] *(";" [pair])`, a pair is
/// `token "=" (token / quoted-string)`. Unquoted values are taken leniently (anything up to
/// `;`, `,` or whitespace), since proxies often write `for=2001:db8::1` unquoted.
fn parse_forwarded_value(s: &str, hops: &mut Vec<Hop>) -> Option<()> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut hop = Hop::default();
    let mut seen: Vec<String> = Vec::new();
    let is_ows = |c: u8| c == b' ' || c == b'\t';
    loop {
        while i < b.len() && is_ows(b[i]) {
            i += 1;
        }
        if i == b.len() || b[i] == b',' {
            if !seen.is_empty() {
                hops.push(std::mem::take(&mut hop));
                seen.clear();
            }
            if i == b.len() {
                return Some(());
            }
            i += 1;
            continue;
        }
        if b[i] == b';' {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == start || b.get(i) != Some(&b'=') {
            return None;
        }
        let name = s[start..i].to_ascii_lowercase();
        i += 1;
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let mut v = String::new();
            loop {
                match b.get(i)? {
                    b'"' => break,
                    b'\\' => {
                        i += 1;
                        v.push(char::from(*b.get(i)?));
                    }
                    &c => v.push(char::from(c)),
                }
                i += 1;
            }
            i += 1;
            v
        } else {
            let start = i;
            while i < b.len() && !matches!(b[i], b';' | b',' | b' ' | b'\t' | b'"') {
                i += 1;
            }
            if i == start {
                return None;
            }
            s[start..i].to_owned()
        };
        while i < b.len() && is_ows(b[i]) {
            i += 1;
        }
        if i < b.len() && !matches!(b[i], b';' | b',') {
            return None;
        }
        if seen.contains(&name) {
            return None;
        }
        match name.as_str() {
            "for" => hop.node = parse_node(&value),
            "proto" => hop.proto = parse_proto(&value),
            "host" => hop.host = parse_host(&value),
            _ => {} // `by` and extensions: not needed.
        }
        seen.push(name);
    }
}

/// RFC 7230 `tchar`.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// An address with an optional port: `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]`,
/// `[2001:db8::1]:4711`, or a bare `2001:db8::1`. `unknown`, obfuscated identifiers (`_hidden`)
/// and anything else: `None`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        let ip: Ipv6Addr = addr.parse().ok()?;
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(is_port);
        return port_ok.then_some(IpAddr::V6(ip).to_canonical());
    }
    let (addr, port) = s.rsplit_once(':')?;
    let ip: Ipv4Addr = addr.parse().ok()?;
    is_port(port).then_some(IpAddr::V4(ip))
}

/// A port number, or an obfuscated port (`_abc`, RFC 7239 §6.3).
fn is_port(p: &str) -> bool {
    p.parse::<u16>().is_ok() && p.bytes().all(|c| c.is_ascii_digit())
        || p.len() > 1
            && p.starts_with('_')
            && p.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
}

fn parse_proto(s: &str) -> Option<&'static str> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("https") {
        Some("https")
    } else if s.eq_ignore_ascii_case("http") {
        Some("http")
    } else {
        None
    }
}

/// A host with an optional port, as it may appear in a URL's authority; anything else (paths,
/// user info, spaces) is not believed, since it ends up in the links mtfu hands out.
fn parse_host(s: &str) -> Option<String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= MAX_HOST_LEN
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-_:[]".contains(&c));
    ok.then(|| s.to_owned())
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

    fn ip(s: &str) -> IpAddr {
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

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    fn hops(s: &str) -> Option<Vec<Hop>> {
        parse_forwarded(&headers(&[("forwarded", s)]))
    }

    fn nodes(s: &str) -> Vec<Option<IpAddr>> {
        hops(s)
            .expect("parses")
            .into_iter()
            .map(|h| h.node)
            .collect()
    }

    #[test]
    fn forwarded_reads_the_rfc_examples() {
        // RFC 7239 §4 and §7.
        assert_eq!(nodes(r#"for="_gazonk""#), vec![None]);
        assert_eq!(
            nodes(r#"For="[2001:db8:cafe::17]:4711""#),
            vec![Some(ip("2001:db8:cafe::17"))]
        );
        let h = hops("for=192.0.2.60;proto=http;by=203.0.113.43").expect("parses");
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].node, Some(ip("192.0.2.60")));
        assert_eq!(h[0].proto, Some("http"));
        assert_eq!(
            nodes("for=192.0.2.43, for=198.51.100.17"),
            vec![Some(ip("192.0.2.43")), Some(ip("198.51.100.17"))]
        );
        assert_eq!(
            nodes(r#"for=192.0.2.43,for="[2001:db8:cafe::17]",for=unknown"#),
            vec![Some(ip("192.0.2.43")), Some(ip("2001:db8:cafe::17")), None]
        );
    }

    #[test]
    fn forwarded_values_may_be_quoted_with_escapes_and_commas() {
        let h = hops(
            r#"for="198.51.100.1:8080";host="files.example.com:8443";proto=HTTPS, for=10.0.0.1"#,
        )
        .expect("parses");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].node, Some(ip("198.51.100.1")));
        assert_eq!(h[0].host.as_deref(), Some("files.example.com:8443"));
        assert_eq!(h[0].proto, Some("https"));
        // A comma inside quotes does not end the element; a quoted-pair is unescaped.
        let h = hops(r#"for="x,y";by="a\"b", for=10.0.0.2"#).expect("parses");
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].node, None);
        assert_eq!(h[1].node, Some(ip("10.0.0.2")));
    }

    #[test]
    fn forwarded_ipv6_with_and_without_brackets_and_ports() {
        assert_eq!(nodes(r#"for="[::1]""#), vec![Some(ip("::1"))]);
        assert_eq!(nodes(r#"for="[::1]:_obf""#), vec![Some(ip("::1"))]);
        assert_eq!(nodes("for=2001:db8::1"), vec![Some(ip("2001:db8::1"))]);
        // An IPv4-mapped address is the IPv4 address.
        assert_eq!(
            nodes(r#"for="[::ffff:192.0.2.9]""#),
            vec![Some(ip("192.0.2.9"))]
        );
        for bad in [
            r#"for="[::1""#.to_owned(),
            r#"for="[::1]:99999""#.to_owned(),
            r#"for="[::1]x""#.to_owned(),
            r#"for="[192.0.2.1]""#.to_owned(),
            "for=192.0.2.1:".to_owned(),
            "for=192.0.2.1:port".to_owned(),
            "for=300.0.0.1".to_owned(),
        ] {
            assert_eq!(nodes(&bad), vec![None], "{bad}");
        }
    }

    #[test]
    fn empty_elements_are_skipped_and_malformed_headers_ignored_whole() {
        assert_eq!(
            nodes(" , for=10.0.0.1 ,, ;; for=10.0.0.2 ,"),
            vec![Some(ip("10.0.0.1")), Some(ip("10.0.0.2"))]
        );
        for bad in [
            r#"for="unterminated, for=10.0.0.1"#,
            "for",
            "for=",
            "=10.0.0.1",
            "for=10.0.0.1;for=10.0.0.2",
            "for=10.0.0.1 junk",
            r#"for=a"b""#,
        ] {
            assert_eq!(hops(bad), None, "{bad}");
        }
        // Several header lines are one list, in order.
        let h = headers(&[("forwarded", "for=10.0.0.1"), ("forwarded", "for=10.0.0.2")]);
        let n: Vec<_> = parse_forwarded(&h)
            .expect("parses")
            .iter()
            .map(|h| h.node)
            .collect();
        assert_eq!(n, vec![Some(ip("10.0.0.1")), Some(ip("10.0.0.2"))]);
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
