//! The file store on a real S3-compatible server: moto's server mode, which
//! `scripts/ensure-s3.sh` (run by `scripts/ensure-services.sh`) starts on 127.0.0.1. The same
//! promises as the Redis store's: ids are the SHA-256 of the bytes, an upload is stored once,
//! 64 MiB fit, and an object that does not match its id is refused, never returned; and a
//! runner's disk cache works over it. Each test has a key prefix of its own in the tests' bucket,
//! so tests run in parallel and never see each other's files.

use crate::helpers::REDIS_DB;
use futures_util::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use rce_files::config::Secret;
use rce_files::store::{object_key, s3_store};
use rce_files::{DiskCache, FileId, FileStore, Put, S3Config, StoreConfig, StoreError};
use std::sync::Arc;
use std::time::Duration;

/// The tests' bucket; moto starts with none, so [`prepare`] creates it.
const BUCKET: &str = "rce-it";

/// Where moto listens: the port `scripts/ensure-s3.sh` starts it on.
fn endpoint() -> String {
    let port = std::env::var("RCE_MOTO_PORT").unwrap_or_else(|_| "9000".into());
    format!("http://127.0.0.1:{port}")
}

/// The tests' S3 settings with key prefix `prefix` (`None`: the bucket's top level). moto takes
/// any static key, but one must be given (see `rce_files::config`).
fn s3_config(prefix: Option<&str>) -> S3Config {
    S3Config {
        endpoint: endpoint(),
        bucket: BUCKET.into(),
        region: "us-east-1".into(),
        access_key_id: "rce-it".into(),
        secret_access_key: Secret::new("rce-it-secret"),
        prefix: prefix.map(str::to_string),
        timeout: Duration::from_secs(120),
    }
}

/// One test's corner of the bucket: the store under test and a raw view of the whole bucket,
/// to look at and tamper with the objects behind the store's back.
struct S3Corner {
    prefix: String,
    store: FileStore,
    raw: Arc<dyn ObjectStore>,
}

impl S3Corner {
    /// Where the store keeps file `id`, as the raw view names it: the documented layout.
    fn raw_path(&self, id: &FileId) -> Path {
        Path::from(format!("{}/{}", self.prefix, object_key(id)))
    }

    /// Removes this test's objects (moto holds them in memory until it stops).
    async fn clean_up(&self) {
        let prefix = Path::from(self.prefix.as_str());
        let objects: Vec<_> = self.raw.list(Some(&prefix)).try_collect().await.unwrap();
        for object in objects {
            self.raw.delete(&object.location).await.unwrap();
        }
    }
}

/// Makes sure moto answers and the bucket exists, then opens `test`'s corner of it. A missing
/// server fails the test here, saying how to start it.
async fn prepare(test: &str) -> S3Corner {
    let bucket_url = format!("{}/{BUCKET}", endpoint());
    // Creating a bucket is idempotent for its owner: 200, or 409 BucketAlreadyOwnedByYou.
    let created = reqwest::Client::new()
        .put(&bucket_url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "no S3 server answers at {} ({e}); start moto with `bash scripts/ensure-services.sh` \
                 (it runs scripts/ensure-s3.sh)",
                endpoint()
            )
        });
    let status = created.status().as_u16();
    assert!(
        status == 200 || status == 409,
        "creating bucket {bucket_url} answered {status}: {}",
        created.text().await.unwrap_or_default()
    );
    let prefix = format!("it-{test}-{}", uuid::Uuid::now_v7());
    let store = FileStore::object_store(s3_store(&s3_config(Some(&prefix))).unwrap());
    let raw = s3_store(&s3_config(None)).unwrap();
    S3Corner { prefix, store, raw }
}

/// Bytes no other test uploads, so "new" and "already stored" are this test's own.
fn unique(tag: &str) -> Vec<u8> {
    format!("{tag} {}\n", uuid::Uuid::now_v7()).into_bytes()
}

