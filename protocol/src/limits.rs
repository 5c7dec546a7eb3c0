//! Resource limits: what a client may ask for, and how a request is resolved against a language's
//! defaults and maxima.

use serde::{Deserialize, Serialize};

/// Fully resolved limits of one step. Every field is set: this is what the sandbox enforces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub wall_time_ms: u64,
    pub cpu_time_ms: u64,
    pub memory_mb: u64,
    pub processes: u64,
    pub output_bytes: u64,
}

/// Limits as a client or a `topology.yaml` override gives them: any field may be missing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartialLimits {
    pub wall_time_ms: Option<u64>,
    pub cpu_time_ms: Option<u64>,
    pub memory_mb: Option<u64>,
    pub processes: Option<u64>,
    pub output_bytes: Option<u64>,
}

/// Why a requested limit was refused; `field` is the JSON path the client must fix.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    #[error("{field} is {value}, above this language's maximum of {max}")]
    AboveMaximum { field: String, value: u64, max: u64 },
    #[error("{field} must be at least {min}")]
    BelowMinimum { field: String, value: u64, min: u64 },
}

impl LimitError {
    pub fn field(&self) -> &str {
        match self {
            LimitError::AboveMaximum { field, .. } | LimitError::BelowMinimum { field, .. } => {
                field
            }
        }
    }
}

/// The smallest value each limit may take: below these, even an empty program cannot start, and
/// a client would get a confusing verdict instead of a clear error.
pub const MINIMUM: Limits = Limits {
    wall_time_ms: 100,
    cpu_time_ms: 50,
    memory_mb: 16,
    processes: 4,
    output_bytes: 1,
};

impl PartialLimits {
    /// Fills missing fields from `base`.
    pub fn over(self, base: Limits) -> Limits {
        Limits {
            wall_time_ms: self.wall_time_ms.unwrap_or(base.wall_time_ms),
            cpu_time_ms: self.cpu_time_ms.unwrap_or(base.cpu_time_ms),
            memory_mb: self.memory_mb.unwrap_or(base.memory_mb),
            processes: self.processes.unwrap_or(base.processes),
            output_bytes: self.output_bytes.unwrap_or(base.output_bytes),
        }
    }

    /// Resolves a client's request: missing fields take `default`, present ones must lie within
    /// [`MINIMUM`, `max`]. The first offending field is reported, in declaration order.
    pub fn resolve(self, default: Limits, max: Limits) -> Result<Limits, LimitError> {
        let resolved = self.over(default);
        for (name, value, max, min) in resolved.fields(max) {
            if value > max {
                return Err(LimitError::AboveMaximum {
                    field: format!("limits.{name}"),
                    value,
                    max,
                });
            }
            if value < min {
                return Err(LimitError::BelowMinimum {
                    field: format!("limits.{name}"),
                    value,
                    min,
                });
            }
        }
        Ok(resolved)
    }
}

impl Limits {
    fn fields(&self, max: Limits) -> [(&'static str, u64, u64, u64); 5] {
        [
            (
                "wall_time_ms",
                self.wall_time_ms,
                max.wall_time_ms,
                MINIMUM.wall_time_ms,
            ),
            (
                "cpu_time_ms",
                self.cpu_time_ms,
                max.cpu_time_ms,
                MINIMUM.cpu_time_ms,
            ),
            (
                "memory_mb",
                self.memory_mb,
                max.memory_mb,
                MINIMUM.memory_mb,
            ),
            (
                "processes",
                self.processes,
                max.processes,
                MINIMUM.processes,
            ),
            (
                "output_bytes",
                self.output_bytes,
                max.output_bytes,
                MINIMUM.output_bytes,
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULT: Limits = Limits {
        wall_time_ms: 5000,
        cpu_time_ms: 3000,
        memory_mb: 256,
        processes: 64,
        output_bytes: 65536,
    };
    const MAX: Limits = Limits {
        wall_time_ms: 30000,
        cpu_time_ms: 20000,
        memory_mb: 1024,
        processes: 256,
        output_bytes: 1 << 22,
    };

    #[test]
    fn missing_fields_take_defaults() {
        let req = PartialLimits {
            memory_mb: Some(128),
            ..Default::default()
        };
        let got = req.resolve(DEFAULT, MAX).unwrap();
        assert_eq!(got.memory_mb, 128);
        assert_eq!(got.wall_time_ms, 5000);
        assert_eq!(got.output_bytes, 65536);
    }

    #[test]
    fn above_maximum_names_field_and_maximum() {
        let req = PartialLimits {
            wall_time_ms: Some(30001),
            ..Default::default()
        };
        let err = req.resolve(DEFAULT, MAX).unwrap_err();
        assert_eq!(err.field(), "limits.wall_time_ms");
        assert!(err.to_string().contains("30000"), "{err}");
    }

    #[test]
    fn maximum_itself_is_allowed() {
        let req = PartialLimits {
            memory_mb: Some(1024),
            ..Default::default()
        };
        assert_eq!(req.resolve(DEFAULT, MAX).unwrap().memory_mb, 1024);
    }

    #[test]
    fn below_minimum_is_refused() {
        let req = PartialLimits {
            memory_mb: Some(1),
            ..Default::default()
        };
        let err = req.resolve(DEFAULT, MAX).unwrap_err();
        assert_eq!(err.field(), "limits.memory_mb");
    }
}
