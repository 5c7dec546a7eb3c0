//! Where files live: Redis (one machine, `make up`) or an S3-compatible object store (test data
//! that outgrows Redis' memory), chosen by [`StoreConfig`] so the api and runners open the same
//! one. Readers verify what they read against the id: a stored blob that does not hash to its id
//! is an error ([`StoreError::Corrupt`]), never data a job runs on, whichever backend held it.
//!
//! Lifetimes differ by backend. In Redis each file has one, renewed whenever it is uploaded again
//! or asked about, so data a client keeps using stays and data nobody uses goes. S3 has no
//! per-object expiry to renew: how long files stay in a bucket is its lifecycle rule's business
//! (the ttl is not used there, and `exists` only looks).

use crate::config::{S3Config, StoreConfig};
use crate::file_id::FileId;
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use redis::aio::ConnectionManager;
use std::sync::Arc;
use std::time::Duration;

/// The Redis key of file `id`.
pub fn key(id: &FileId) -> String {
    format!("rce:file:{id}")
}

/// The object key of file `id`, below the store's prefix: `sha256/<hex>`, a slash where the id
/// has its colon, because S3 tools and URLs treat `:` in keys as needing special handling.
pub fn object_key(id: &FileId) -> String {
    id.as_str().replacen(':', "/", 1)
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the file store failed: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the file store (object store) failed: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// What the store holds under the id does not hash to it.
    #[error("the stored {id} does not match its hash")]
    Corrupt { id: FileId },
}

/// Whether an upload stored something new.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Put {
    Created,
    AlreadyStored,
}

#[derive(Clone)]
enum Backend {
    Redis {
        conn: ConnectionManager,
        ttl: Duration,
    },
    ObjectStore(Arc<dyn ObjectStore>),
}

#[derive(Clone)]
pub struct FileStore {
    backend: Backend,
}

impl FileStore {
    /// Files in Redis through `conn`, kept `ttl` after their last upload or check.
    pub fn redis(conn: ConnectionManager, ttl: Duration) -> Self {
        Self {
            backend: Backend::Redis { conn, ttl },
        }
    }

    /// Files in `store`, at [`object_key`]; kept as long as the store keeps them.
    pub fn object_store(store: Arc<dyn ObjectStore>) -> Self {
        Self {
            backend: Backend::ObjectStore(store),
        }
    }

    /// The store `config` names: Redis through `redis` with `ttl`, or the S3 store (which needs
    /// neither). Nothing is contacted yet: a wrong endpoint or key shows on first use.
    pub fn from_config(
        config: &StoreConfig,
        redis: ConnectionManager,
        ttl: Duration,
    ) -> Result<Self, StoreError> {
        match config {
            StoreConfig::Redis => Ok(Self::redis(redis, ttl)),
            StoreConfig::S3(s3) => Ok(Self::object_store(s3_store(s3)?)),
        }
    }

    /// Stores `bytes` under their id, once: uploading the same bytes again only renews them
    /// (Redis) or leaves them be (S3).
    pub async fn put(&self, bytes: &[u8]) -> Result<(FileId, Put), StoreError> {
        let id = FileId::of(bytes);
        match &self.backend {
            Backend::Redis { conn, ttl } => redis_put(conn, *ttl, id, bytes).await,
            Backend::ObjectStore(store) => {
                let path = Path::from(object_key(&id));
                // A conditional create, so concurrent uploads of one file write it once and
                // each learns truthfully whether it was the one.
                let put = store
                    .put_opts(
                        &path,
                        PutPayload::from(bytes.to_vec()),
                        PutMode::Create.into(),
                    )
                    .await;
                match put {
                    Ok(_) => Ok((id, Put::Created)),
                    Err(object_store::Error::AlreadyExists { .. }) => Ok((id, Put::AlreadyStored)),
                    Err(e) => Err(e.into()),
                }
            }
        }
    }

    /// Whether file `id` is stored; renews it if so (Redis).
    pub async fn exists(&self, id: &FileId) -> Result<bool, StoreError> {
        Ok(self.size(id).await?.is_some())
    }

