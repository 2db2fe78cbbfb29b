//! Requests carrying a NUL character are refused before any handler runs: no text the API
//! stores or audits may hold one (PostgreSQL cannot store it, and an audit event it refuses
//! must not be the first anyone hears of it), and nothing an operator types needs one.

use axum::http::Uri;

use crate::error::ApiError;

/// Why a request with this address and (whole) body is refused, if it is.
pub(crate) fn nul_in(uri: &Uri, body: &[u8]) -> Option<ApiError> {
    if uri.to_string().to_ascii_lowercase().contains("%00") {
        return Some(ApiError::bad_request(
            "the address holds a NUL character (%00)",
        ));
    }
    has_nul(body).then(|| ApiError::bad_request("the request body holds a NUL character"))
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
