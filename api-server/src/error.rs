//! The one error of the API: seed 000's code table, the envelope, and the mapping of
//! every failure (authentication, parsing, routing, domain, database) onto it.

use poem::http::StatusCode;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object};

use breadbox_auth::{AuthError, UnauthorizedReason};

use crate::request_id::{current_request_id, RequestId};

/// The error codes of the product's table; each belongs to exactly one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    InvalidJson,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// Not in the product's table, which has no row for 409: see README "Decisions".
    Conflict,
    /// Not in the product's table, which has no row for 412: see README "Decisions".
    PreconditionFailed,
    ValidationError,
    RateLimited,
    InternalError,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::InvalidJson => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorCode::ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PreconditionFailed => "precondition_failed",
            ErrorCode::ValidationError => "validation_error",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::InternalError => "internal_error",
        }
    }

    /// The code a bare status maps to (for errors raised outside our handlers).
    pub fn for_status(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 => ErrorCode::MethodNotAllowed,
            409 => ErrorCode::Conflict,
            412 => ErrorCode::PreconditionFailed,
            422 => ErrorCode::ValidationError,
            429 => ErrorCode::RateLimited,
            400..=499 => ErrorCode::BadRequest,
            _ => ErrorCode::InternalError,
        }
    }
}

/// One failing field of a 422.
#[derive(Debug, Clone, Object)]
pub struct FieldError {
    /// The field's name as sent (camelCase, dotted for nested fields).
    pub field: String,
    /// What is wrong with it.
    pub issue: String,
}

/// The body of every error.
#[derive(Debug, Clone, Object)]
#[oai(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// Machine-readable code from the error-code table.
    pub code: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
    /// The id of the request, as in the `X-Request-Id` header.
    pub request_id: RequestId,
    /// On 401: MISSING_API_KEY, INVALID_API_KEY, REVOKED_API_KEY, INVALID_TOKEN or EXPIRED_TOKEN.
    /// On 403: the missing scope. On 429: the rate-limit bucket that refused.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    /// On 422: one entry per failing field.
    #[oai(skip_serializing_if_is_none)]
    pub details: Option<Vec<FieldError>>,
}

/// The error envelope: `{"error": {...}}`.
#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// Every error an operation can answer with.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// A path, query or header parameter is malformed (`If-Match`, `If-None-Match`,
    /// a body's `Content-Encoding`, …), or two credentials were sent.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No credential, or an invalid, revoked or expired one.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The credential lacks the scope this operation requires.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such record in the caller's organization and environment.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// A request with the same `Idempotency-Key` is still being answered (POST only);
    /// retry later.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// `If-Match` named a version of the record that is no longer current (updates only).
    #[oai(status = 412)]
    PreconditionFailed(Json<ErrorBody>),
    /// The body failed validation; `details` lists each failing field.
    #[oai(status = 422)]
    Validation(Json<ErrorBody>),
    /// A rate limit was exceeded; see `Retry-After`.
    #[oai(status = 429)]
    RateLimited(Json<ErrorBody>),
    /// Unexpected server error; retry with backoff.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::build(code, message.into(), None, None)
    }

    fn build(code: ErrorCode, message: String, reason: Option<String>, details: Option<Vec<FieldError>>) -> Self {
        let body = Json(ErrorBody {
            error: ErrorDetail { code, message, request_id: current_request_id(), reason, details },
        });
        match code {
            ErrorCode::BadRequest | ErrorCode::InvalidJson | ErrorCode::MethodNotAllowed => ApiError::BadRequest(body),
            ErrorCode::Unauthorized => ApiError::Unauthorized(body),
            ErrorCode::Forbidden => ApiError::Forbidden(body),
            ErrorCode::NotFound => ApiError::NotFound(body),
            ErrorCode::Conflict => ApiError::Conflict(body),
            ErrorCode::PreconditionFailed => ApiError::PreconditionFailed(body),
            ErrorCode::ValidationError => ApiError::Validation(body),
            ErrorCode::RateLimited => ApiError::RateLimited(body),
            ErrorCode::InternalError => ApiError::Internal(body),
        }
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => format!("`{}` {}", one.field, one.issue),
            many => format!("{} fields failed validation", many.len()),
        };
        Self::build(ErrorCode::ValidationError, message, None, Some(details))
    }

    pub fn field(field: &str, issue: impl Into<String>) -> Self {
        Self::validation(vec![FieldError { field: field.to_owned(), issue: issue.into() }])
    }

    /// A 500 whose cause is logged here and never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(ErrorCode::InternalError, "unexpected server error; retry with backoff")
    }

    /// A 429 naming the bucket that refused (`Retry-After` is added with the other
    /// rate-limit headers).
    pub fn rate_limited(refusal: &breadbox_auth::limits::Refusal) -> Self {
        let reason = Some(refusal.bucket.name().to_owned());
        Self::build(ErrorCode::RateLimited, refusal.message(), reason, None)
    }

    pub fn body(&self) -> &ErrorBody {
        match self {
            ApiError::BadRequest(b)
            | ApiError::Unauthorized(b)
            | ApiError::Forbidden(b)
            | ApiError::NotFound(b)
            | ApiError::Conflict(b)
            | ApiError::PreconditionFailed(b)
            | ApiError::Validation(b)
            | ApiError::RateLimited(b)
            | ApiError::Internal(b) => &b.0,
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        match err {
            AuthError::TwoCredentials => ApiError::bad_request(err.to_string()),
            AuthError::Unauthorized { reason, message } => {
                metrics::counter!("breadbox_auth_failures_total", "reason" => reason.as_str()).increment(1);
                ApiError::build(ErrorCode::Unauthorized, message.to_owned(), Some(reason.as_str().to_owned()), None)
            }
            AuthError::Forbidden(scope) => {
                ApiError::build(ErrorCode::Forbidden, err.to_string(), Some(scope.as_str().to_owned()), None)
            }
            AuthError::Internal => ApiError::internal(&"credential store unavailable"),
        }
    }
}

