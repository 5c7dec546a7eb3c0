//! How bytes travel in a JSON string field, in both directions: a client's `stdin_encoding` and
//! `files[].encoding`, and a result's `stdout_encoding`/`stderr_encoding`. One type, so the
//! names `"utf8"` and `"base64"` are spelt in one place.

use serde::{Deserialize, Serialize};

/// How a string field holds its bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The bytes are valid UTF-8 and the field is that text, as it is.
    #[default]
    Utf8,
    /// The bytes may be anything: the field is their base64 (standard alphabet, padded), byte
    /// for byte.
    Base64,
}

impl Encoding {
    pub const ALL: [Self; 2] = [Self::Utf8, Self::Base64];

    /// The name as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Utf8 => "utf8",
            Self::Base64 => "base64",
        }
    }

    /// The encoding named `name` exactly as the JSON spells it; `None` for anything else, so
    /// the caller can name the field and what it was given.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// For `skip_serializing_if`: a result omits its encoding fields when they are `utf8`.
    pub fn is_utf8(&self) -> bool {
        *self == Self::Utf8
    }

    /// The bytes a field of this encoding holds.
    pub fn decode(self, field: String) -> Result<Vec<u8>, base64::DecodeError> {
        match self {
            Self::Utf8 => Ok(field.into_bytes()),
            Self::Base64 => crate::bytes::decode_base64(&field),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_json() {
        for e in Encoding::ALL {
            assert_eq!(serde_json::to_value(e).unwrap(), e.as_str());
            assert_eq!(Encoding::parse(e.as_str()), Some(e));
        }
        assert_eq!(Encoding::Utf8.as_str(), "utf8");
        assert_eq!(Encoding::Base64.as_str(), "base64");
        assert_eq!(Encoding::parse("UTF-8"), None);
    }

    #[test]
    fn decodes_each_encoding() {
        assert_eq!(Encoding::Utf8.decode("/w==".into()).unwrap(), b"/w==");
        assert_eq!(Encoding::Base64.decode("/w==".into()).unwrap(), [0xff]);
        assert!(Encoding::Base64.decode("!".into()).is_err());
    }
}
