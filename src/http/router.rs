//! Routing is parsing: a path becomes an [`Endpoint`] with its decoded parameters, or nothing
//! (404). Which methods an endpoint takes is checked by the dispatcher.

use std::sync::OnceLock;

use percent_encoding::percent_decode_str;

/// Every endpoint mtfu serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    TokenRefresh,
    Upload,
    ResourceFiles {
        resource: String,
        resource_id: String,
    },
    ListFiles,
    Download {
        tenant: String,
        file_id: String,
    },
    /// `GET /api/v2/files`: keyset-paginated listing.
    V2Files,
    /// `GET|DELETE /api/v2/files/{id}`.
    V2File {
        id: String,
    },
    /// `GET|HEAD /api/v2/files/{id}/content`.
    V2FileContent {
        id: String,
    },
    /// `POST /api/v2/files/{id}/url`.
    V2FileUrl {
        id: String,
    },
    /// `PUT /api/v2/files/{resource}/{resource_id}/{name}`: raw-body upload.
    V2Put {
        resource: String,
        resource_id: String,
        name: String,
    },
    /// `POST /api/v2/urls/revoke`.
    V2RevokeUrls,
    /// `POST /api/v2/sessions/revoke`: end the caller's sessions.
    SessionsRevoke,
    /// `GET /api/v2/usage`: the caller's usage and quotas.
    V2Usage,
    /// `GET /api/v2/limits`: the limits clients must respect.
    V2Limits,
    /// `POST|OPTIONS /api/v2/uploads`: tus creation and discovery.
    TusUploads,
    /// `HEAD|PATCH|DELETE|OPTIONS /api/v2/uploads/{id}`: one tus upload.
    TusUpload {
        id: String,
    },
    Healthz,
    Readyz,
    /// `GET|HEAD /api/openapi.json`: the OpenAPI document of every route.
    OpenApi,
    /// An ACME HTTP-01 validation (RFC 8555 section 8.3).
    AcmeChallenge {
        token: String,
    },
}

#[derive(Clone, Copy)]
enum Route {
    Token,
    TokenRefresh,
    Upload,
    ResourceFiles,
    ListFiles,
    Download,
    V2Files,
    V2File,
    V2FileContent,
    V2FileUrl,
    V2Put,
    V2RevokeUrls,
    SessionsRevoke,
    V2Usage,
    V2Limits,
    TusUploads,
    TusUpload,
    Healthz,
    Readyz,
    OpenApi,
    AcmeChallenge,
}

/// Every path template served, with its route. Trailing-slash twins are aliases.
const ROUTES: &[(&str, Route)] = &[
    ("/api/token/", Route::Token),
    ("/api/token", Route::Token),
    ("/api/token/refresh/", Route::TokenRefresh),
    ("/api/token/refresh", Route::TokenRefresh),
    ("/api/upload", Route::Upload),
    ("/api/upload/", Route::Upload),
    ("/api/files/{resource}/{resource_id}", Route::ResourceFiles),
    ("/api/files/{resource}/{resource_id}/", Route::ResourceFiles),
    ("/api/list_files", Route::ListFiles),
    ("/api/list_files/", Route::ListFiles),
    ("/dl/{tenant}/{file_id}", Route::Download),
    ("/api/v2/files", Route::V2Files),
    ("/api/v2/files/{id}", Route::V2File),
    ("/api/v2/files/{id}/content", Route::V2FileContent),
    ("/api/v2/files/{id}/url", Route::V2FileUrl),
    // The first segment is a resource here; matchit wants one name per position.
    ("/api/v2/files/{id}/{resource_id}/{name}", Route::V2Put),
    ("/api/v2/urls/revoke", Route::V2RevokeUrls),
    ("/api/v2/sessions/revoke", Route::SessionsRevoke),
    ("/api/v2/usage", Route::V2Usage),
    ("/api/v2/limits", Route::V2Limits),
    ("/api/v2/uploads", Route::TusUploads),
    ("/api/v2/uploads/", Route::TusUploads),
    ("/api/v2/uploads/{id}", Route::TusUpload),
    ("/healthz", Route::Healthz),
    ("/readyz", Route::Readyz),
    ("/api/openapi.json", Route::OpenApi),
    ("/.well-known/acme-challenge/{token}", Route::AcmeChallenge),
];

/// The path templates of the routing table, in its order (matchit syntax: `{name}` is one
/// segment). The OpenAPI test checks the document against these.
pub fn templates() -> Vec<&'static str> {
    ROUTES.iter().map(|(path, _)| *path).collect()
}

fn table() -> &'static matchit::Router<Route> {
    static TABLE: OnceLock<matchit::Router<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut r = matchit::Router::new();
        for &(path, route) in ROUTES {
            // The table is constant; a conflict is a programming error caught by the tests.
            r.insert(path, route).expect("route table has no conflicts");
        }
        r
    })
}

fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

