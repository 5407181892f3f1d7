//! `[cors]`: which web pages on other origins may call the API (Cross-Origin Resource Sharing).
//! The headers themselves are sent by [`crate::http::cors`].

use serde::{Deserialize, Deserializer, Serialize};

/// Web pages on other origins that may call the API from a browser.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Exact origins (`scheme://host[:port]`, no path) whose pages may call the API, or `"*"`
    /// for any (only without `allow_credentials`). Empty: no CORS headers at all. In the
    /// environment (`MTFU_CORS__ALLOWED_ORIGINS`) a TOML list or a comma-separated string.
    #[serde(deserialize_with = "origin_list")]
    pub allowed_origins: Vec<String>,
    /// Answer `Access-Control-Allow-Credentials: true`, so that pages may send cookies and TLS
    /// client certificates. mtfu's tokens travel in `Authorization`, which needs none of this.
    pub allow_credentials: bool,
    /// How long a browser may reuse a preflight's answer, seconds (`Access-Control-Max-Age`).
    pub max_age_secs: u64,
}

impl Default for CorsConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_credentials: false,
            max_age_secs: 600,
        }
    }
}

/// A list, or one string of comma-separated origins (what an environment variable gives).
fn origin_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Origins {
        List(Vec<String>),
        One(String),
    }
    Ok(match Origins::deserialize(d)? {
        Origins::List(v) => v,
        Origins::One(s) => s
            .split(',')
            .map(|o| o.trim().to_owned())
            .filter(|o| !o.is_empty())
            .collect(),
    })
}

impl CorsConfig {
    /// `allowed_origins` are exact origins, and `*` is not combined with credentials.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        for o in &self.allowed_origins {
            if o == "*" {
                if self.allow_credentials {
                    return Err((
                        "cors.allowed_origins",
                        "\"*\" cannot be combined with cors.allow_credentials = true; list the origins"
                            .into(),
                    ));
                }
                continue;
            }
            check_origin(o).map_err(|m| ("cors.allowed_origins", m))?;
        }
        if self.max_age_secs > 86_400 {
            return Err(("cors.max_age_secs", "must be at most 86400".into()));
        }
        Ok(())
    }
}

/// `scheme://host[:port]` as a browser sends it in `Origin`: no path, no trailing slash.
fn check_origin(o: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "{o:?} is not an origin like https://app.example.com ({why})"
        ))
    };
    let Some((scheme, rest)) = o.split_once("://") else {
        return bad("no scheme");
    };
    if scheme != "https" && scheme != "http" {
        return bad("the scheme must be https or http");
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return bad("only a host and a port, no path or trailing slash");
    }
    if rest.bytes().any(|b| b.is_ascii_uppercase()) {
        return bad("browsers send it in lower case");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        let mut c = CorsConfig {
            allowed_origins: vec![
                "https://app.example.com".into(),
                "http://127.0.0.1:3000".into(),
            ],
            ..CorsConfig::default()
        };
        assert!(c.validate().is_ok());
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "ftp://x",
            "https://A.com",
        ] {
            c.allowed_origins = vec![bad.into()];
            assert!(c.validate().is_err(), "{bad}");
        }
        c.allowed_origins = vec!["*".into()];
        assert!(c.validate().is_ok());
        c.allow_credentials = true;
        let err = c.validate().expect_err("* with credentials");
        assert_eq!(err.0, "cors.allowed_origins");
    }

    #[test]
    fn origins_come_as_a_list_or_one_comma_separated_string() {
        let list: CorsConfig =
            serde_json::from_str(r#"{"allowed_origins": ["https://a.example"]}"#).expect("list");
        assert_eq!(list.allowed_origins, ["https://a.example"]);
        // What MTFU_CORS__ALLOWED_ORIGINS=https://a.example,https://b.example gives.
        let text: CorsConfig =
            serde_json::from_str(r#"{"allowed_origins": "https://a.example, https://b.example"}"#)
                .expect("string");
        assert_eq!(
            text.allowed_origins,
            ["https://a.example", "https://b.example"]
        );
        assert_eq!(text.max_age_secs, 600);
    }
}
