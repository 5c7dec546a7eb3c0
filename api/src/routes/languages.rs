//! `GET /v1/languages`: what clients may ask for, straight from `topology.yaml`.

use super::AppState;
use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

pub async fn list(State(state): State<AppState>) -> Json<Value> {
    let languages: Vec<Value> = state
        .topology
        .all_languages()
        .into_iter()
        .map(|l| {
            json!({
                "id": l.id,
                "name": l.name,
                "version": l.version,
                "file": l.file,
                "compiled": l.is_compiled(),
                "limits": {"default": l.default_limits, "max": l.max_limits},
            })
        })
        .collect();
    Json(Value::Array(languages))
}
