//! The dashboard: a small front end compiled into the binary with Apache ECharts, so it works
//! on machines without internet. It talks to the same API as everyone else.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const I18N_JS: &str = include_str!("../assets/i18n.js");
const APP_CSS: &str = include_str!("../assets/app.css");
const ECHARTS: &str = include_str!("../assets/vendor/echarts-5.6.0.min.js");

/// Only the page's own scripts run; ECharts sets inline styles.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";

fn asset(body: &'static str, kind: &'static str, cache: &'static str) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    res
}

pub(crate) fn routes() -> axum::Router<AppState> {
    axum::Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX, "text/html; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/i18n.js",
            get(|| async { asset(I18N_JS, "text/javascript; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8", "no-cache") }),
        )
        .route(
            "/assets/echarts.min.js",
            get(|| async {
                asset(
                    ECHARTS,
                    "text/javascript; charset=utf-8",
                    "public, max-age=86400",
                )
            }),
        )
}
