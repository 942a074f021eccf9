//! What `/metrics` shares between `warden serve` (serve/metrics.rs) and
//! `warden watch` (watch_metrics.rs): the text encoding, the latency
//! buckets, and a small plain-HTTP endpoint for a process that has no server
//! of its own (watch).
//!
//! Every name is prefixed `warden_`; every label value comes from a fixed
//! set (route templates, status codes, reason words) or from the registry's
//! own checked pool and jail names, so the number of series stays bounded.

use prometheus_client::registry::Registry;

/// The content type of the OpenMetrics text format (Prometheus reads it).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets (seconds) for the API and the `authorized-keys` lookup:
/// 0.5 ms to ~4 s, doubling.
pub fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 14)
}

/// A registry whose metric names start with `warden_`.
pub fn registry() -> Registry {
    Registry::with_prefix("warden")
}

/// The registry in the text format.
pub fn encode(r: &Registry) -> String {
    let mut s = String::new();
    // Writing to a String does not fail.
    let _ = prometheus_client::encoding::text::encode(&mut s, r);
    s
}
