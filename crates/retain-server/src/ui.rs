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

#[cfg(test)]
mod tests {
    use super::I18N_JS;

    /// The dashboard's Chinese names of the codes its charts show: `CODES['zh-CN']`.
    fn chinese_codes() -> &'static str {
        let start = I18N_JS.find("window.CODES").expect("i18n.js names codes");
        let zh = &I18N_JS[start..];
        &zh[..zh.find("\n  en: {").expect("CODES has English too")]
    }

    /// Every feature the model can rank and every segment code a chart can show has a Chinese
    /// name, whichever of them a run happens to produce.
    #[test]
    fn every_feature_and_segment_code_has_a_chinese_name() {
        let zh = chinese_codes();
        let codes = retain_features::DEFAULT_FEATURES
            .iter()
            .map(|(name, _)| *name)
            .chain(
                [
                    retain_segment::RFM_GROUPS,
                    retain_segment::LIFECYCLE_STAGES,
                    retain_segment::VALUE_TIERS,
                    retain_segment::SCENARIOS,
                ]
                .into_iter()
                .flatten()
                .map(|(code, _)| *code),
            );
        let missing: Vec<&str> = codes
            .filter(|code| !zh.contains(&format!(" {code}: '")))
            .collect();
        assert!(
            missing.is_empty(),
            "no Chinese name in i18n.js: {missing:?}"
        );
    }
}
