//! Files compiled into the binary and served as they are: the pages' own script, stylesheet
//! and icon (`assets/app/`) and the vendored front-end libraries (`assets/vendor/`, each with
//! its licence, version and sha256 in `MANIFEST.toml`, checked by a test). Nothing is fetched
//! at build or run time.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

/// `(path under /assets/, content type, bytes)`.
pub const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/app/app.js"),
    ),
    (
        "app/app.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/app/app.css"),
    ),
    (
        "app/icon.svg",
        "image/svg+xml",
        include_bytes!("../assets/app/icon.svg"),
    ),
    (
        "vendor/uplot/uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../assets/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "vendor/uplot/uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("../assets/vendor/uplot/uPlot.min.css"),
    ),
    (
        "vendor/uplot/LICENSE",
        "text/plain; charset=utf-8",
        include_bytes!("../assets/vendor/uplot/LICENSE"),
    ),
];

/// `GET /assets/{*path}`: a compiled-in file, cached by browsers for a day.
pub async fn asset(Path(path): Path<String>) -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, kind, bytes)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            *bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_file_matches_its_manifest_entry() {
        let manifest: toml::Table =
            toml::from_str(include_str!("../assets/vendor/MANIFEST.toml")).expect("manifest");
        let mut listed = 0;
        let ours = ASSETS
            .iter()
            .filter(|(p, _, _)| p.starts_with("app/"))
            .count();
        for lib in manifest["library"].as_array().expect("libraries") {
            for f in lib["files"].as_array().expect("files") {
                let path = format!("vendor/{}", f["path"].as_str().expect("path"));
                let (_, _, bytes) = ASSETS
                    .iter()
                    .find(|(p, _, _)| *p == path)
                    .unwrap_or_else(|| panic!("{path} is in the manifest but not compiled in"));
                assert_eq!(
                    crate::auth::digest_bytes(bytes),
                    f["sha256"].as_str().expect("sha256"),
                    "{path} differs from the manifest"
                );
                listed += 1;
            }
            assert!(lib["licence"].as_str().is_some() && lib["version"].as_str().is_some());
        }
        assert_eq!(
            listed + ours,
            ASSETS.len(),
            "every vendored file is in the manifest"
        );
    }
}