impl From<breadbox_auth::admin::AdminError> for ApiError {
    fn from(err: breadbox_auth::admin::AdminError) -> Self {
        use breadbox_auth::admin::AdminError;
        match err {
            AdminError::NotFound(what) => ApiError::not_found(what),
            AdminError::Invalid(message) => ApiError::new(ErrorCode::ValidationError, message),
            AdminError::Db(err) => ApiError::internal(&err),
        }
    }
}

impl From<crate::domain::DomainError> for ApiError {
    fn from(err: crate::domain::DomainError) -> Self {
        use crate::domain::DomainError;
        match err {
            DomainError::NotFound(what) => ApiError::not_found(what),
            DomainError::Invalid(violations) => ApiError::validation(
                violations.into_vec().into_iter().map(|v| FieldError { field: v.field, issue: v.issue }).collect(),
            ),
            DomainError::Stale(_) => ApiError::new(ErrorCode::PreconditionFailed, err.to_string()),
            DomainError::BadCursor => ApiError::bad_request(err.to_string()),
            DomainError::Db(err) => ApiError::internal(&err),
        }
    }
}

/// An `ApiError` raised by an extractor, carried through poem-openapi as a
/// `poem::Error` and unwrapped again by the bad-request handler.
#[derive(Debug)]
pub struct Rejected(pub ApiError);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.body().error.message)
    }
}

impl std::error::Error for Rejected {}

impl Rejected {
    pub fn error(err: ApiError) -> poem::Error {
        let status = err.body().error.code.status();
        poem::Error::new(Rejected(err), status)
    }
}

/// poem-openapi's parse failures: malformed JSON is `invalid_json`; JSON of the wrong
/// shape (unknown field, wrong type) is a 422 naming the field where poem-openapi says
/// which; a bad parameter is `bad_request`.
/// Returns `None` for errors that are not about parsing the request.
pub fn from_parse_error(err: &poem::Error) -> Option<ApiError> {
    if let Some(e) = err.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>() {
        return Some(if is_json_syntax_error(&e.reason) {
            ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {}", e.reason))
        } else {
            ApiError::field(&field_of(&e.reason), e.reason.clone())
        });
    }
    if err.is::<poem_openapi::error::ContentTypeError>() {
        return Some(ApiError::new(ErrorCode::InvalidJson, "send the body as application/json"));
    }
    if let Some(e) = err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        return Some(ApiError::bad_request(format!("parameter `{}`: {}", e.name, e.reason)));
    }
    if let Some(e) = err.downcast_ref::<poem_openapi::error::ParsePathError>() {
        return Some(ApiError::bad_request(format!("path parameter `{}`: {}", e.name, e.reason)));
    }
    if err.is::<poem_openapi::error::AuthorizationError>() {
        return Some(ApiError::from(AuthError::Unauthorized {
            reason: UnauthorizedReason::MissingApiKey,
            message: "send a credential",
        }));
    }
    None
}

/// Whether a body parse failure comes from serde_json reading the text (its messages
/// end with `at line L column C`) rather than from poem-openapi checking the schema.
fn is_json_syntax_error(reason: &str) -> bool {
    let words: Vec<&str> = reason.rsplitn(5, ' ').collect();
    matches!(words.as_slice(), [column, "column", line, "line", ..]
        if column.parse::<u64>().is_ok() && line.parse::<u64>().is_ok())
}

/// The field named in a poem-openapi parse message (`failed to parse "T": unknown field
/// `name`.`), or `body` when it names none (type errors do not).
pub(crate) fn field_of(reason: &str) -> String {
    reason
        .strip_prefix("failed to parse")
        .and_then(|rest| rest.split('`').nth(1))
        .map(str::to_owned)
        .unwrap_or_else(|| "body".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syntax_errors_are_told_from_schema_errors() {
        let syntax = serde_json::from_str::<serde_json::Value>("{not json").unwrap_err().to_string();
        assert!(is_json_syntax_error(&syntax), "{syntax}");
        assert!(!is_json_syntax_error(r#"Expected input type "integer_int64", found "lots"."#));
        assert!(!is_json_syntax_error("failed to parse \"X\": unknown field `colour`."));
        assert_eq!(field_of("failed to parse \"X\": unknown field `colour`."), "colour");
        assert_eq!(field_of(r#"Expected input type "string", found "`x`"."#), "body");
    }
}