/// The endpoint for `path`, or `None` (404).
pub fn route(path: &str) -> Option<Endpoint> {
    let m = table().at(path).ok()?;
    let p = |name: &str| m.params.get(name).and_then(decode);
    Some(match *m.value {
        Route::Token => Endpoint::Token,
        Route::TokenRefresh => Endpoint::TokenRefresh,
        Route::Upload => Endpoint::Upload,
        Route::ResourceFiles => Endpoint::ResourceFiles {
            resource: p("resource")?,
            resource_id: p("resource_id")?,
        },
        Route::ListFiles => Endpoint::ListFiles,
        Route::Download => Endpoint::Download {
            tenant: p("tenant")?,
            file_id: p("file_id")?,
        },
        Route::V2Files => Endpoint::V2Files,
        Route::V2File => Endpoint::V2File { id: p("id")? },
        Route::V2FileContent => Endpoint::V2FileContent { id: p("id")? },
        Route::V2FileUrl => Endpoint::V2FileUrl { id: p("id")? },
        Route::V2Put => Endpoint::V2Put {
            resource: p("id")?,
            resource_id: p("resource_id")?,
            name: p("name")?,
        },
        Route::V2RevokeUrls => Endpoint::V2RevokeUrls,
        Route::SessionsRevoke => Endpoint::SessionsRevoke,
        Route::V2Usage => Endpoint::V2Usage,
        Route::V2Limits => Endpoint::V2Limits,
        Route::TusUploads => Endpoint::TusUploads,
        Route::TusUpload => Endpoint::TusUpload { id: p("id")? },
        Route::Healthz => Endpoint::Healthz,
        Route::Readyz => Endpoint::Readyz,
        Route::OpenApi => Endpoint::OpenApi,
        Route::AcmeChallenge => Endpoint::AcmeChallenge { token: p("token")? },
    })
}

impl Endpoint {
    /// A stable label for logs and metrics (no parameters, so cardinality stays bounded).
    pub fn name(&self) -> &'static str {
        match self {
            Endpoint::Token => "token",
            Endpoint::TokenRefresh => "token_refresh",
            Endpoint::Upload => "upload",
            Endpoint::ResourceFiles { .. } => "resource_files",
            Endpoint::ListFiles => "list_files",
            Endpoint::Download { .. } => "download",
            Endpoint::V2Files => "v2_files",
            Endpoint::V2File { .. } => "v2_file",
            Endpoint::V2FileContent { .. } => "v2_file_content",
            Endpoint::V2FileUrl { .. } => "v2_file_url",
            Endpoint::V2Put { .. } => "v2_put",
            Endpoint::V2RevokeUrls => "v2_revoke_urls",
            Endpoint::SessionsRevoke => "v2_revoke_sessions",
            Endpoint::V2Usage => "v2_usage",
            Endpoint::V2Limits => "v2_limits",
            Endpoint::TusUploads => "tus_uploads",
            Endpoint::TusUpload { .. } => "tus_upload",
            Endpoint::Healthz => "healthz",
            Endpoint::Readyz => "readyz",
            Endpoint::OpenApi => "openapi",
            Endpoint::AcmeChallenge { .. } => "acme_challenge",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_paths_route_and_others_do_not() {
        assert_eq!(route("/api/token/"), Some(Endpoint::Token));
        assert_eq!(
            route("/api/files/product/1"),
            Some(Endpoint::ResourceFiles {
                resource: "product".into(),
                resource_id: "1".into()
            })
        );
        for p in [
            "/api/files",
            "/api/files/product",
            "/api/files/1",
            "/api/files/a/b/c",
            "/",
        ] {
            assert_eq!(route(p), None, "{p}");
        }
    }

    #[test]
    fn v2_paths_route_including_a_put_whose_resource_id_is_content_or_url() {
        let id = "0190a6b1c2d37e8f9a0b1c2d3e4f5a6b";
        assert_eq!(route("/api/v2/files"), Some(Endpoint::V2Files));
        assert_eq!(
            route(&format!("/api/v2/files/{id}")),
            Some(Endpoint::V2File { id: id.into() })
        );
        assert_eq!(
            route(&format!("/api/v2/files/{id}/content")),
            Some(Endpoint::V2FileContent { id: id.into() })
        );
        assert_eq!(
            route(&format!("/api/v2/files/{id}/url")),
            Some(Endpoint::V2FileUrl { id: id.into() })
        );
        for rid in ["1", "content", "url"] {
            assert_eq!(
                route(&format!("/api/v2/files/product/{rid}/a%20b%2F..txt")),
                Some(Endpoint::V2Put {
                    resource: "product".into(),
                    resource_id: rid.into(),
                    name: "a b/..txt".into(),
                }),
                "{rid}"
            );
        }
        assert_eq!(route("/api/v2/urls/revoke"), Some(Endpoint::V2RevokeUrls));
        assert_eq!(
            route("/api/v2/sessions/revoke"),
            Some(Endpoint::SessionsRevoke)
        );
        assert_eq!(route("/api/v2/files/a/b/c/d"), None);
        assert_eq!(route("/api/v2/files/a/other"), None);
    }

    #[test]
    fn tus_upload_paths_route() {
        assert_eq!(route("/api/v2/uploads"), Some(Endpoint::TusUploads));
        assert_eq!(
            route("/api/v2/uploads/abc"),
            Some(Endpoint::TusUpload { id: "abc".into() })
        );
        assert_eq!(route("/api/v2/uploads/abc/def"), None);
    }

    #[test]
    fn parameters_are_percent_decoded() {
        assert_eq!(
            route("/api/files/my%20thing/%C3%A9"),
            Some(Endpoint::ResourceFiles {
                resource: "my thing".into(),
                resource_id: "é".into()
            })
        );
    }
}
