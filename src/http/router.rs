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
    Healthz,
    Readyz,
    Metrics,
}

#[derive(Clone, Copy)]
enum Route {
    Token,
    TokenRefresh,
    Upload,
    ResourceFiles,
    ListFiles,
    Download,
    Healthz,
    Readyz,
    Metrics,
}

fn table() -> &'static matchit::Router<Route> {
    static TABLE: OnceLock<matchit::Router<Route>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut r = matchit::Router::new();
        let routes = [
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
            ("/healthz", Route::Healthz),
            ("/readyz", Route::Readyz),
            ("/metrics", Route::Metrics),
        ];
        for (path, route) in routes {
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
        Route::Healthz => Endpoint::Healthz,
        Route::Readyz => Endpoint::Readyz,
        Route::Metrics => Endpoint::Metrics,
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
            Endpoint::Healthz => "healthz",
            Endpoint::Readyz => "readyz",
            Endpoint::Metrics => "metrics",
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
