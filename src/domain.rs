//! Domain types: identifiers parsed at the edge, file records, tenants. No I/O here.
//!
//! A value of one of these newtypes has passed its `parse`, so code further in never re-checks
//! it. Parse errors are the contract's field messages, ready to be shown to a client.

use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};

pub mod disposition;
pub mod text;

/// Microseconds since the Unix epoch: how times are stored and compared.
pub type Micros = i64;

pub fn now_micros() -> Micros {
    Utc::now().timestamp_micros()
}

/// RFC 3339 UTC with microseconds and `Z`, as the contract wants.
pub fn format_micros(t: Micros) -> String {
    match Utc.timestamp_micros(t).single() {
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
        None => String::new(),
    }
}

pub fn parse_rfc3339(s: &str) -> Option<Micros> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|d| d.with_timezone(&Utc).timestamp_micros())
}

/// Has no control characters (C0, DEL, C1).
fn is_clean(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

macro_rules! label_newtype {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            /// 1-100 characters, no `/`, no control characters.
            pub fn parse(s: &str) -> Result<Self, String> {
                let n = s.chars().count();
                if n == 0 {
                    return Err(format!("{} must not be empty.", $what));
                }
                if n > 100 {
                    return Err(format!("{} must be at most 100 characters.", $what));
                }
                if s.contains('/') || !is_clean(s) {
                    return Err(format!(
                        "{} must not contain '/' or control characters.",
                        $what
                    ));
                }
                Ok(Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_newtype!(
    /// What a file belongs to: `product`, `avatar`.
    Resource,
    "Resource"
);
label_newtype!(
    /// Which one of the resource: `1`, `7`, `a3f…`. Always a string.
    ResourceId,
    "Resource id"
);

/// A file's name as the client gave it. Data, never a path: it is never used to build a path
/// or a blob key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileName(String);

impl FileName {
    pub const MAX_BYTES: usize = 255;

    /// Refuses what [`FileName::MAX_BYTES`], traversal, control, bidi and invisible format
    /// characters rule out; the name kept is NFC (so NFC and NFD spellings are one file).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("The submitted file is empty.".into());
        }
        let s = &text::nfc(s);
        if s.len() > Self::MAX_BYTES {
            return Err(format!(
                "Ensure this filename has at most {} characters (it has {}).",
                Self::MAX_BYTES,
                s.len()
            ));
        }
        if s == "." || s == ".." || s.contains('/') || s.contains('\\') || !is_clean(s) {
            return Err(
                "Invalid file name: it must not be '.' or '..' nor contain '/', '\\' or control characters."
                    .into(),
            );
        }
        if let Some(m) = text::hidden_character(s) {
            return Err(m);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A tenant's login name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantName(String);

impl TenantName {
    /// 1-150 characters of letters, digits and `@.+-_` (Django's username rule).
    pub fn parse(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.chars().count() <= 150
            && s.chars()
                .all(|c| c.is_alphanumeric() || "@.+-_".contains(c));
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err("Enter a valid username. This value may contain only letters, numbers, and @/./+/-/_ characters.".into())
        }
    }

    /// The name of a tenant about to be created (`mtfu tenant add`): NFKC-normalised as Django
    /// normalises usernames, then [`parse`](TenantName::parse)'s rule, and its letters of one
    /// script. Names already stored are read with `parse`, so older ones keep working.
    pub fn new_account(s: &str) -> Result<Self, String> {
        let name = Self::parse(&text::nfkc(s))?;
        if !text::single_script(name.as_str()) {
            return Err(format!(
                "Enter a valid username. {:?} mixes letters of different scripts (such as Latin \
                 with Cyrillic or Greek), which can look like another name.",
                name.0
            ));
        }
        Ok(name)
    }

    /// What must be unique among tenants: [`text::name_key`] (case-folded confusable
    /// skeleton), so `JOHN1` cannot sit beside `john1`, nor a Cyrillic `ассеѕѕ1` beside `access1`.
    pub fn key(&self) -> String {
        text::name_key(&self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant's row id in the metadata store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TenantId(pub i64);

/// An authenticated tenant: only the auth layer makes one (from a verified token or password),
/// and every store method touching files takes one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub name: TenantName,
}

/// A blob's key in the blob store: generated by the server, unique per upload, never derived
/// from client input. Shape: `t/{tenant id}/{uuid}`; or, for an object imported in place from
/// the original service (`mtfu import-seed`), `seed:{object key}`: the bucket's own key, outside
/// mtfu's key prefix, possibly shared by several file rows (see [`BlobKey::imported_object`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

/// The marker of an imported key: no generated key starts with it.
const IMPORTED: &str = "seed:";

impl BlobKey {
    pub fn generate(tenant: TenantId) -> Self {
        Self(format!("t/{}/{}", tenant.0, uuid::Uuid::now_v7().simple()))
    }

    /// Accept a key read back from a metadata row: a generated or an imported one. Refuses
    /// anything else, so a corrupted row can never address a path outside the blob store.
    pub fn from_stored(s: &str) -> Option<Self> {
        Self::from_generated(s).or_else(|| {
            let object = s.strip_prefix(IMPORTED)?;
            Self::imported(object)
        })
    }

    /// Accept only the generated shape: what a blob store's own listing (its inventory, under
    /// mtfu's prefix) may name. An imported key is never in that listing, so gc's orphan sweep
    /// can never reach an object outside mtfu's key space.
    pub fn from_generated(s: &str) -> Option<Self> {
        let mut it = s.split('/');
        let ok = it.next() == Some("t")
            && it
                .next()
                .is_some_and(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
            && it
                .next()
                .is_some_and(|u| u.len() == 32 && u.bytes().all(|b| b.is_ascii_hexdigit()))
            && it.next().is_none();
        ok.then(|| Self(s.to_owned()))
    }

    /// The key of an object the original service wrote, kept where it is (1-1024 bytes, no
    /// control characters: what S3 accepts as a key).
    pub fn imported(object_key: &str) -> Option<Self> {
        let ok = !object_key.is_empty() && object_key.len() <= 1024 && is_clean(object_key);
        ok.then(|| Self(format!("{IMPORTED}{object_key}")))
    }

    /// The bucket's object key of an imported blob (used as it is, without mtfu's key
    /// prefix); `None` for a generated key.
    pub fn imported_object(&self) -> Option<&str> {
        self.0.strip_prefix(IMPORTED)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A file's opaque public id (UUIDv7, 32 hex digits).
pub fn new_file_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

/// A file id as a client sent it, in the shape [`new_file_id`] makes (32 lower-case hex
/// digits). Anything else names no file: it is answered 404 without asking a store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileId(String);

impl FileId {
    pub fn parse(s: &str) -> Option<FileId> {
        let ok = s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        ok.then(|| FileId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored, committed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    pub id: String,
    pub tenant_id: TenantId,
    pub tenant_username: String,
    pub resource: String,
    pub resource_id: String,
    pub name: String,
    pub blob_key: BlobKey,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
    pub is_public: bool,
    pub expire_at: Option<Micros>,
    pub created_at: Micros,
}

impl FileRecord {
    /// The seed's `location`: the logical path of the file, not the blob key.
    pub fn location(&self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.tenant_username, self.resource, self.resource_id, self.name
        )
    }
}

/// A file about to be committed: the blob is durable, the row not yet written.
#[derive(Debug, Clone)]
pub struct NewFile {
    pub resource: Resource,
    pub resource_id: ResourceId,
    pub name: FileName,
    pub blob_key: BlobKey,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
    pub is_public: bool,
    pub expire_at: Option<Micros>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_with_a_slash_is_rejected() {
        assert!(Resource::parse("a/b").is_err());
    }

    #[test]
    fn a_resource_of_101_chars_is_rejected_and_100_accepted() {
        assert!(Resource::parse(&"x".repeat(101)).is_err());
        assert!(Resource::parse(&"x".repeat(100)).is_ok());
    }

    #[test]
    fn traversal_and_control_character_file_names_are_rejected() {
        for bad in [
            "..",
            ".",
            "../etc/passwd",
            "a\\b",
            "a\nb",
            "a\u{0}b",
            "x\u{7f}",
            "",
        ] {
            assert!(FileName::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(FileName::parse("résumé (1).pdf").is_ok());
    }

    #[test]
    fn file_names_are_nfc_and_hide_nothing() {
        let nfd = FileName::parse("cafe\u{301}.txt").expect("nfd");
        let nfc = FileName::parse("caf\u{e9}.txt").expect("nfc");
        assert_eq!(nfd, nfc);
        assert_eq!(nfd.as_str(), "caf\u{e9}.txt");
        for bad in [
            "invoice\u{202E}fdp.exe",
            "a\u{2067}b",
            "a\u{200B}b",
            "\u{FEFF}x.txt",
        ] {
            let err = FileName::parse(bad).expect_err(bad);
            assert!(err.contains("U+"), "{bad:?}: {err}");
        }
        // The byte limit is on the NFC form.
        assert!(FileName::parse(&"e\u{301}".repeat(127)).is_ok());
    }

    #[test]
    fn new_tenant_names_are_nfkc_of_one_script() {
        let full =
            TenantName::new_account("\u{ff4a}\u{ff4f}\u{ff48}\u{ff4e}\u{ff11}").expect("fullwidth");
        assert_eq!(full.as_str(), "john1");
        assert_eq!(
            TenantName::new_account("JOHN1").expect("upper").as_str(),
            "JOHN1"
        );
        assert_eq!(
            TenantName::new_account("JOHN1").expect("upper").key(),
            TenantName::new_account("john1").expect("lower").key()
        );
        let err = TenantName::new_account("j\u{43e}hn1").expect_err("mixed");
        assert!(err.contains("scripts"), "{err}");
        assert!(TenantName::new_account("john 1").is_err());
        assert!(TenantName::new_account("a\u{0}").is_err());
        // Stored names are read as they are.
        assert!(TenantName::parse("j\u{43e}hn1").is_ok());
    }

    #[test]
    fn blob_keys_from_storage_must_have_the_generated_shape() {
        let k = BlobKey::generate(TenantId(7));
        assert_eq!(BlobKey::from_stored(k.as_str()), Some(k.clone()));
        assert_eq!(BlobKey::from_generated(k.as_str()), Some(k));
        let i = BlobKey::imported("asset_imgs/john1/a b.png").expect("imported");
        assert_eq!(i.imported_object(), Some("asset_imgs/john1/a b.png"));
        assert_eq!(BlobKey::from_stored(i.as_str()), Some(i.clone()));
        assert_eq!(BlobKey::from_generated(i.as_str()), None);
        assert!(BlobKey::imported("").is_none() && BlobKey::imported("a\nb").is_none());
        for bad in ["t/1/../../etc", "../x", "t/a/0123", "t/1/abc/def"] {
            assert!(BlobKey::from_stored(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_ids_of_the_generated_shape_are_file_ids() {
        let id = new_file_id();
        assert_eq!(FileId::parse(&id).map(|f| f.to_string()), Some(id.clone()));
        for bad in [
            "",
            "abc",
            &id.to_uppercase(),
            &format!("{id}0"),
            "../../../etc/passwd",
        ] {
            assert!(FileId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn times_are_formatted_with_microseconds_and_z() {
        assert_eq!(
            format_micros(1_700_000_000_123_456),
            "2023-11-14T22:13:20.123456Z"
        );
        assert_eq!(
            parse_rfc3339("2023-11-14T22:13:20.123456Z"),
            Some(1_700_000_000_123_456)
        );
    }
}
