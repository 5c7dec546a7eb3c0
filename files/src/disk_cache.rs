//! A runner's local copy of the files its jobs use: a bounded directory, least recently used out
//! first, so a hot problem's test data crosses the network once per runner, not once per job.
//!
//! Files are named by their id and checked against it every time they are read from disk (a
//! disk can rot and a process can scribble): a file that no longer matches is dropped and
//! fetched again, never used. Writes go to a temporary name and are renamed into place, so a
//! crash leaves a whole file or none. A file larger than the whole cache is returned uncached.

use crate::file_id::FileId;
use crate::store::{FileStore, StoreError};
use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What the cache knows of one file on disk.
#[derive(Clone, Copy, Debug)]
struct Entry {
    size: u64,
    /// The index's clock when it was last used: the smallest goes first.
    used: u64,
}

#[derive(Debug, Default)]
struct Index {
    entries: HashMap<FileId, Entry>,
    total: u64,
    clock: u64,
}

impl Index {
    fn touch(&mut self, id: &FileId) {
        self.clock += 1;
        if let Some(e) = self.entries.get_mut(id) {
            e.used = self.clock;
        }
    }

    fn remove(&mut self, id: &FileId) -> Option<Entry> {
        let e = self.entries.remove(id)?;
        self.total -= e.size;
        Some(e)
    }

    /// The least recently used files to remove so that `incoming` more bytes fit in `max`.
    fn evict_for(&mut self, incoming: u64, max: u64) -> Vec<FileId> {
        let mut out = Vec::new();
        while self.total + incoming > max {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            self.remove(&oldest);
            out.push(oldest);
        }
        out
    }
}

#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
}

/// What [`DiskCache::stats`] reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheStats {
    pub files: usize,
    pub bytes: u64,
}

