//! Extractors whose rejections speak our formats: a bad form gets an error page, a bad
//! JSON body gets the API envelope.

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::routes::api::ApiError;

/// `axum::Form` with our error page on rejection.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(v)) => Ok(Self(v)),
            Err(FormRejection::BytesRejection(r)) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(AppError::PayloadTooLarge)
            }
            Err(r) => Err(AppError::BadRequest(r.body_text())),
        }
    }
}

/// The API's answer to a body over the limit.
pub fn too_large() -> ApiError {
    payload_too_large()
}

/// `axum::Json` with the API envelope (`Invalid request body.`) on rejection.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(JsonRejection::BytesRejection(r)) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(too_large())
            }
            Err(_) => Err(ApiError::new(StatusCode::BAD_REQUEST, "Invalid request body.")),
        }
    }
}

/// The envelope for a body over the limit, with the status that says so.
pub fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "Request body too large: at most {} bytes.",
            crate::routes::MAX_BODY_BYTES
        ),
    )
}

/// A JSON body that may also be empty (then `T::default()`), whatever its content type:
/// for actions whose every field is optional. Bad JSON gets the 400 envelope, a body over
/// the limit the 413 one.
pub struct OptionalApiJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                payload_too_large()
            } else {
                ApiError::new(StatusCode::BAD_REQUEST, "Invalid request body.")
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        serde_json::from_slice(&bytes)
            .map(Self)
            .map_err(|_| ApiError::new(StatusCode::BAD_REQUEST, "Invalid request body."))
    }
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::post;
    use tower::ServiceExt;

    use super::ApiJson;

    #[derive(serde::Deserialize)]
    struct Payload {
        #[expect(dead_code, reason = "only deserialisation matters here")]
        count: i64,
    }

    async fn call(body: &'static str) -> (StatusCode, serde_json::Value) {
        let app = Router::new().route("/api/x", post(|ApiJson(_): ApiJson<Payload>| async { "ok" }));
        let res = app
            .oneshot(
                Request::post("/api/x")
                    .header("content-type", "application/json")
                    .body(Body::from(body))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = res.status();
        let bytes = axum::body::to_bytes(res.into_body(), 1 << 16).await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }

    #[tokio::test]
    async fn malformed_or_mistyped_json_gets_the_envelope() {
        for body in ["{not json", r#"{"count":"three"}"#, "[]"] {
            let (status, json) = call(body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(
                json,
                serde_json::json!({"data": {}, "message": "Invalid request body.", "status": 400})
            );
        }
        assert_eq!(call(r#"{"count":3,"unknown":true}"#).await.0, StatusCode::OK);
    }
}
