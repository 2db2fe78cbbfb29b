//! Phone numbers leave the API masked, whatever carries them: one pass over every JSON answer
//! of the authenticated API masks each string that holds a mobile number (a field named like
//! a phone number, or a run of 11 digits starting with 1 anywhere in a string, as in a work
//! order's payload). Numbers typed as JSON numbers are ids and stay as they are. Only the
//! channel files written for dialling carry full numbers.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::ApiError;

/// The largest answer the pass reads; the API's lists are bounded far below it.
const MAX_ANSWER_BYTES: usize = 256 << 20;

/// The middleware: masks the numbers of a JSON answer, passes anything else through.
pub(crate) async fn mask_answers(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await else {
        return ApiError::internal("an answer too large to check for phone numbers")
            .into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<Value>(&bytes) else {
        return ApiError::internal("an answer that is not JSON").into_response();
    };
    if !mask_value(&mut value, false) {
        return Response::from_parts(parts, Body::from(bytes));
    }
    match serde_json::to_vec(&value) {
        Ok(out) => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Response::from_parts(parts, Body::from(out))
        }
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// Masks every number in `value`; `phone_field` when it is the value of a field named like a
/// phone number. Returns whether anything changed.
pub(crate) fn mask_value(value: &mut Value, phone_field: bool) -> bool {
    match value {
        Value::String(s) => match mask_text(s, phone_field) {
            Some(masked) => {
                *s = masked;
                true
            }
            None => false,
        },
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, v| mask_value(v, false) | changed),
        Value::Object(fields) => fields.iter_mut().fold(false, |changed, (k, v)| {
            mask_value(v, is_phone_field(k)) | changed
        }),
        _ => false,
    }
}

fn is_phone_field(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["msisdn", "phone", "mobile", "telephone"]
        .iter()
        .any(|w| key == *w || key.ends_with(&format!("_{w}")))
}

/// `text` with every mobile number masked, or `None` when it holds none. A phone field's
/// value is masked as a whole (first three and last four kept) whatever its shape.
pub(crate) fn mask_text(text: &str, phone_field: bool) -> Option<String> {
    if phone_field {
        let digits = text.bytes().filter(u8::is_ascii_digit).count();
        if digits >= 7 && !text.contains('*') {
            return Some(retain_offers::mask(text));
        }
    }
    let bytes = text.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        let run = &bytes[start..i];
        // A mobile number alone, or behind the country code 86.
        let number_at = match run.len() {
            11 if run[0] == b'1' => Some(start),
            13 if run.starts_with(b"861") => Some(start + 2),
            _ => None,
        };
        if let Some(at) = number_at {
            let out = out.get_or_insert_with(|| bytes.to_vec());
            out[at + 3..at + 7].copy_from_slice(b"****");
        }
    }
    // Only ASCII digits were replaced by ASCII, so the text is still UTF-8.
    out.map(|o| String::from_utf8(o).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_masked_wherever_a_string_holds_them() {
        assert_eq!(mask_text("13800138000", false).unwrap(), "138****8000");
        assert_eq!(
            mask_text(
                r#"{"msisdn":"13912345678","note":"call 8613912345678"}"#,
                false
            )
            .unwrap(),
            r#"{"msisdn":"139****5678","note":"call 86139****5678"}"#
        );
        assert_eq!(
            mask_text("+86 13912345678", false).unwrap(),
            "+86 139****5678"
        );
        // Not a mobile number: too short, too long, or not starting with 1.
        assert!(mask_text("2026-11-01", false).is_none());
        assert!(mask_text("23800138000", false).is_none());
        assert!(mask_text("138001380001", false).is_none());
        assert!(mask_text("客户 138****8000", true).is_none());
        // A field named as a phone number is masked whatever its shape.
        assert_eq!(mask_text("010-6552-1234", true).unwrap(), "010****1234");
    }

    #[test]
    fn a_json_answer_keeps_its_ids_and_loses_its_numbers() {
        let mut v = serde_json::json!({
            "subscriber_id": 13_800_138_000_i64,
            "score": 0.138_001_380_00,
            "items": [{ "payload": "{\"msisdn\":\"13800138000\"}", "contact_phone": "87654321" }],
            "profile": { "msisdn": "13700001111" },
        });
        assert!(mask_value(&mut v, false));
        assert_eq!(v["subscriber_id"], 13_800_138_000_i64);
        assert_eq!(v["items"][0]["payload"], "{\"msisdn\":\"138****8000\"}");
        assert_eq!(v["items"][0]["contact_phone"], "876****4321");
        assert_eq!(v["profile"]["msisdn"], "137****1111");
        assert!(!mask_value(&mut v, false), "masking twice changes nothing");
    }
}
