//! What content type an upload is stored with, and whether `limits.allowed_content_types`
//! lets it in. Pure functions over the client's claim, the first bytes and the file name: every
//! transport (multipart `/api/upload`, raw `PUT`, tus) decides the same way, through
//! [`crate::service::Files::stage_typed`] or, for a transport that gets its first bytes in some
//! other way, [`decide`] and [`check`] directly.
//!
//! The stored type is the client's when it gives a real one; when it gives none, or
//! `application/octet-stream` (what clients send when they do not know), the type is sniffed
//! from the magic bytes (`infer`), then guessed from the file name's extension (`mime_guess`),
//! else `application/octet-stream`. The stored type is never trusted for serving: downloads
//! carry `X-Content-Type-Options: nosniff` and `Content-Disposition: attachment`.

/// Bytes of a body looked at before its type is decided: enough for `infer` to tell the OOXML
/// formats (a docx is a zip whose entries it reads) from a plain zip. Held once per upload,
/// before the first byte is written.
pub const SNIFF_BYTES: usize = 8 * 1024;

/// Longest client-given type kept; a longer one is ignored (and the type sniffed).
const MAX_TYPE_LEN: usize = 255;

const OCTET_STREAM: &str = "application/octet-stream";

/// How an upload's type was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// What the file is stored (and later served) with.
    pub stored: String,
    /// What the first bytes show, when `infer` knows their format.
    pub sniffed: Option<String>,
}

