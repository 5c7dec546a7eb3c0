//! `POST /v1/files` and `HEAD /v1/files/{id}`: test data uploaded once, referenced by its hash.

use super::AppState;
use crate::error::ApiError;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rce_files::{FileId, Put, StoreError};
use serde_json::json;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Redis(e) => e.into(),
            StoreError::ObjectStore(e) => {
                tracing::error!(error = %e, "the object store failed");
                ApiError::unavailable(
                    "store_unavailable",
                    "the file store is unavailable; retry shortly",
                )
            }
            StoreError::Corrupt { id } => {
                tracing::error!(file = %id, "a stored file does not match its hash");
                ApiError::store_unavailable()
            }
        }
    }
}

/// `POST /v1/files`: the body is the file, as raw bytes (any `Content-Type`); an empty file is a
/// file. `201` when it was stored now, `200` when it was already.
pub async fn upload(State(state): State<AppState>, body: Body) -> Result<Response, ApiError> {
    let bytes = super::read_body(body, state.max_file_bytes, "the file").await?;
    let (id, put) = state.files.put(&bytes).await?;
    let status = match put {
        Put::Created => StatusCode::CREATED,
        Put::AlreadyStored => StatusCode::OK,
    };
    tracing::info!(file = %id, size = bytes.len(), new = put == Put::Created, "file uploaded");
    Ok((
        status,
        Json(json!({"id": id.as_str(), "size": bytes.len()})),
    )
        .into_response())
}

/// `HEAD /v1/files/{id}`: `200` when stored (and kept for another lifetime), `404` when not;
/// `400` for something that is not a file id at all.
pub async fn head(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = FileId::parse(&id).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("{id:?} is not a file id: {e}"),
        )
        .field("id")
    })?;
    if state.files.exists(&id).await? {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(ApiError::not_found("file"))
    }
}
