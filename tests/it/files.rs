//! Test data by reference (`POST /v1/files`, `HEAD /v1/files/{id}`) through the real api and
//! Redis, and the store's read side as runners will use it: ids are the SHA-256 of the bytes,
//! uploads are deduplicated, the size cap is a JSON 413, and a stored blob that does not match
//! its id is refused, never returned.

use crate::helpers::{app, TestApp, REDIS_DB};
use rce_files::{FileId, FileStore};
use serde_json::Value;
use std::time::Duration;

/// `POST /v1/files` with `bytes`: the status and the JSON answer.
pub async fn upload(app: &TestApp, bytes: Vec<u8>) -> (u16, Value) {
    let resp = app
        .http
        .post(format!("{}/v1/files", app.base))
        .body(bytes)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn head(app: &TestApp, id: &str) -> u16 {
    app.http
        .head(format!("{}/v1/files/{id}", app.base))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Bytes no other test uploads, so "new" and "already stored" are this test's own.
fn unique(tag: &str) -> Vec<u8> {
    format!("{tag} {}\n", uuid::Uuid::now_v7()).into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_is_stored_once_under_its_sha256() {
    let app = app();
    // The id of a known text, as `sha256sum` prints its digest.
    let (status, body) = upload(&app, b"test".to_vec()).await;
    assert!(status == 201 || status == 200, "{status} {body}");
    assert_eq!(
        body["id"],
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
    );
    assert_eq!(body["size"], 4);

    let bytes = unique("dedupe");
    let (first, a) = upload(&app, bytes.clone()).await;
    let (again, b) = upload(&app, bytes.clone()).await;
    assert_eq!((first, again), (201, 200), "{a} {b}");
    assert_eq!(a, b);
    let id = a["id"].as_str().unwrap();
    assert_eq!(head(&app, id).await, 200);
    let other = FileId::of(&unique("never uploaded"));
    assert_eq!(head(&app, other.as_str()).await, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_file_is_a_file() {
    let (status, body) = upload(&app(), Vec::new()).await;
    assert!(status == 201 || status == 200, "{status} {body}");
    assert_eq!(
        body["id"],
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(body["size"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_ids_are_400s_and_other_methods_405s() {
    let app = app();
    let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    for bad in [
        hex.to_string(),
        format!("sha256:{}", hex.to_uppercase()),
        "sha256:..".into(),
    ] {
        assert_eq!(head(&app, &bad).await, 400, "{bad}");
    }
    let resp = app
        .http
        .get(format!("{}/v1/files/sha256:{hex}", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed", "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_mib_are_taken_and_one_byte_more_is_a_413() {
    let app = app();
    let mut big = vec![b'7'; 64 << 20];
    big[..40].copy_from_slice(&unique("big")[..40]);
    let expected = FileId::of(&big);
    let (status, body) = upload(&app, big.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["id"], expected.as_str());
    assert_eq!(body["size"], 64 << 20);
    big.push(b'\n');
    let (status, body) = upload(&app, big).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("67108864"), "{body}");
}

/// The read side, as a runner fetches test data: what is stored is checked against its id.
#[tokio::test(flavor = "multi_thread")]
async fn a_stored_blob_that_does_not_match_its_id_is_refused() {
    let app = app();
    let bytes = unique("corrupt me");
    let (status, body) = upload(&app, bytes.clone()).await;
    assert_eq!(status, 201, "{body}");
    let id = FileId::parse(body["id"].as_str().unwrap()).unwrap();
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{REDIS_DB}")).unwrap();
    let conn = redis::aio::ConnectionManager::new(client.clone())
        .await
        .unwrap();
    let store = FileStore::redis(conn, Duration::from_secs(60));
    assert_eq!(store.get(&id).await.unwrap(), Some(bytes.clone()));
    // A flipped byte in storage.
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let mut flipped = bytes;
    flipped[0] ^= 1;
    let _: () = redis::cmd("SET")
        .arg(rce_files::store::key(&id))
        .arg(flipped)
        .query_async(&mut raw)
        .await
        .unwrap();
    let err = store.get(&id).await.unwrap_err();
    assert!(
        matches!(err, rce_files::StoreError::Corrupt { .. }),
        "{err}"
    );
    assert_eq!(
        store
            .get(&FileId::of(b"absent, surely \x00"))
            .await
            .unwrap(),
        None
    );
}