/// `type/subtype` of `ct`, lower-cased, without parameters.
pub fn essence(ct: &str) -> String {
    ct.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The client's type, if it is a syntactically valid one that says something.
fn claimed_type(claimed: Option<&str>) -> Option<String> {
    let c = claimed?.trim();
    if c.is_empty() || c.len() > MAX_TYPE_LEN || !c.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    let m: mime_guess::mime::Mime = c.parse().ok()?;
    if m.essence_str().eq_ignore_ascii_case(OCTET_STREAM) {
        return None;
    }
    Some(m.to_string())
}

/// Whether deciding needs the first bytes: the client gave no usable type, or an allow-list is
/// set (the bytes are checked against it too).
pub fn needs_head(claimed: Option<&str>, allowed: &[String]) -> bool {
    !allowed.is_empty() || claimed_type(claimed).is_none()
}

/// Decide the type of an upload from the client's claim, its first bytes (up to
/// [`SNIFF_BYTES`]; may be empty when [`needs_head`] said no) and its file name.
pub fn decide(claimed: Option<&str>, head: &[u8], file_name: &str) -> Decision {
    let sniffed = infer::get(head).map(|t| t.mime_type().to_owned());
    let stored = claimed_type(claimed)
        .or_else(|| sniffed.clone())
        .or_else(|| {
            mime_guess::from_path(file_name)
                .first_raw()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| OCTET_STREAM.to_owned());
    Decision { stored, sniffed }
}

/// Whether `ct` matches one of `patterns` (`type/subtype`, `type/*`, `*/*`); an empty list
/// allows everything.
pub fn allowed(patterns: &[String], ct: &str) -> bool {
    if patterns.is_empty() {
        return true;
    }
    let ct = essence(ct);
    let major = ct.split('/').next().unwrap_or("");
    patterns.iter().any(|p| {
        let p = p.trim().to_ascii_lowercase();
        p == "*/*" || p == ct || p.strip_suffix("/*") == Some(major)
    })
}

/// `Ok` when the stored type and the sniffed one (if any) are allowed, else the first type that
/// is not: a client cannot pass an allow-list of `image/*` by calling a PDF `image/png`, nor
/// store a PNG as `text/html`.
///
/// With an allow-list, a stored type of another kind than the bytes show (a PDF labelled
/// `image/png`: `image` against `application`) is refused too, even when both are allowed: the
/// file would be served under a type its bytes contradict. Types of one kind (a PNG labelled
/// `image/jpeg`) pass: sniffing tells formats apart less reliably than kinds.
pub fn check(patterns: &[String], d: &Decision) -> Result<(), String> {
    for ct in std::iter::once(&d.stored).chain(d.sniffed.as_ref()) {
        if !allowed(patterns, ct) {
            return Err(essence(ct));
        }
    }
    let kind = |ct: &str| essence(ct).split('/').next().unwrap_or("").to_owned();
    if !patterns.is_empty()
        && let Some(sniffed) = &d.sniffed
        && kind(&d.stored) != kind(sniffed)
    {
        return Err(essence(&d.stored));
    }
    Ok(())
}

/// Validate one `limits.allowed_content_types` entry.
pub fn check_pattern(p: &str) -> Result<(), String> {
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let ok = match p.trim().split_once('/') {
        Some(("*", "*")) => true,
        Some((t, "*")) => token(t),
        Some((t, s)) => token(t) && token(s),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{p:?} is not a content type pattern (type/subtype, type/* or */*)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0";

    fn list(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_clients_type_is_kept_when_it_says_something() {
        let d = decide(Some("text/plain; charset=utf-8"), b"hello", "a.bin");
        assert_eq!(d.stored, "text/plain; charset=utf-8");
        assert_eq!(d.sniffed, None);
    }

    #[test]
    fn octet_stream_or_no_type_is_sniffed_then_guessed_from_the_name() {
        assert_eq!(decide(None, PNG, "x").stored, "image/png");
        assert_eq!(
            decide(Some("application/octet-stream"), PNG, "x.txt").stored,
            "image/png"
        );
        assert_eq!(decide(None, b"hello", "notes.txt").stored, "text/plain");
        assert_eq!(decide(Some("nonsense"), b"", "x").stored, OCTET_STREAM);
        assert_eq!(decide(None, b"", "x.pdf").stored, "application/pdf");
    }

    #[test]
    fn patterns_match_exactly_by_major_type_or_everything() {
        let p = list(&["image/*", "application/pdf"]);
        assert!(allowed(&p, "image/png"));
        assert!(allowed(&p, "IMAGE/JPEG; q=1"));
        assert!(allowed(&p, "application/pdf"));
        assert!(!allowed(&p, "application/pdfx"));
        assert!(!allowed(&p, "text/plain"));
        assert!(allowed(&[], "text/html"));
        assert!(allowed(&list(&["*/*"]), "text/html"));
    }

    #[test]
    fn a_lying_client_is_refused_by_the_bytes() {
        let p = list(&["image/*"]);
        let pdf = decide(Some("image/png"), b"%PDF-1.7\n...", "x.png");
        assert_eq!(check(&p, &pdf), Err("application/pdf".into()));
        let html_png = decide(Some("text/html"), PNG, "x.html");
        assert_eq!(check(&p, &html_png), Err("text/html".into()));
        assert_eq!(check(&p, &decide(None, PNG, "x")), Ok(()));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["image", "*/png", "", "a b/c", "text/"] {
            assert!(check_pattern(bad).is_err(), "{bad:?}");
        }
        for good in ["image/*", "*/*", "application/vnd.ms-excel", "text/plain"] {
            assert!(check_pattern(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn a_type_the_bytes_contradict_is_refused_under_an_allow_list() {
        let pdf = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj";
        let list = vec!["image/*".to_owned(), "application/pdf".to_owned()];
        let labelled_png = decide(Some("image/png"), pdf, "x.png");
        assert_eq!(labelled_png.sniffed.as_deref(), Some("application/pdf"));
        assert_eq!(check(&list, &labelled_png), Err("image/png".to_owned()));
        // Honestly labelled, or without a list, it passes.
        assert_eq!(
            check(&list, &decide(Some("application/pdf"), pdf, "x.pdf")),
            Ok(())
        );
        assert_eq!(check(&[], &labelled_png), Ok(()));
        // Same kind, other format: allowed.
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
        assert_eq!(
            check(&list, &decide(Some("image/jpeg"), png, "x.jpg")),
            Ok(())
        );
    }
}
