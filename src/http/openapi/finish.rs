//! What holds for every operation, added once to the derived document instead of to each
//! operation, and what the configuration decides.

use serde_json::{Map, Value, json};

use crate::config::Config;

/// `GET` operations whose path also answers `HEAD` (the same statuses and headers, no body),
/// with the `HEAD` operation's id.
const HEAD_TWINS: [(&str, &str); 9] = [
    (
        "/api/files/{resource}/{resource_id}",
        "listResourceFilesHead",
    ),
    ("/api/list_files", "listFilesHead"),
    ("/dl/{tenant}/{file_id}", "downloadHead"),
    ("/api/v2/files/{id}/content", "v2HeadContent"),
    ("/api/v2/usage", "v2UsageHead"),
    ("/api/v2/limits", "v2LimitsHead"),
    ("/healthz", "healthzHead"),
    ("/readyz", "readyzHead"),
    ("/api/openapi.json", "openapiHead"),
];

/// Response headers not on every answer they are listed for; all others are always sent.
const SOMETIMES_SENT: [&str; 2] = ["Upload-Expires", "Upload-Metadata"];

pub fn finish(doc: &mut Value, cfg: &Config) {
    head_twins(doc);
    let mut responses: Vec<&mut Value> = Vec::new();
    let (paths, components) = match doc.as_object_mut() {
        Some(o) => {
            let mut paths = None;
            let mut components = None;
            for (k, v) in o.iter_mut() {
                match k.as_str() {
                    "paths" => paths = Some(v),
                    "components" => components = Some(v),
                    _ => {}
                }
            }
            (paths, components)
        }
        None => return,
    };
    if let Some(Value::Object(rs)) = components.and_then(|c| c.get_mut("responses")) {
        responses.extend(rs.values_mut());
    }
    let max_chunk_set = cfg.server.max_request_body.is_some();
    for item in paths.and_then(Value::as_object_mut).into_iter().flatten() {
        for (_, op) in item.1.as_object_mut().into_iter().flatten() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            // No `security` on an operation would mean the document's default; say "none".
            op.entry("security").or_insert_with(|| json!([]));
            let tus = op["tags"] == json!(["uploads"]);
            if op["operationId"] == "tusCreate" {
                upload_length_maximum(op, cfg.limits.max_file_size);
            }
            not_null(op);
            for r in op
                .get_mut("responses")
                .and_then(Value::as_object_mut)
                .into_iter()
                .flat_map(|m| m.values_mut())
            {
                if tus {
                    add_header(
                        r,
                        "Tus-Resumable",
                        header("The tus version spoken.", "1.0.0"),
                    );
                }
                responses.push(r);
            }
        }
    }
    let request_id = json!({
        "description": "The request's id: the client's `X-Request-Id` if valid, else a new one.",
        "schema": {"type": "string"},
    });
    for r in responses {
        if r.get("$ref").is_some() {
            continue;
        }
        add_header(r, "X-Request-Id", request_id.clone());
        for (name, h) in r
            .get_mut("headers")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flatten()
        {
            let always = match name.as_str() {
                "Tus-Max-Chunk-Size" => max_chunk_set,
                n => !SOMETIMES_SENT.contains(&n),
            };
            h["required"] = always.into();
        }
    }
}

fn header(description: &str, value: &str) -> Value {
    json!({"description": description, "schema": {"type": "string", "enum": [value]}})
}

fn add_header(r: &mut Value, name: &str, h: Value) {
    if let Some(o) = r.as_object_mut() {
        if o.contains_key("$ref") {
            return;
        }
        if let Value::Object(hs) = o.entry("headers").or_insert_with(|| json!({})) {
            hs.insert(name.to_owned(), h);
        }
    }
}

/// A parameter or request body that is optional is absent, never `null` (utoipa composes an
/// `Option` as `oneOf: [T, null]`): `T` alone.
fn not_null(op: &mut Map<String, Value>) {
    for p in op
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if let Some(s) = p.get_mut("schema") {
            strip_null(s);
        }
    }
    if let Some(Value::Object(content)) =
        op.get_mut("requestBody").and_then(|b| b.get_mut("content"))
    {
        content
            .values_mut()
            .filter_map(|m| m.get_mut("schema"))
            .for_each(strip_null);
    }
}

fn strip_null(s: &mut Value) {
    let Some(Value::Array(one_of)) = s.get("oneOf") else {
        return;
    };
    let rest: Vec<&Value> = one_of
        .iter()
        .filter(|v| **v != json!({"type": "null"}))
        .collect();
    if let [only] = rest[..]
        && rest.len() < one_of.len()
    {
        *s = only.clone();
    }
}

/// `Upload-Length` of a tus creation: at most `limits.max_file_size` (413 above).
fn upload_length_maximum(op: &mut Map<String, Value>, max: u64) {
    for p in op
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        if p["name"] == "Upload-Length" {
            p["schema"]["maximum"] = max.into();
        }
    }
}

/// The `HEAD` twin of each `GET` in [`HEAD_TWINS`], and a body-less `...Head` twin of each
/// shared response for them to point at.
fn head_twins(doc: &mut Value) {
    if let Some(Value::Object(shared)) = doc.pointer_mut("/components/responses") {
        let heads: Vec<(String, Value)> = shared
            .iter()
            .map(|(name, r)| {
                let mut head = r.clone();
                if let Some(o) = head.as_object_mut() {
                    o.remove("content");
                }
                (format!("{name}Head"), head)
            })
            .collect();
        shared.extend(heads);
    }
    for (path, id) in HEAD_TWINS {
        let Some(Value::Object(item)) = doc.pointer_mut(&format!("/paths/{}", escape(path))) else {
            continue;
        };
        let Some(get) = item.get("get") else {
            continue;
        };
        let mut head = get.clone();
        head["operationId"] = id.into();
        if let Some(summary) = get["summary"].as_str() {
            head["summary"] = format!("{summary} (headers only)").into();
        }
        for r in head["responses"]
            .as_object_mut()
            .into_iter()
            .flat_map(|m| m.values_mut())
        {
            let shared = r["$ref"].as_str().map(str::to_owned);
            match shared {
                Some(name) => r["$ref"] = format!("{name}Head").into(),
                None => {
                    if let Some(o) = r.as_object_mut() {
                        o.remove("content");
                        o.remove("links");
                    }
                }
            }
        }
        item.insert("head".to_owned(), head);
    }
}

/// A path as a JSON pointer segment.
fn escape(path: &str) -> String {
    path.replace('~', "~0").replace('/', "~1")
}
