//! How a file is offered for download: the `Content-Disposition` value that names it, sent by
//! mtfu's own download responses and put into S3 presigned URLs (`response-content-disposition`),
//! so that both name the file alike.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// RFC 5987 `attr-char`: what may stay unescaped in `filename*=UTF-8''...`.
const ATTR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment` with the name twice: `filename*` (RFC 6266/8187, UTF-8, what every current
/// browser uses) and an ASCII `filename` for old clients, where anything that is not printable
/// ASCII, and the quote, backslash and percent sign, become `_`.
pub fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if !matches!(c, '"' | '\\' | '%') => c,
            _ => '_',
        })
        .collect();
    format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{}",
        utf8_percent_encode(name, ATTR)
    )
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn content_disposition_has_an_ascii_fallback_and_the_utf8_name() {
        assert_eq!(
            content_disposition("r\u{e9}sum\u{e9} \"1\"%.pdf"),
            "attachment; filename=\"r_sum_ _1__.pdf\"; \
             filename*=UTF-8''r%C3%A9sum%C3%A9%20%221%22%25.pdf"
        );
        assert_eq!(
            content_disposition("a\\b;c.txt"),
            "attachment; filename=\"a_b;c.txt\"; filename*=UTF-8''a%5Cb%3Bc.txt"
        );
    }
}
