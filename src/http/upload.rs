//! `POST /api/upload`: the seed's multipart upload, streamed.
//!
//! The `file` part is streamed into the blob store as it arrives (parts may come in any order,
//! so the blob is keyed by the server, not by resource or name). The other fields are checked
//! once the form has been read; if anything is wrong the staged blob is discarded. Nothing is
//! visible until the metadata commit. The form's framing is bounded (see [`super::form`]).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use http::{Request, StatusCode, header};
use hyper::body::Incoming;

use super::body::{BodyStream, FormValue, multipart, small_form};
use super::error::ApiError;
use super::form::{FormLimits, Gate, HeaderGate};
use super::proxy::{Capped, request_too_large};
use super::wire::{FileWithUrl, UploadResult, UploadedMessage, respond};
use super::{AppState, Ctx, Response};
use crate::domain::{FileName, Micros, Resource, ResourceId, Tenant, now_micros, parse_rfc3339};
use crate::service::{Expiry, ServiceError, Staged, TypeRule};
use crate::upload::UploadError;

/// Room for the multipart framing and text fields on top of the file itself.
const FORM_OVERHEAD: u64 = 1024 * 1024;

const NO_FILE: &str = "No file was submitted.";
const NOT_A_FILE: &str = "The submitted data was not a file. Check the encoding type on the form.";

/// The form as read: text fields, and the file if one was staged.
#[derive(Default)]
struct Form {
    text: BTreeMap<String, String>,
    file: Option<StagedFile>,
    /// `file` came as a plain field.
    file_not_a_file: bool,
    file_error: Option<String>,
}

struct StagedFile {
    staged: Staged,
    name: FileName,
    content_type: String,
}

pub async fn upload(
    state: &AppState,
    ctx: &Ctx,
    req: Request<Incoming>,
    tenant: Tenant,
) -> Result<Response, ApiError> {
    let idle = Duration::from_secs(state.cfg.server.body_read_timeout_secs);
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // hyper enforces Content-Length (HTTP/1 and HTTP/2): the file part is smaller.
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    // The gateway's cap (server.max_request_body) refuses a body it cannot pass before reading
    // it, when the cap is the tighter limit; when the file-size limit is, the seed's 400 for a
    // too-large file stays the answer, found while streaming.
    let cap = state.cfg.server.max_request_body;
    if let (Some(max), Some(len)) = (cap, declared)
        && len > max
        && max <= state.cfg.limits.max_file_size
    {
        BodyStream::new(req.into_body(), idle).drain_in_background();
        return Ok(request_too_large(max, &state.cfg.server.base_path));
    }
    let form = match multer::parse_boundary(&ct) {
        Ok(boundary) => {
            let mut body = BodyStream::new(req.into_body(), idle);
            let mut capped = Capped::new(&mut body, cap);
            let read = read_multipart(state, &tenant, &mut capped, boundary, declared).await;
            let over_cap = capped.exceeded();
            let received = capped.received();
            match read {
                Ok(form) => form,
                Err(e) => {
                    if let Some(len) = declared.filter(|&len| body.ended() && received < len) {
                        // The transport ended the body before its declared length (an HTTP/2
                        // stream reset by the peer, a connection closed): say so in the log,
                        // the client only sees the parse error.
                        tracing::warn!(
                            received,
                            declared = len,
                            "upload body ended before its Content-Length"
                        );
                    }
                    if body.timed_out() {
                        return Err(ApiError::Detail {
                            status: StatusCode::REQUEST_TIMEOUT,
                            detail: "The request body was not received in time.".into(),
                            code: Some("body_timeout"),
                        });
                    }
                    // Refused early: let the client finish sending so it reads this answer.
                    body.drain_in_background();
                    if let (true, Some(max)) = (over_cap, cap) {
                        return Ok(request_too_large(max, &state.cfg.server.base_path));
                    }
                    return Err(e);
                }
            }
        }
        // Not multipart: there can be no file, but answer like DRF, field by field.
        Err(_) => {
            let fields = small_form(req, idle).await?;
            let mut form = Form::default();
            for (k, v) in fields {
                match (k.as_str(), v) {
                    ("file", _) => form.file_not_a_file = true,
                    (_, FormValue::Text(t)) => {
                        form.text.insert(k, t);
                    }
                    (_, FormValue::File) => {}
                }
            }
            form
        }
    };
    finish(state, ctx, &tenant, form).await
}

