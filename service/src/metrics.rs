//! Prometheus text exposition, the same for every binary's `/metrics`.

use prometheus::Registry;

/// The registry's metrics in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    prometheus::TextEncoder::new()
        .encode_utf8(&registry.gather(), &mut out)
        .expect("text encoding cannot fail");
    out
}