impl DiskCache {
    /// The cache in `dir` (created if missing) holding at most `max_bytes`; the files already
    /// there are taken in (their order of use is not kept across restarts: they are the first
    /// to go, in directory order), and leftovers of interrupted writes removed.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut index = Index::default();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let id = name
                .strip_prefix("sha256-")
                .and_then(|hex| FileId::parse(&format!("sha256:{hex}")).ok());
            match id {
                Some(id) if entry.file_type()?.is_file() => {
                    let size = entry.metadata()?.len();
                    index.clock += 1;
                    let used = index.clock;
                    index.total += size;
                    index.entries.insert(id, Entry { size, used });
                }
                _ => {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let cache = Self {
            dir: dir.to_path_buf(),
            max_bytes,
            index: Mutex::new(index),
        };
        // A smaller limit than last time: trim now.
        let evicted = cache.lock().evict_for(0, max_bytes);
        for id in evicted {
            let _ = std::fs::remove_file(cache.path(&id));
        }
        Ok(cache)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn path(&self, id: &FileId) -> PathBuf {
        let hex = id.as_str().trim_start_matches("sha256:");
        self.dir.join(format!("sha256-{hex}"))
    }

    pub fn stats(&self) -> CacheStats {
        let index = self.lock();
        CacheStats {
            files: index.entries.len(),
            bytes: index.total,
        }
    }

    /// File `id` from the cache, or from `store` (then kept), verified either way; `None` when
    /// the store does not have it.
    pub async fn get(&self, store: &FileStore, id: &FileId) -> Result<Option<Vec<u8>>, StoreError> {
        self.get_with(id, store.get(id)).await
    }

    /// [`DiskCache::get`] with the fetch given: `fetch` runs only on a miss.
    pub async fn get_with(
        &self,
        id: &FileId,
        fetch: impl Future<Output = Result<Option<Vec<u8>>, StoreError>>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(id);
        let cached = self.lock().entries.contains_key(id);
        if cached {
            match tokio::fs::read(&path).await {
                Ok(bytes) if id.matches(&bytes) => {
                    self.lock().touch(id);
                    return Ok(Some(bytes));
                }
                // Changed or gone under us: never used, fetched again.
                _ => {
                    self.lock().remove(id);
                    let _ = tokio::fs::remove_file(&path).await;
                }
            }
        }
        let Some(bytes) = fetch.await? else {
            return Ok(None);
        };
        if !id.matches(&bytes) {
            return Err(StoreError::Corrupt { id: id.clone() });
        }
        self.keep(id, &bytes).await;
        Ok(Some(bytes))
    }

    /// Writes `bytes` into the cache, making room first; a failure to write only costs the
    /// cache (the caller has the bytes).
    async fn keep(&self, id: &FileId, bytes: &[u8]) {
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return;
        }
        let evicted = {
            let mut index = self.lock();
            if index.entries.contains_key(id) {
                return;
            }
            index.evict_for(size, self.max_bytes)
        };
        for old in evicted {
            let _ = tokio::fs::remove_file(self.path(&old)).await;
        }
        let path = self.path(id);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let written = async {
            tokio::fs::write(&tmp, bytes).await?;
            tokio::fs::rename(&tmp, &path).await
        }
        .await;
        match written {
            Ok(()) => {
                let mut index = self.lock();
                index.clock += 1;
                let used = index.clock;
                if index
                    .entries
                    .insert(id.clone(), Entry { size, used })
                    .is_none()
                {
                    index.total += size;
                }
            }
            Err(_) => {
                let _ = tokio::fs::remove_file(&tmp).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rce-files-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    /// A fetch that counts its calls and answers `bytes`.
    async fn fetch(
        count: &AtomicUsize,
        bytes: Option<&[u8]>,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        count.fetch_add(1, Ordering::SeqCst);
        Ok(bytes.map(<[u8]>::to_vec))
    }

    #[tokio::test]
    async fn a_file_is_fetched_once_then_read_from_disk() {
        let dir = scratch("once");
        let cache = DiskCache::open(&dir, 1 << 20).unwrap();
        let (data, id) = (b"1 2\n".to_vec(), FileId::of(b"1 2\n"));
        let fetches = AtomicUsize::new(0);
        for _ in 0..3 {
            let got = cache
                .get_with(&id, fetch(&fetches, Some(&data)))
                .await
                .unwrap();
            assert_eq!(got.as_deref(), Some(&data[..]));
        }
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        assert_eq!(cache.stats(), CacheStats { files: 1, bytes: 4 });
        // A restarted runner finds it on disk.
        let reopened = DiskCache::open(&dir, 1 << 20).unwrap();
        let got = reopened.get_with(&id, fetch(&fetches, None)).await.unwrap();
        assert_eq!(got.as_deref(), Some(&data[..]));
        assert_eq!(fetches.load(Ordering::SeqCst), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn a_changed_file_on_disk_is_fetched_again_and_bad_fetches_are_refused() {
        let dir = scratch("rot");
        let cache = DiskCache::open(&dir, 1 << 20).unwrap();
        let (data, id) = (b"answer".to_vec(), FileId::of(b"answer"));
        let fetches = AtomicUsize::new(0);
        cache
            .get_with(&id, fetch(&fetches, Some(&data)))
            .await
            .unwrap();
        std::fs::write(cache.path(&id), b"answeR").unwrap();
        let got = cache
            .get_with(&id, fetch(&fetches, Some(&data)))
            .await
            .unwrap();
        assert_eq!(got.as_deref(), Some(&data[..]));
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // A fetch that hands back other bytes than the id's is an error and is not kept.
        let other = FileId::of(b"other");
        let err = cache
            .get_with(&other, fetch(&fetches, Some(b"not it")))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
        assert!(!cache.path(&other).exists());
        assert_eq!(
            cache.get_with(&other, fetch(&fetches, None)).await.unwrap(),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn the_least_recently_used_go_first_and_the_bound_holds() {
        let dir = scratch("lru");
        let cache = DiskCache::open(&dir, 10).unwrap();
        let files: Vec<(Vec<u8>, FileId)> = ["aaaa", "bbbb", "cccc"]
            .iter()
            .map(|s| (s.as_bytes().to_vec(), FileId::of(s.as_bytes())))
            .collect();
        let fetches = AtomicUsize::new(0);
        for (data, id) in &files[..2] {
            cache
                .get_with(id, fetch(&fetches, Some(data)))
                .await
                .unwrap();
        }
        // a is used again, so b is the oldest when c comes.
        cache
            .get_with(&files[0].1, fetch(&fetches, None))
            .await
            .unwrap();
        cache
            .get_with(&files[2].1, fetch(&fetches, Some(&files[2].0)))
            .await
            .unwrap();
        assert_eq!(cache.stats(), CacheStats { files: 2, bytes: 8 });
        assert!(cache.path(&files[0].1).exists());
        assert!(!cache.path(&files[1].1).exists());
        // Larger than the whole cache: returned, not kept.
        let big = vec![b'x'; 11];
        let got = cache
            .get_with(&FileId::of(&big), fetch(&fetches, Some(&big)))
            .await
            .unwrap();
        assert_eq!(got, Some(big));
        assert_eq!(cache.stats().files, 2);
        // Reopened smaller: trimmed at once.
        drop(cache);
        let small = DiskCache::open(&dir, 4).unwrap();
        assert_eq!(small.stats().files, 1);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