/// Read every part; stage the file part into the blob store.
async fn read_multipart(
    state: &AppState,
    tenant: &Tenant,
    body: &mut Capped<&mut BodyStream>,
    boundary: String,
    declared: Option<u64>,
) -> Result<Form, ApiError> {
    let limit = state.cfg.limits.max_file_size;
    let too_large = || ApiError::from(ServiceError::Upload(UploadError::TooLarge { limit }));
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(limit.saturating_add(FORM_OVERHEAD)));
    let caps = FormLimits::of(&state.cfg.limits);
    let gate = Gate::new();
    let mut mp = multipart(HeaderGate::new(body, gate.clone()), boundary, constraints);
    let mut form = Form::default();
    let parse_error = |e: multer::Error| match e {
        multer::Error::StreamSizeExceeded { .. } => too_large(),
        other => ApiError::bad_request(format!("Multipart form parse error - {other}")),
    };
    let mut parts = 0u64;
    let mut text_bytes = 0u64;
    loop {
        // Only the bytes up to a part's data count against the header cap: every part's data
        // is read to its end below, so `next_field` has none of it left to skip.
        gate.arm(caps.header_bytes);
        let next = mp.next_field().await;
        gate.disarm();
        let mut field = match next {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) if gate.tripped() => return Err(caps.headers_too_long()),
            Err(e) => return Err(parse_error(e)),
        };
        parts += 1;
        if parts > caps.parts {
            return Err(caps.too_many_parts());
        }
        let name = field.name().unwrap_or_default().to_owned();
        let file_name = field.file_name().map(str::to_owned);
        match (name.as_str(), file_name) {
            ("file", Some(_)) if form.file.is_some() || form.file_error.is_some() => {
                return Err(ApiError::field("file", "Submit one file only."));
            }
            ("file", Some(raw_name)) => match FileName::parse(&raw_name) {
                // The part's bytes are read and dropped, never stored.
                Err(msg) => {
                    form.file_error = Some(msg);
                    skip(&mut field).await.map_err(parse_error)?;
                }
                Ok(file_name) => {
                    let claimed = field.content_type().map(|m| m.essence_str().to_owned());
                    let rule = TypeRule {
                        claimed: claimed.as_deref(),
                        file_name: file_name.as_str(),
                        allowed: &state.cfg.limits.allowed_content_types,
                    };
                    // multer reads ahead all the body that has arrived (up to an HTTP/2 stream
                    // window), so its whole-stream limit may trip before the pipeline's file
                    // limit: that is the same refusal, the file is too large.
                    let over = std::sync::atomic::AtomicBool::new(false);
                    let mut watched = (&mut field).inspect(|r| {
                        if matches!(r, Err(multer::Error::StreamSizeExceeded { .. })) {
                            over.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                    });
                    let staged = state
                        .files
                        .stage_typed(tenant, &mut watched, limit, declared, rule)
                        .await;
                    let (staged, content_type) = match staged {
                        Err(_) if over.load(std::sync::atomic::Ordering::Relaxed) => {
                            return Err(too_large());
                        }
                        other => other?,
                    };
                    form.file = Some(StagedFile {
                        staged,
                        name: file_name,
                        content_type,
                    });
                }
            },
            // Other file parts are not part of the contract: skipped.
            (_, Some(_)) => skip(&mut field).await.map_err(parse_error)?,
            (_, None) => {
                let mut value = Vec::new();
                while let Some(chunk) = field.next().await {
                    let chunk = chunk.map_err(parse_error)?;
                    text_bytes += chunk.len() as u64;
                    if text_bytes > caps.text_bytes {
                        return Err(caps.too_much_text());
                    }
                    value.extend_from_slice(&chunk);
                }
                if name == "file" {
                    form.file_not_a_file = true;
                } else {
                    form.text
                        .insert(name, String::from_utf8_lossy(&value).into_owned());
                }
            }
        }
    }
    Ok(form)
}

/// Read a part's data to its end, keeping none of it.
async fn skip(field: &mut multer::Field<'_>) -> Result<(), multer::Error> {
    while let Some(chunk) = field.next().await {
        chunk?;
    }
    Ok(())
}

/// DRF's BooleanField.
pub(crate) fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" | "" => Some(false),
        _ => None,
    }
}

/// Longest `expires_in`: 100 years. Beyond some such bound the expiry is no longer a time a
/// response can state (years past 9999 are not RFC 3339).
pub(crate) const MAX_EXPIRES_IN_SECS: i64 = 3_155_760_000;
/// Latest `expire_at` accepted: 9999-12-31T23:59:59.999999Z, the last RFC 3339 instant.
pub(crate) const LATEST_EXPIRE_AT: Micros = 253_402_300_799_999_999;

