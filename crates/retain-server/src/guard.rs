//! Requests carrying a NUL character are refused before any handler runs: no text the API
//! stores or audits may hold one (PostgreSQL cannot store it, and an audit event it refuses
//! must not be the first anyone hears of it), and nothing an operator types needs one.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The largest request body the API reads (rules and offers files are a few kilobytes).
pub(crate) const MAX_BODY_BYTES: usize = 4 << 20;

pub(crate) async fn refuse_nul(req: Request, next: Next) -> Response {
    let uri = req.uri().to_string();
    if uri.to_ascii_lowercase().contains("%00") {
        return ApiError::bad_request("the address holds a NUL character (%00)").into_response();
    }
    let (parts, body) = req.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the request body is over {} MiB", MAX_BODY_BYTES >> 20),
        )
        .into_response();
    };
    if has_nul(&bytes) {
        return ApiError::bad_request("the request body holds a NUL character").into_response();
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A NUL byte, or JSON's escape for one.
fn has_nul(bytes: &[u8]) -> bool {
    bytes.contains(&0)
        || bytes
            .windows(6)
            .any(|w| w[0] == b'\\' && w[1] == b'u' && w[2..].eq_ignore_ascii_case(b"0000"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_found_raw_or_escaped() {
        assert!(has_nul(b"{\"toml\":\"a\0b\"}"));
        assert!(has_nul(br#"{"note":"a\u0000b"}"#));
        assert!(!has_nul(br#"{"note":"a\u00e9 0000"}"#));
        assert!(!has_nul(b""));
    }
}
