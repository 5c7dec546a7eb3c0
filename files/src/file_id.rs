//! `sha256:<64 lowercase hex>`: the SHA-256 of a file's bytes, which is also how anyone holding
//! the bytes checks them. Only the canonical spelling is an id, so one file has one id.

use sha2::{Digest, Sha256};
use std::fmt;

const PREFIX: &str = "sha256:";

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileId(String);

/// Why a string is not a file id; the `Display` text completes "... is not a file id: ".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileIdError {
    #[error("a file id starts with \"sha256:\"")]
    Prefix,
    #[error("a file id is \"sha256:\" and 64 lowercase hex digits")]
    Digest,
}

impl FileId {
    /// The id of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let digest = Sha256::digest(bytes);
        let mut id = String::with_capacity(PREFIX.len() + 64);
        id.push_str(PREFIX);
        for b in digest {
            id.push_str(&format!("{b:02x}"));
        }
        Self(id)
    }

    /// `text` as an id, if it is one in its canonical spelling.
    pub fn parse(text: &str) -> Result<Self, FileIdError> {
        let hex = text.strip_prefix(PREFIX).ok_or(FileIdError::Prefix)?;
        if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(text.to_string()))
        } else {
            Err(FileIdError::Digest)
        }
    }

    /// Whether `bytes` are this file's (what a reader checks before using them).
    pub fn matches(&self, bytes: &[u8]) -> bool {
        Self::of(bytes) == *self
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_the_sha256_of_the_bytes() {
        // The SHA-256 of "test", as `sha256sum` prints it.
        let id = FileId::of(b"test");
        assert_eq!(
            id.as_str(),
            "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
        );
        assert!(id.matches(b"test"));
        assert!(!id.matches(b"test\n"));
        assert_eq!(FileId::parse(id.as_str()), Ok(id));
    }

    #[test]
    fn only_the_canonical_spelling_parses() {
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        assert_eq!(FileId::parse(hex), Err(FileIdError::Prefix));
        assert_eq!(
            FileId::parse(&format!("SHA256:{hex}")),
            Err(FileIdError::Prefix)
        );
        let upper = format!("sha256:{}", hex.to_uppercase());
        assert_eq!(FileId::parse(&upper), Err(FileIdError::Digest));
        assert_eq!(
            FileId::parse(&format!("sha256:{}", &hex[1..])),
            Err(FileIdError::Digest)
        );
        assert_eq!(
            FileId::parse(&format!("sha256:{hex}0")),
            Err(FileIdError::Digest)
        );
        assert_eq!(FileId::parse("sha256:../../x"), Err(FileIdError::Digest));
    }
}
