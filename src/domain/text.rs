//! The Unicode rules of names: what text a store can hold at all (no NUL), what makes two
//! file names one (NFC) and which characters a file name must not hide (bidi controls,
//! invisible format characters), and how tenant names are normalised (NFKC), kept to one
//! script, and compared for uniqueness (case-folded confusable skeleton).
//!
//! Pure functions over `&str`; the newtypes of [`crate::domain`] call them in their `parse`.

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::MixedScript;

/// DRF's message for a NUL in a `CharField` (`ProhibitNullCharactersValidator`).
pub const NUL_MESSAGE: &str = "Null characters are not allowed.";

/// Whether every store can hold `s` as text. PostgreSQL's `text` cannot hold U+0000 (the
/// query fails, whatever it was for), so a client's NUL is refused before any store sees it.
/// (Rust strings are valid UTF-8: lone surrogates and invalid bytes cannot reach this far.)
pub fn storable(s: &str) -> bool {
    !s.contains('\0')
}

/// `s` in Normalization Form C: `café` typed as `e` + U+0301 and as `é` is one name.
pub fn nfc(s: &str) -> String {
    s.nfc().collect()
}

/// `s` in Normalization Form KC, as Django normalises usernames: fullwidth `ｊｏｈｎ１`
/// is `john1`.
pub fn nfkc(s: &str) -> String {
    s.nfkc().collect()
}

/// The bidirectional controls that reorder what a reader sees (U+202A–202E, U+2066–2069,
/// and the marks U+200E, U+200F, U+061C).
fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}'
    )
}

fn is_format(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
}

/// What a file name hides, if anything: the first bidi control or invisible format character
/// (category Cf: U+200B, U+2060–2064, U+FEFF, soft hyphen, tags...), as the error message
/// to show. The zero-width (non-)joiners U+200C/U+200D are let through between two visible
/// characters, where Persian words and emoji sequences need them.
pub fn hidden_character(s: &str) -> Option<String> {
    let chars: Vec<char> = s.chars().collect();
    let visible = |i: Option<usize>| {
        i.and_then(|i| chars.get(i))
            .is_some_and(|&c| !c.is_whitespace() && !is_format(c))
    };
    for (i, &c) in chars.iter().enumerate() {
        if !is_format(c) {
            continue;
        }
        if matches!(c, '\u{200C}' | '\u{200D}') && visible(i.checked_sub(1)) && visible(Some(i + 1))
        {
            continue;
        }
        let what = if is_bidi_control(c) {
            "bidirectional control characters"
        } else {
            "invisible formatting characters"
        };
        return Some(format!(
            "Invalid file name: it must not contain {what} (U+{:04X}).",
            c as u32
        ));
    }
    None
}

/// Whether the letters of `s` are of one script (digits and `@.+-_` are of every script;
/// Han with Hiragana/Katakana, or with Hangul, count as one, as UTS #39 says). `jоhn1` with a
/// Cyrillic `о` is not.
pub fn single_script(s: &str) -> bool {
    s.is_single_script()
}

/// The key two tenant names that look alike share: NFKC, lower-cased, then the UTS #39
/// confusable skeleton, lower-cased again. `JOHN1`, `john1` and `ｊｏｈｎ１` share
/// one key, and so do an all-Cyrillic `ассеѕѕ1` and `access1`: only one of each can be a tenant.
pub fn name_key(s: &str) -> String {
    let folded: String = s.nfkc().flat_map(char::to_lowercase).collect();
    unicode_security::skeleton(&folded)
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_nul_is_unstorable() {
        assert!(!storable("a\u{0}b"));
        assert!(storable("a\u{1}b\u{ffff}"));
    }

    #[test]
    fn nfd_and_nfc_are_one_name() {
        assert_eq!(nfc("cafe\u{301}.txt"), "caf\u{e9}.txt");
        assert_eq!(nfkc("\u{ff4a}\u{ff4f}\u{ff48}\u{ff4e}\u{ff11}"), "john1");
    }

    #[test]
    fn bidi_and_invisible_characters_are_named_and_joiners_between_letters_pass() {
        for (bad, what) in [
            (
                "evil\u{202E}fdp.exe",
                "bidirectional control characters (U+202E)",
            ),
            ("\u{2066}a", "bidirectional control characters (U+2066)"),
            ("a\u{200B}b", "invisible formatting characters (U+200B)"),
            ("\u{FEFF}a", "invisible formatting characters (U+FEFF)"),
            ("a\u{2063}", "invisible formatting characters (U+2063)"),
            ("a\u{200D}", "invisible formatting characters (U+200D)"),
            ("\u{200C}a", "invisible formatting characters (U+200C)"),
        ] {
            let m = hidden_character(bad).unwrap_or_default();
            assert!(m.contains(what), "{bad:?}: {m}");
        }
        for good in [
            "report.pdf",
            "\u{645}\u{6cc}\u{200C}\u{62e}\u{648}\u{627}\u{647}\u{645}.txt",
            "\u{1F468}\u{200D}\u{1F469}.png",
        ] {
            assert_eq!(hidden_character(good), None, "{good:?}");
        }
    }

    #[test]
    fn mixed_scripts_are_told_apart_from_one_script() {
        assert!(single_script("john1"));
        assert!(single_script("\u{44e}\u{43b}\u{44f}_2"));
        assert!(single_script("\u{5c71}\u{7530}\u{305f}\u{308d}\u{3046}"));
        assert!(!single_script("j\u{43e}hn1"));
        assert!(!single_script("\u{3b1}lpha"));
    }

    #[test]
    fn look_alike_names_share_a_key() {
        let k = name_key("john1");
        for alike in ["JOHN1", "John1", "\u{ff4a}\u{ff4f}\u{ff48}\u{ff4e}\u{ff11}"] {
            assert_eq!(name_key(alike), k, "{alike:?}");
        }
        // All Cyrillic (one script), reading as Latin `access1`.
        let cyrillic = "\u{430}\u{441}\u{441}\u{435}\u{455}\u{455}1";
        assert!(single_script(cyrillic));
        assert_eq!(name_key(cyrillic), name_key("access1"));
        assert_ne!(name_key("john2"), k);
        assert_ne!(name_key("john10"), k);
    }
}
