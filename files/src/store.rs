//! Where files live: Redis (one machine, `make up`), under `rce:file:<id>`, each with a lifetime
//! renewed whenever it is uploaded again or asked about, so data a client keeps using stays and
//! data nobody uses goes. Readers verify what they read against the id: a stored blob that does
//! not hash to its id is an error ([`StoreError::Corrupt`]), never data a job runs on.

use crate::file_id::FileId;
use redis::aio::ConnectionManager;
use std::time::Duration;

/// The Redis key of file `id`.
pub fn key(id: &FileId) -> String {
    format!("rce:file:{id}")
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the file store failed: {0}")]
    Redis(#[from] redis::RedisError),
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
pub struct FileStore {
    conn: ConnectionManager,
    ttl: Duration,
}

impl FileStore {
    /// Files in Redis through `conn`, kept `ttl` after their last upload or check.
    pub fn redis(conn: ConnectionManager, ttl: Duration) -> Self {
        Self { conn, ttl }
    }

    fn ttl_secs(&self) -> u64 {
        self.ttl.as_secs().max(1)
    }

    /// Stores `bytes` under their id, once: uploading the same bytes again only renews them.
    pub async fn put(&self, bytes: &[u8]) -> Result<(FileId, Put), StoreError> {
        let id = FileId::of(bytes);
        let mut conn = self.conn.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(key(&id))
            .arg(bytes)
            .arg("NX")
            .arg("EX")
            .arg(self.ttl_secs())
            .query_async(&mut conn)
            .await?;
        if set.is_some() {
            return Ok((id, Put::Created));
        }
        // Stored already: renew it (or store it again if it expired meanwhile).
        if self.exists(&id).await? {
            Ok((id, Put::AlreadyStored))
        } else {
            let _: () = redis::cmd("SET")
                .arg(key(&id))
                .arg(bytes)
                .arg("EX")
                .arg(self.ttl_secs())
                .query_async(&mut conn)
                .await?;
            Ok((id, Put::Created))
        }
    }

    /// Whether file `id` is stored; renews it if so.
    pub async fn exists(&self, id: &FileId) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let renewed: i64 = redis::cmd("EXPIRE")
            .arg(key(id))
            .arg(self.ttl_secs())
            .query_async(&mut conn)
            .await?;
        Ok(renewed == 1)
    }

    /// The bytes of file `id`, verified, or `None` if it is not stored.
    pub async fn get(&self, id: &FileId) -> Result<Option<Vec<u8>>, StoreError> {
        let mut conn = self.conn.clone();
        let bytes: Option<Vec<u8>> = redis::cmd("GET")
            .arg(key(id))
            .query_async(&mut conn)
            .await?;
        match bytes {
            Some(b) if !id.matches(&b) => Err(StoreError::Corrupt { id: id.clone() }),
            other => Ok(other),
        }
    }
}
