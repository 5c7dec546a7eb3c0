//! Which store files live in, from the environment, read the same way by every binary that opens
//! one (api and runners must agree, or a runner looks for a file where the api never put it).
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `RCE_FILE_STORE` | `redis` | `redis` (the service's Redis, `rce:file:<id>`) or `s3` |
//! | `RCE_S3_ENDPOINT` | (none; required for `s3`) | the S3-compatible server, `http://` or `https://`, e.g. `http://127.0.0.1:9000` |
//! | `RCE_S3_BUCKET` | `rce-files` | the bucket; it must exist |
//! | `RCE_S3_REGION` | `us-east-1` | the region requests are signed for |
//! | `RCE_S3_ACCESS_KEY_ID`, `RCE_S3_SECRET_ACCESS_KEY` | (none; required for `s3`) | static credentials |
//! | `RCE_S3_PREFIX` | (none) | a key prefix, so one bucket can hold several deployments' files |
//! | `RCE_S3_TIMEOUT_SECS` | `120` | longest one request may take |
//!
//! Static keys are required rather than falling back to instance credentials: that fallback asks
//! a metadata address off this machine, which a misconfigured local run must not do silently.

use std::fmt;
use std::time::Duration;

/// Where files are stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StoreConfig {
    /// The service's own Redis: one machine, `make up`.
    #[default]
    Redis,
    /// An S3-compatible object store, for test data that outgrows Redis' memory.
    S3(S3Config),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Config {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// Keys start with `<prefix>/`; `None` puts files at the bucket's top level.
    pub prefix: Option<String>,
    /// A whole upload is one request, so this bounds the largest file's upload time.
    pub timeout: Duration,
}

/// A value kept out of logs: `Debug` prints a placeholder, since configurations get logged whole.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Why the environment does not describe a usable store; the text names the variable to fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreConfigError {
    #[error("RCE_FILE_STORE must be `redis` or `s3`, not {0:?}")]
    UnknownStore(String),
    #[error("RCE_FILE_STORE=s3 needs {0}")]
    Missing(&'static str),
    #[error("RCE_S3_ENDPOINT must start with http:// or https://, not {0:?}")]
    Endpoint(String),
    #[error("RCE_S3_TIMEOUT_SECS must be a whole number of seconds above 0")]
    Timeout,
}

pub const DEFAULT_BUCKET: &str = "rce-files";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

impl StoreConfig {
    /// The store the process environment names (the table above).
    pub fn from_env() -> Result<Self, StoreConfigError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// The store `var` describes: [`StoreConfig::from_env`] with the lookup given, so the rules
    /// are testable without touching the process environment. Empty values count as unset.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, StoreConfigError> {
        let get = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let kind = get("RCE_FILE_STORE").unwrap_or_else(|| "redis".into());
        match kind.trim() {
            "redis" => Ok(Self::Redis),
            "s3" => {
                let need = |name: &'static str| get(name).ok_or(StoreConfigError::Missing(name));
                let endpoint = need("RCE_S3_ENDPOINT")?;
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    return Err(StoreConfigError::Endpoint(endpoint));
                }
                let timeout = match get("RCE_S3_TIMEOUT_SECS") {
                    None => DEFAULT_TIMEOUT,
                    Some(secs) => match secs.trim().parse::<u64>() {
                        Ok(s) if s > 0 => Duration::from_secs(s),
                        _ => return Err(StoreConfigError::Timeout),
                    },
                };
                let prefix = get("RCE_S3_PREFIX")
                    .map(|p| p.trim_matches('/').to_string())
                    .filter(|p| !p.is_empty());
                Ok(Self::S3(S3Config {
                    endpoint,
                    bucket: get("RCE_S3_BUCKET").unwrap_or_else(|| DEFAULT_BUCKET.into()),
                    region: get("RCE_S3_REGION").unwrap_or_else(|| DEFAULT_REGION.into()),
                    access_key_id: need("RCE_S3_ACCESS_KEY_ID")?,
                    secret_access_key: Secret::new(need("RCE_S3_SECRET_ACCESS_KEY")?),
                    prefix,
                    timeout,
                }))
            }
            other => Err(StoreConfigError::UnknownStore(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> Result<StoreConfig, StoreConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        StoreConfig::from_vars(|name| vars.get(name).cloned())
    }

    const S3_MINIMAL: [(&str, &str); 4] = [
        ("RCE_FILE_STORE", "s3"),
        ("RCE_S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("RCE_S3_ACCESS_KEY_ID", "key"),
        ("RCE_S3_SECRET_ACCESS_KEY", "hush"),
    ];

    #[test]
    fn redis_is_the_default_and_ignores_the_s3_variables() {
        assert_eq!(config(&[]), Ok(StoreConfig::Redis));
        assert_eq!(config(&[("RCE_FILE_STORE", "")]), Ok(StoreConfig::Redis));
        assert_eq!(
            config(&[("RCE_FILE_STORE", "redis"), ("RCE_S3_ENDPOINT", "nonsense")]),
            Ok(StoreConfig::Redis)
        );
        assert_eq!(
            config(&[("RCE_FILE_STORE", "S3")]),
            Err(StoreConfigError::UnknownStore("S3".into()))
        );
    }

    #[test]
    fn s3_takes_the_documented_defaults() {
        let StoreConfig::S3(s3) = config(&S3_MINIMAL).unwrap() else {
            panic!("not s3");
        };
        assert_eq!(s3.endpoint, "http://127.0.0.1:9000");
        assert_eq!(s3.bucket, "rce-files");
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.prefix, None);
        assert_eq!(s3.timeout, Duration::from_secs(120));
        assert_eq!(s3.secret_access_key.expose(), "hush");
        // The secret never reaches a log line that prints the configuration.
        assert!(!format!("{s3:?}").contains("hush"), "{s3:?}");

        let mut vars = S3_MINIMAL.to_vec();
        vars.extend([
            ("RCE_S3_BUCKET", "b"),
            ("RCE_S3_REGION", "eu-west-1"),
            ("RCE_S3_PREFIX", "/staging/files/"),
            ("RCE_S3_TIMEOUT_SECS", "30"),
        ]);
        let StoreConfig::S3(s3) = config(&vars).unwrap() else {
            panic!("not s3");
        };
        assert_eq!((s3.bucket.as_str(), s3.region.as_str()), ("b", "eu-west-1"));
        assert_eq!(s3.prefix.as_deref(), Some("staging/files"));
        assert_eq!(s3.timeout, Duration::from_secs(30));
    }

    #[test]
    fn s3_without_what_it_needs_is_refused_by_name() {
        for missing in [
            "RCE_S3_ENDPOINT",
            "RCE_S3_ACCESS_KEY_ID",
            "RCE_S3_SECRET_ACCESS_KEY",
        ] {
            let vars: Vec<_> = S3_MINIMAL
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            let err = config(&vars).unwrap_err();
            assert_eq!(err, StoreConfigError::Missing(missing));
            assert!(err.to_string().contains(missing), "{err}");
        }
        let mut vars = S3_MINIMAL.to_vec();
        // Later entries win: this replaces the minimal endpoint.
        vars.push(("RCE_S3_ENDPOINT", "127.0.0.1:9000"));
        assert_eq!(
            config(&vars),
            Err(StoreConfigError::Endpoint("127.0.0.1:9000".into()))
        );
        let mut vars = S3_MINIMAL.to_vec();
        vars.push(("RCE_S3_TIMEOUT_SECS", "0"));
        assert_eq!(config(&vars), Err(StoreConfigError::Timeout));
    }
}
