//! The scanner app, embedded at build time from `web/dist` (see build.rs),
//! and the headers every answer of the station carries.

use hyper::header::{HeaderMap, HeaderValue};

include!(concat!(env!("OUT_DIR"), "/assets.rs"));

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    /// Its bytes.
    pub bytes: &'static [u8],
    /// Its content type, by extension.
    pub content_type: &'static str,
    /// Its `Cache-Control`.
    pub cache: &'static str,
}

/// The file served at `path` (`/` is `/index.html`), if embedded.
pub fn lookup(path: &str) -> Option<Asset> {
    let path = if path == "/" { "/index.html" } else { path };
    ASSETS
        .iter()
        .find(|(p, _, _)| *p == path)
        .map(|&(p, bytes, content_type)| Asset {
            bytes,
            content_type,
            // Hashed names never change; the entry points must be asked
            // again each time so that a new build reaches the devices.
            cache: if p.starts_with("/assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            },
        })
}

/// How many files are embedded (0 when the build found no `web/dist`).
pub fn count() -> usize {
    ASSETS.len()
}

/// The content security policy of the station (docs/checkpoint contract):
/// only the station's own scripts, workers and connections.
pub const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
style-src 'self' 'unsafe-inline'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self'; \
connect-src 'self'";

/// Adds the headers every answer carries.
pub fn secure_headers(h: &mut HeaderMap) {
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(self)"),
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hashed_assets_are_immutable_and_entry_points_are_asked_again() {
        for (path, _, _) in ASSETS {
            let a = lookup(path).unwrap();
            if path.starts_with("/assets/") {
                assert!(a.cache.contains("immutable"), "{path}");
            } else {
                assert_eq!(a.cache, "no-cache", "{path}");
            }
        }
        assert!(lookup("/no/such/file").is_none());
    }
}
