//! Which BigQuery failures waiting can fix, and which need a person.
//!
//! Both kinds are retried (no row is dropped for an error the destination
//! raised); the permanent ones make the sink unhealthy and are logged at
//! error level. Reasons: https://cloud.google.com/bigquery/docs/error-messages

use gcp_bigquery_client::error::BQError;
use tonic::Code;

use crate::SinkError;

/// `BQError` (REST) as a [`SinkError`], classified.
pub fn from_rest(context: &str, e: BQError) -> SinkError {
    let permanent = match &e {
        BQError::ResponseError { error } => {
            let code = error.error.code;
            let reasons = reasons(error);
            let transient_reason = reasons.iter().any(|r| {
                matches!(
                    *r,
                    "rateLimitExceeded"
                        | "quotaExceeded"
                        | "backendError"
                        | "internalError"
                        | "tableUnavailable"
                        | "timeout"
                )
            });
            // 401: an expired token is fetched anew on the next attempt.
            !(code >= 500 || code == 429 || code == 408 || code == 401 || transient_reason)
        }
        // Timeouts, refused connections, and error bodies that are not
        // BigQuery's JSON (a proxy's 502 page) are all worth retrying.
        BQError::RequestError(_) => false,
        BQError::AuthError(_) | BQError::YupAuthError(_) => !is_transient_auth(&e),
        BQError::NoToken => true,
        _ => false,
    };
    SinkError::BigQuery {
        message: format!("{context}: {}", describe_rest(&e)),
        permanent,
    }
}

/// A gRPC status (Storage Write API) as a [`SinkError`], classified.
pub fn from_grpc(context: &str, status: &tonic::Status) -> SinkError {
    let permanent = matches!(
        status.code(),
        Code::PermissionDenied
            | Code::NotFound
            | Code::FailedPrecondition
            | Code::InvalidArgument
            | Code::Unimplemented
    );
    SinkError::BigQuery {
        message: format!("{context}: {:?}: {}", status.code(), status.message()),
        permanent,
    }
}

/// The HTTP status of a REST error, when BigQuery answered.
pub fn http_status(e: &BQError) -> Option<i64> {
    match e {
        BQError::ResponseError { error } => Some(error.error.code),
        _ => None,
    }
}

fn is_transient_auth(e: &BQError) -> bool {
    let yup = match e {
        BQError::YupAuthError(y) => y,
        _ => return false,
    };
    matches!(
        yup,
        yup_oauth2::Error::HttpError(_)
            | yup_oauth2::Error::HttpClientError(_)
            | yup_oauth2::Error::LowLevelError(_)
    )
}

/// The `reason`s of BigQuery's error answer (`backendError`, `notFound`, ...).
fn reasons(error: &gcp_bigquery_client::error::ResponseError) -> Vec<&str> {
    error
        .error
        .errors
        .iter()
        .filter_map(|r| r.get("reason").map(String::as_str))
        .collect()
}

/// A one-line description: the status and BigQuery's message, or the
/// transport error with its causes (reqwest hides the useful part there).
fn describe_rest(e: &BQError) -> String {
    match e {
        BQError::ResponseError { error } => {
            let reasons = reasons(error);
            format!(
                "HTTP {} {} ({})",
                error.error.code,
                error.error.message,
                reasons.join(", ")
            )
        }
        BQError::RequestError(r) => {
            // The URL names only the project and table; still, keep the
            // message short and the same shape as the others.
            let mut out = r.to_string();
            let mut source = std::error::Error::source(r);
            while let Some(s) = source {
                out.push_str(": ");
                out.push_str(&s.to_string());
                source = s.source();
            }
            out
        }
        other => other.to_string(),
    }
}