/// The configured path, as the api builds its store: `RCE_FILE_STORE=s3` puts files in the
/// bucket at `<prefix>/sha256/<hex>`, and not in Redis.
#[tokio::test(flavor = "multi_thread")]
async fn put_exists_get_roundtrip_through_the_configured_store() {
    let corner = prepare("roundtrip").await;
    let client = redis::Client::open(format!("redis://127.0.0.1:6379/{REDIS_DB}")).unwrap();
    let conn = redis::aio::ConnectionManager::new(client.clone())
        .await
        .expect("redis on 127.0.0.1:6379: run `bash scripts/ensure-services.sh`");
    let config = StoreConfig::S3(s3_config(Some(&corner.prefix)));
    let store = FileStore::from_config(&config, conn, Duration::from_secs(60)).unwrap();

    let bytes = unique("roundtrip");
    let (id, put) = store.put(&bytes).await.unwrap();
    assert_eq!((&id, put), (&FileId::of(&bytes), Put::Created));
    assert!(store.exists(&id).await.unwrap());
    assert_eq!(store.get(&id).await.unwrap(), Some(bytes.clone()));
    // The same file through the other store of the same prefix (what a runner opens).
    assert_eq!(corner.store.get(&id).await.unwrap(), Some(bytes.clone()));

    let meta = corner.raw.head(&corner.raw_path(&id)).await.unwrap();
    assert_eq!(meta.size, bytes.len() as u64);
    let mut raw_redis = client.get_multiplexed_async_connection().await.unwrap();
    let in_redis: bool = redis::cmd("EXISTS")
        .arg(rce_files::store::key(&id))
        .query_async(&mut raw_redis)
        .await
        .unwrap();
    assert!(!in_redis, "an S3-configured store wrote {id} to Redis");

    // An empty file is a file too.
    let (empty, put) = store.put(b"").await.unwrap();
    assert!(matches!(put, Put::Created | Put::AlreadyStored));
    assert_eq!(store.get(&empty).await.unwrap(), Some(Vec::new()));
    corner.clean_up().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_upload_is_already_stored_and_concurrent_ones_store_once() {
    let corner = prepare("dedupe").await;
    let bytes = unique("dedupe");
    let (first, put) = corner.store.put(&bytes).await.unwrap();
    assert_eq!(put, Put::Created);
    let (again, put) = corner.store.put(&bytes).await.unwrap();
    assert_eq!((again, put), (first, Put::AlreadyStored));

    // Racing uploads of new bytes: the conditional create lets exactly one of them store it.
    let raced = unique("raced");
    let puts = (0..4).map(|_| {
        let (store, raced) = (corner.store.clone(), raced.clone());
        tokio::spawn(async move { store.put(&raced).await.map(|(_, put)| put) })
    });
    let outcomes: Vec<Put> = futures_util::future::join_all(puts)
        .await
        .into_iter()
        .map(|joined| joined.unwrap().unwrap())
        .collect();
    let created = outcomes.iter().filter(|p| **p == Put::Created).count();
    assert_eq!(created, 1, "{outcomes:?}");
    corner.clean_up().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_file_is_none_and_does_not_exist() {
    let corner = prepare("missing").await;
    let absent = FileId::of(&unique("never uploaded"));
    assert!(!corner.store.exists(&absent).await.unwrap());
    assert_eq!(corner.store.get(&absent).await.unwrap(), None);
    // Stored under another test's prefix is not stored here.
    let other = prepare("missing-other").await;
    let bytes = unique("elsewhere");
    let (id, _) = other.store.put(&bytes).await.unwrap();
    assert!(!corner.store.exists(&id).await.unwrap());
    assert_eq!(corner.store.get(&id).await.unwrap(), None);
    other.clean_up().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_corrupted_object_is_refused() {
    let corner = prepare("corrupt").await;
    let bytes = unique("corrupt me");
    let (id, _) = corner.store.put(&bytes).await.unwrap();
    assert_eq!(corner.store.get(&id).await.unwrap(), Some(bytes.clone()));
    // A flipped byte in storage.
    let mut flipped = bytes;
    flipped[0] ^= 1;
    corner
        .raw
        .put(&corner.raw_path(&id), PutPayload::from(flipped))
        .await
        .unwrap();
    let err = corner.store.get(&id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    // Garbage under an id nothing was uploaded for.
    let never = FileId::of(&unique("never uploaded"));
    corner
        .raw
        .put(
            &corner.raw_path(&never),
            PutPayload::from_static(b"garbage"),
        )
        .await
        .unwrap();
    let err = corner.store.get(&never).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    corner.clean_up().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sixty_four_mib_roundtrip() {
    let corner = prepare("big").await;
    let mut big = vec![b'7'; 64 << 20];
    big[..40].copy_from_slice(&unique("big")[..40]);
    let (id, put) = corner.store.put(&big).await.unwrap();
    assert_eq!((&id, put), (&FileId::of(&big), Put::Created));
    assert!(corner.store.exists(&id).await.unwrap());
    let got = corner.store.get(&id).await.unwrap().expect("stored");
    assert_eq!(got.len(), big.len());
    assert!(got == big, "the 64 MiB came back changed");
    corner.clean_up().await;
}

/// A runner's cache in front of the S3 store: fetched once, then served from disk (even once
/// the object is gone), and a corrupted object is refused and not kept.
#[tokio::test(flavor = "multi_thread")]
async fn the_disk_cache_works_over_an_s3_store() {
    let corner = prepare("cache").await;
    let dir = std::env::temp_dir().join(format!("rce-it-s3-cache-{}", corner.prefix));
    let cache = DiskCache::open(&dir, 1 << 20).unwrap();
    let bytes = unique("cached");
    let (id, _) = corner.store.put(&bytes).await.unwrap();
    assert_eq!(
        cache.get(&corner.store, &id).await.unwrap(),
        Some(bytes.clone())
    );
    assert_eq!(cache.stats().files, 1);
    corner.raw.delete(&corner.raw_path(&id)).await.unwrap();
    assert!(!corner.store.exists(&id).await.unwrap());
    assert_eq!(cache.get(&corner.store, &id).await.unwrap(), Some(bytes));

    let absent = FileId::of(&unique("never uploaded"));
    assert_eq!(cache.get(&corner.store, &absent).await.unwrap(), None);

    let rotten = unique("rotten");
    let (rotten_id, _) = corner.store.put(&rotten).await.unwrap();
    corner
        .raw
        .put(
            &corner.raw_path(&rotten_id),
            PutPayload::from_static(b"not it"),
        )
        .await
        .unwrap();
    let err = cache.get(&corner.store, &rotten_id).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(cache.stats().files, 1, "a corrupted fetch was kept");
    std::fs::remove_dir_all(&dir).unwrap();
    corner.clean_up().await;
}