/// `expires_in` (seconds) or `expire_at` (RFC 3339), else the configured default TTL. A relative
/// expiry is counted from the commit ([`Expiry::After`]), not from now.
pub(crate) fn expiry(
    text: &BTreeMap<String, String>,
    default_ttl: Option<u64>,
    errors: &mut BTreeMap<String, Vec<String>>,
) -> Option<Expiry> {
    let now = now_micros();
    let mut err = |k: &str, m: &str| {
        errors.insert(k.into(), vec![m.into()]);
        None
    };
    let given_in = text.get("expires_in").filter(|s| !s.trim().is_empty());
    let given_at = text.get("expire_at").filter(|s| !s.trim().is_empty());
    match (given_in, given_at) {
        (Some(_), Some(_)) => err(
            "expires_in",
            "Give either expires_in or expire_at, not both.",
        ),
        (Some(s), None) => match s.trim().parse::<i64>() {
            Ok(n) if n > MAX_EXPIRES_IN_SECS => err(
                "expires_in",
                &format!("Ensure this value is less than or equal to {MAX_EXPIRES_IN_SECS}."),
            ),
            Ok(n) if n >= 1 => Some(Expiry::After(n.saturating_mul(1_000_000))),
            Ok(_) => err(
                "expires_in",
                "Ensure this value is greater than or equal to 1.",
            ),
            Err(_) => err("expires_in", "A valid integer is required."),
        },
        (None, Some(s)) => match parse_rfc3339(s) {
            Some(t) if t > LATEST_EXPIRE_AT => err("expire_at", "Must be before the year 10000."),
            Some(t) if t > now => Some(Expiry::At(t)),
            Some(_) => err("expire_at", "Must be in the future."),
            None => err(
                "expire_at",
                "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z].",
            ),
        },
        (None, None) => {
            default_ttl.map(|ttl| Expiry::After((ttl as i64).saturating_mul(1_000_000)))
        }
    }
}

/// Validate the fields, then commit the staged file (or discard it and answer 400).
async fn finish(
    state: &AppState,
    ctx: &Ctx,
    tenant: &Tenant,
    mut form: Form,
) -> Result<Response, ApiError> {
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if form.file.is_none() {
        let msg = match (&form.file_error, form.file_not_a_file) {
            (Some(e), _) => e.clone(),
            (None, true) => NOT_A_FILE.into(),
            (None, false) => NO_FILE.into(),
        };
        errors.insert("file".into(), vec![msg]);
    }
    let mut label = |key: &str, missing: &str, parse: fn(&str) -> Result<(), String>| match form
        .text
        .get(key)
        .map(String::as_str)
    {
        None | Some("") => {
            errors.insert(key.into(), vec![missing.into()]);
        }
        Some(v) => {
            if let Err(m) = parse(v) {
                errors.insert(key.into(), vec![m]);
            }
        }
    };
    label("resource", "No resource found.", |v| {
        Resource::parse(v).map(drop)
    });
    label("resource_id", "No resource id found.", |v| {
        ResourceId::parse(v).map(drop)
    });
    let is_public = match form.text.get("is_public").map(|s| parse_bool(s)) {
        None => false,
        Some(Some(b)) => b,
        Some(None) => {
            errors.insert("is_public".into(), vec!["Must be a valid boolean.".into()]);
            false
        }
    };
    let expire_at = expiry(&form.text, state.cfg.limits.default_ttl_secs, &mut errors);

    if !errors.is_empty() {
        if let Some(f) = form.file.take() {
            f.staged.discard().await;
        }
        return Err(ApiError::Fields(errors));
    }
    let Some(file) = form.file.take() else {
        return Err(ApiError::Internal("no file and no error".into()));
    };
    // Both parsed above without error.
    let (Ok(resource), Ok(resource_id)) = (
        Resource::parse(form.text.get("resource").map_or("", String::as_str)),
        ResourceId::parse(form.text.get("resource_id").map_or("", String::as_str)),
    ) else {
        file.staged.discard().await;
        return Err(ApiError::Internal("fields changed after validation".into()));
    };
    let record = state
        .files
        .commit(
            tenant,
            file.staged,
            resource,
            resource_id,
            file.name,
            file.content_type,
            is_public,
            expire_at,
        )
        .await?;
    let base = super::files::base_url(state, ctx);
    let url = super::files::signed_url(state, &base, &record).await;
    Ok(respond(
        StatusCode::OK,
        &UploadResult {
            message: UploadedMessage::Uploaded,
            file: FileWithUrl::new(&record, url),
        },
    ))
}
