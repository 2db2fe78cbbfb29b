//! Errors as the API answers them: a status, a stable code and a message a person can act on.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An error answer: `{"code": "...", "message": "..."}`.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

pub(crate) type ApiResult<T> = std::result::Result<T, ApiError>;

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
    }

    /// The audit log cannot record a request, so it is not answered.
    pub(crate) fn audit_unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            "the audit log cannot record this request now, so it was not answered; try again",
        )
    }

    pub(crate) fn internal(message: impl std::fmt::Display) -> ApiError {
        // The detail goes to the log; the caller learns only that it was not their fault.
        tracing::error!("internal error: {message}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the server log has the detail",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "code": self.code, "message": self.message })),
        )
            .into_response()
    }
}

impl From<retain_warn::Error> for ApiError {
    fn from(e: retain_warn::Error) -> ApiError {
        use retain_warn::Error as E;
        match e {
            E::BadRequest(m) => ApiError::bad_request(m),
            e @ E::BadRule { .. } => ApiError::bad_request(e.to_string()),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            other => ApiError::internal(other),
        }
    }
}

impl From<retain_campaign::Error> for ApiError {
    fn from(e: retain_campaign::Error) -> ApiError {
        use retain_campaign::Error as E;
        match e {
            // Also a condition or input the request named, refused by the stage that reads it.
            E::Config(m)
            | E::BadRequest(m)
            | E::Offers(retain_offers::Error::BadRequest(m) | retain_offers::Error::Config(m))
            | E::Features(retain_features::Error::BadFeature(m)) => ApiError::bad_request(m),
            E::Forbidden(m) => ApiError::forbidden(m),
            E::NotFound(m) => ApiError::not_found(format!("{m} not found")),
            E::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            E::Store(retain_store::Error::Conflict(m)) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", m)
            }
            E::Store(retain_store::Error::NotFound(m)) => ApiError::not_found(m),
            other => ApiError::internal(other),
        }
    }
}

impl From<retain_store::Error> for ApiError {
    fn from(e: retain_store::Error) -> ApiError {
        match e {
            retain_store::Error::NotFound(m) => ApiError::not_found(m),
            retain_store::Error::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            retain_store::Error::Invalid(m) => ApiError::bad_request(m),
            other => ApiError::internal(other),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(e: JsonRejection) -> ApiError {
        ApiError::new(e.status(), "bad_body", e.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(e: QueryRejection) -> ApiError {
        ApiError::bad_request(e.body_text())
    }
}
