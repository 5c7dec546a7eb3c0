//! Reading settings from the environment, the same way in every binary.

/// The variable's value, or `default` when it is unset (or not valid Unicode).
pub fn var_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}
