//! `Upload-Metadata` as a new file's fields: base64 pairs parsed, then validated with the same
//! domain types and messages as `/api/upload`'s form fields.

use std::collections::{BTreeMap, HashMap};

use crate::domain::{FileName, Resource, ResourceId};
use crate::http::upload::{expiry, parse_bool};
use crate::tus::NewUpload;

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs (a value may be absent).
fn metadata_pairs(raw: &str) -> Result<HashMap<String, Vec<u8>>, String> {
    use base64::Engine;
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    let mut out = HashMap::new();
    for pair in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = match pair.split_once(' ') {
            Some((k, v)) => (k, v.trim()),
            None => (pair, ""),
        };
        let value = engine
            .decode(value)
            .map_err(|_| format!("the value of {key:?} is not base64"))?;
        if out.insert(key.to_owned(), value).is_some() {
            return Err(format!("{key:?} is given twice"));
        }
    }
    Ok(out)
}

/// The upload's metadata as a new file's fields, validated like `/api/upload`'s form: the
/// contract's field errors, keyed by metadata key. `name` and `filetype`/`type` (what Uppy and
/// tus-js-client send) stand in for `filename` and `content_type`.
pub(super) fn new_upload(
    length: u64,
    raw: &str,
    default_ttl: Option<u64>,
) -> Result<NewUpload, BTreeMap<String, Vec<String>>> {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut err = |k: &str, m: &str| {
        errors.insert(k.to_owned(), vec![m.to_owned()]);
    };
    let pairs = match metadata_pairs(raw) {
        Ok(p) => p,
        Err(m) => {
            err("Upload-Metadata", &m);
            HashMap::new()
        }
    };
    let text = |keys: &[&str]| -> Option<Result<String, ()>> {
        let v = keys.iter().find_map(|k| pairs.get(*k))?;
        Some(String::from_utf8(v.clone()).map_err(|_| ()))
    };
    let mut field = |key: &str, aliases: &[&str], missing: &str| match text(aliases) {
        Some(Ok(v)) if !v.is_empty() => Some(v),
        Some(Err(())) => {
            err(key, "Must be UTF-8 text.");
            None
        }
        _ => {
            err(key, missing);
            None
        }
    };
    let name = field(
        "filename",
        &["filename", "name"],
        "No file name was submitted.",
    );
    let resource = field("resource", &["resource"], "No resource found.");
    let resource_id = field("resource_id", &["resource_id"], "No resource id found.");
    let name = name.and_then(|n| FileName::parse(&n).map_err(|m| err("filename", &m)).ok());
    let resource = resource.and_then(|r| Resource::parse(&r).map_err(|m| err("resource", &m)).ok());
    let resource_id = resource_id.and_then(|r| {
        ResourceId::parse(&r)
            .map_err(|m| err("resource_id", &m))
            .ok()
    });
    let is_public = match text(&["is_public"]) {
        None => false,
        Some(v) => match v.ok().as_deref().and_then(parse_bool) {
            Some(b) => b,
            None => {
                err("is_public", "Must be a valid boolean.");
                false
            }
        },
    };
    let content_type = match text(&["content_type", "filetype", "type"]) {
        None => None,
        // Kept in the upload's row until the type is decided: no store can hold a NUL.
        Some(Ok(ct)) if !crate::domain::text::storable(&ct) => {
            err("content_type", crate::domain::text::NUL_MESSAGE);
            None
        }
        Some(Ok(ct)) => Some(ct).filter(|c| !c.trim().is_empty()),
        Some(Err(())) => {
            err("content_type", "Must be UTF-8 text.");
            None
        }
    };
    // The same rules and messages as /api/upload's form fields.
    let expiry_fields: BTreeMap<String, String> = ["expires_in", "expire_at"]
        .into_iter()
        .filter_map(|k| Some((k.to_owned(), text(&[k])?.ok()?)))
        .collect();
    let mut expiry_errors = BTreeMap::new();
    let expire_at = expiry(&expiry_fields, default_ttl, &mut expiry_errors);
    for (k, msgs) in expiry_errors {
        for m in msgs {
            err(&k, &m);
        }
    }
    match (name, resource, resource_id) {
        (Some(name), Some(resource), Some(resource_id)) if errors.is_empty() => Ok(NewUpload {
            length,
            metadata: raw.to_owned(),
            resource,
            resource_id,
            name,
            content_type,
            is_public,
            expire_at,
        }),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_pairs_decode_base64_values_and_refuse_duplicates() {
        let m = metadata_pairs("filename d29ybGQucGRm,is_confidential, resource cHJvZHVjdA")
            .expect("parses");
        assert_eq!(m["filename"], b"world.pdf");
        assert_eq!(m["is_confidential"], b"");
        assert_eq!(m["resource"], b"product");
        assert!(metadata_pairs("a YQ==,a Yg==").is_err());
        assert!(metadata_pairs("a !!!").is_err());
        assert!(metadata_pairs("").expect("empty").is_empty());
    }

    #[test]
    fn required_fields_missing_or_invalid_are_field_errors() {
        let errors = new_upload(1, "filename Li4=,resource YS9i", None).expect_err("invalid");
        assert!(errors.contains_key("filename"), "{errors:?}");
        assert!(errors.contains_key("resource"), "{errors:?}");
        assert_eq!(errors["resource_id"], ["No resource id found."]);
        let ok = new_upload(
            1,
            "name YS50eHQ=,resource cA==,resource_id MQ==,type dGV4dC9wbGFpbg==",
            None,
        )
        .expect("valid");
        assert_eq!(ok.name.as_str(), "a.txt");
        assert_eq!(ok.content_type.as_deref(), Some("text/plain"));
        assert!(!ok.is_public);
    }

    #[test]
    fn expiry_follows_the_upload_forms_rules() {
        use base64::Engine;
        let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
        let with = |extra: &str| {
            new_upload(
                1,
                &format!("filename YS50eHQ=,resource cA==,resource_id MQ==,{extra}"),
                None,
            )
        };
        let ok = with(&format!("expires_in {}", b64("60"))).expect("valid");
        assert!(ok.expire_at.is_some());
        // Past what a response can state (years past 9999): refused, as on /api/upload.
        let errors = with(&format!("expires_in {}", b64("999999999999"))).expect_err("too far");
        assert!(errors.contains_key("expires_in"), "{errors:?}");
        let errors = with(&format!(
            "expires_in {},expire_at {}",
            b64("60"),
            b64("2030-01-01T00:00:00Z")
        ))
        .expect_err("both");
        assert!(errors.contains_key("expires_in"), "{errors:?}");
    }
}
