//! The forwarding headers' grammar: RFC 7239 `Forwarded` elements (quoted strings, escapes,
//! IPv6 nodes with and without brackets and ports, obfuscated identifiers) and the node, proto
//! and host values that `X-Forwarded-*` share with it. What to believe of them is decided by
//! [`super::resolve`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, header};

/// Longest forwarded host believed (a DNS name is at most 253 bytes, plus a port).
const MAX_HOST_LEN: usize = 260;

/// One element of a `Forwarded` header: what one proxy saw.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Hop {
    /// `for=`: the address that connected to that proxy; `None` for `unknown`, an obfuscated
    /// identifier, garbage, or no `for=`.
    pub(super) node: Option<IpAddr>,
    pub(super) proto: Option<&'static str>,
    pub(super) host: Option<String>,
}

/// All `Forwarded` headers, in order, as hops. `None` when they are malformed (unbalanced
/// quotes, a pair without `=`, a repeated parameter): then the header is ignored as a whole,
/// since where one element ends can no longer be told.
pub(super) fn parse_forwarded(headers: &HeaderMap) -> Option<Vec<Hop>> {
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
pub(super) fn parse_node(s: &str) -> Option<IpAddr> {
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

pub(super) fn parse_proto(s: &str) -> Option<&'static str> {
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
pub(super) fn parse_host(s: &str) -> Option<String> {
    let s = s.trim();
    let ok = !s.is_empty()
        && s.len() <= MAX_HOST_LEN
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b".-_:[]".contains(&c));
    ok.then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::proxy::tests::{headers, ip};

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
}
