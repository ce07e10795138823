//! The page, built into the binary: one HTML shell, one script, one style
//! sheet, a web app manifest and an icon. No build step: plain files in
//! share/web/, included as they are.

use super::http::Response;

const INDEX: &str = include_str!("../../share/web/index.html");
const APP_JS: &str = include_str!("../../share/web/app.js");
const APP_CSS: &str = include_str!("../../share/web/app.css");
const MANIFEST: &str = include_str!("../../share/web/manifest.webmanifest");
const ICON: &str = include_str!("../../share/web/icon.svg");

/// The static answer for `path`, if it is one of the page's files or one
/// of the page's own addresses (the script routes them).
pub fn asset(path: &str) -> Option<Response> {
    let (ctype, body) = match path {
        "/" | "/team" | "/tasks" | "/worktrees" => ("text/html; charset=utf-8", INDEX),
        p if p.starts_with("/c/") => ("text/html; charset=utf-8", INDEX),
        "/app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "/app.css" => ("text/css; charset=utf-8", APP_CSS),
        "/manifest.webmanifest" => ("application/manifest+json", MANIFEST),
        "/icon.svg" => ("image/svg+xml", ICON),
        _ => return None,
    };
    Some(Response::new(200, ctype, body))
}