    /// The size of file `id` if it is stored (renewing it, as [`FileStore::exists`] does).
    pub async fn size(&self, id: &FileId) -> Result<Option<u64>, StoreError> {
        match &self.backend {
            Backend::Redis { conn, ttl } => {
                let mut conn = conn.clone();
                let (renewed, size): (i64, u64) = redis::pipe()
                    .cmd("EXPIRE")
                    .arg(key(id))
                    .arg(ttl_secs(*ttl))
                    .cmd("STRLEN")
                    .arg(key(id))
                    .query_async(&mut conn)
                    .await?;
                Ok((renewed == 1).then_some(size))
            }
            Backend::ObjectStore(store) => match store.head(&Path::from(object_key(id))).await {
                Ok(meta) => Ok(Some(meta.size)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e.into()),
            },
        }
    }

    /// The bytes of file `id`, verified, or `None` if it is not stored.
    pub async fn get(&self, id: &FileId) -> Result<Option<Vec<u8>>, StoreError> {
        let bytes: Option<Vec<u8>> = match &self.backend {
            Backend::Redis { conn, .. } => {
                let mut conn = conn.clone();
                redis::cmd("GET")
                    .arg(key(id))
                    .query_async(&mut conn)
                    .await?
            }
            Backend::ObjectStore(store) => match store.get(&Path::from(object_key(id))).await {
                Ok(found) => Some(Vec::from(found.bytes().await?)),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            },
        };
        match bytes {
            Some(b) if !id.matches(&b) => Err(StoreError::Corrupt { id: id.clone() }),
            other => Ok(other),
        }
    }
}

fn ttl_secs(ttl: Duration) -> u64 {
    ttl.as_secs().max(1)
}

async fn redis_put(
    conn: &ConnectionManager,
    ttl: Duration,
    id: FileId,
    bytes: &[u8],
) -> Result<(FileId, Put), StoreError> {
    let mut conn = conn.clone();
    let set: Option<String> = redis::cmd("SET")
        .arg(key(&id))
        .arg(bytes)
        .arg("NX")
        .arg("EX")
        .arg(ttl_secs(ttl))
        .query_async(&mut conn)
        .await?;
    if set.is_some() {
        return Ok((id, Put::Created));
    }
    // Stored already: renew it (or store it again if it expired meanwhile).
    let renewed: i64 = redis::cmd("EXPIRE")
        .arg(key(&id))
        .arg(ttl_secs(ttl))
        .query_async(&mut conn)
        .await?;
    if renewed == 1 {
        Ok((id, Put::AlreadyStored))
    } else {
        let _: () = redis::cmd("SET")
            .arg(key(&id))
            .arg(bytes)
            .arg("EX")
            .arg(ttl_secs(ttl))
            .query_async(&mut conn)
            .await?;
        Ok((id, Put::Created))
    }
}

/// The object store `config` describes, its keys below the configured prefix.
pub fn s3_store(config: &S3Config) -> Result<Arc<dyn ObjectStore>, StoreError> {
    // reqwest's TLS needs a process-wide crypto provider; ring is the one the signing already
    // uses. Installing fails only when one is installed already, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = ClientOptions::new()
        .with_timeout(config.timeout)
        // Local and in-cluster S3-compatible servers often speak plain http.
        .with_allow_http(config.endpoint.starts_with("http://"));
    let s3 = AmazonS3Builder::new()
        .with_endpoint(&config.endpoint)
        .with_bucket_name(&config.bucket)
        .with_region(&config.region)
        .with_access_key_id(&config.access_key_id)
        .with_secret_access_key(config.secret_access_key.expose())
        // Path-style (`<endpoint>/<bucket>/<key>`): what S3-compatible servers all answer,
        // where virtual-hosted style would need a DNS name per bucket.
        .with_virtual_hosted_style_request(false)
        .with_client_options(options)
        .build()?;
    Ok(match &config.prefix {
        Some(prefix) => Arc::new(PrefixStore::new(s3, Path::from(prefix.as_str()))),
        None => Arc::new(s3),
    })
}
