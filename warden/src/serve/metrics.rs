//! `GET /metrics` on the API's listener, without a token: Prometheus text
//! (OpenMetrics) with the fleet's gauges read from the registry at scrape
//! time and the API's own counters, counted as requests are answered.
//!
//! Why the API's listener and no token: one port to open and to protect
//! (TLS as the API), and nothing on the page names a device, an operator or
//! a token: labels are pool and jail names, route templates (never the raw
//! path: the label set stays bounded), status codes and fixed reason words.
//!
//! Each scrape costs a handful of aggregate queries (store/stats.rs), at
//! most [`MAX_SCRAPES`] at once, never a per-device loop.

use super::api::AppState;
use crate::metrics::{CONTENT_TYPE, encode, latency_buckets, registry};
use crate::store::conn::{Conn, DbUrl, Mode};
use crate::store::stats::{FleetStats, fleet_stats};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::Semaphore;

/// Scrapes answered at once (each reads the registry on a blocking thread).
pub const MAX_SCRAPES: usize = 2;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteStatus {
    method: String,
    route: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Route {
    method: String,
    route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Pool {
    pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolJail {
    pool: String,
    jail: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookResult {
    pub result: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn new_histogram() -> Histogram {
    Histogram::new(latency_buckets())
}

/// The counters and gauges of one `warden serve`.
pub struct ServeMetrics {
    registry: Registry,
    requests: Family<RouteStatus, Counter>,
    latency: HistogramFamily<Route>,
    refusals: Family<Reason, Counter>,
    enrolled: Family<Pool, Gauge>,
    revoked: Family<Pool, Gauge>,
    online: Family<PoolJail, Gauge>,
    enrolments: Counter,
    replacements: Counter,
    revocations: Counter,
    grants: Counter,
    outbox_pending: Gauge,
    pub hook_deliveries: Family<HookResult, Counter>,
    scrape_errors: Counter,
    scrapes: Arc<Semaphore>,
}

/// The process's metrics (created on first use).
pub fn metrics() -> &'static ServeMetrics {
    static M: OnceLock<ServeMetrics> = OnceLock::new();
    M.get_or_init(ServeMetrics::new)
}

impl ServeMetrics {
    fn new() -> Self {
        let mut r = registry();
        let m = ServeMetrics {
            registry: Registry::default(),
            requests: Family::default(),
            latency: Family::new_with_constructor(new_histogram),
            refusals: Family::default(),
            enrolled: Family::default(),
            revoked: Family::default(),
            online: Family::default(),
            enrolments: Counter::default(),
            replacements: Counter::default(),
            revocations: Counter::default(),
            grants: Counter::default(),
            outbox_pending: Gauge::default(),
            hook_deliveries: Family::default(),
            scrape_errors: Counter::default(),
            scrapes: Arc::new(Semaphore::new(MAX_SCRAPES)),
        };
        r.register(
            "api_requests",
            "API requests by method, route template and status",
            m.requests.clone(),
        );
        r.register(
            "api_request_duration_seconds",
            "API request time by method and route template",
            m.latency.clone(),
        );
        r.register(
            "api_refusals",
            "API requests refused by authorization, by reason (token: none or unknown, expired or revoked; scope)",
            m.refusals.clone(),
        );
        r.register(
            "devices_enrolled",
            "unrevoked devices per pool (read from the registry at scrape time)",
            m.enrolled.clone(),
        );
        r.register(
            "devices_revoked",
            "revoked devices per pool (read from the registry at scrape time)",
            m.revoked.clone(),
        );
        r.register(
            "devices_online",
            "devices holding their port per pool and jail (as watch last recorded)",
            m.online.clone(),
        );
        r.register(
            "enrolments",
            "devices enrolled (enroll and import, by any process: the audit trail)",
            m.enrolments.clone(),
        );
        r.register(
            "replacements",
            "devices re-keyed, moved or re-enrolled (enroll --replace)",
            m.replacements.clone(),
        );
        r.register(
            "revocations",
            "devices revoked (the audit trail)",
            m.revocations.clone(),
        );
        r.register(
            "grants",
            "grants created (the audit trail)",
            m.grants.clone(),
        );
        r.register(
            "webhook_outbox_pending",
            "webhook deliveries not yet acknowledged",
            m.outbox_pending.clone(),
        );
        r.register(
            "webhook_deliveries",
            "webhook delivery attempts by result (delivered, failed)",
            m.hook_deliveries.clone(),
        );
        r.register(
            "metrics_scrape_errors",
            "scrapes whose registry read failed (gauges then keep their last values)",
            m.scrape_errors.clone(),
        );
        ServeMetrics { registry: r, ..m }
    }

    fn set(&self, s: &FleetStats) {
        self.enrolled.clear();
        self.revoked.clear();
        self.online.clear();
        for (p, n) in &s.enrolled {
            self.enrolled
                .get_or_create(&Pool {
                    pool: p.to_string(),
                })
                .set(*n);
        }
        for (p, n) in &s.revoked {
            self.revoked
                .get_or_create(&Pool {
                    pool: p.to_string(),
                })
                .set(*n);
        }
        for ((p, j), n) in &s.online {
            let l = PoolJail {
                pool: p.to_string(),
                jail: j.to_string(),
            };
            self.online.get_or_create(&l).set(*n);
        }
        let n = |a: &str| u64::try_from(*s.actions.get(a).unwrap_or(&0)).unwrap_or(0);
        // Counters only go up: moved to the registry's count.
        let up = |c: &Counter, to: u64| {
            let have = c.get();
            if to > have {
                c.inc_by(to - have);
            }
        };
        up(&self.enrolments, n("enroll") + n("import"));
        up(&self.replacements, n("replace"));
        up(&self.revocations, n("revoke"));
        up(&self.grants, n("grant"));
        self.outbox_pending.set(s.outbox_pending);
    }
}

/// `GET /metrics`.
pub async fn scrape(State(st): State<AppState>) -> Response {
    let m = metrics();
    let Ok(_slot) = m.scrapes.clone().acquire_owned().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let db: DbUrl = st.db();
    let read = tokio::task::spawn_blocking(move || {
        let mut c = Conn::open(&db, Mode::HotPath)?;
        fleet_stats(&mut c)
    })
    .await;
    match read {
        Ok(Ok(s)) => m.set(&s),
        Ok(Err(e)) => {
            m.scrape_errors.inc();
            eprintln!("warden: /metrics: {e}");
        }
        Err(_) => {
            m.scrape_errors.inc();
        }
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], encode(&m.registry)).into_response()
}

/// Counts every request by its route template and status, and times it.
pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other", // a client's own method word: not a label value
    }
    .to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let res = next.run(req).await;
    let m = metrics();
    let status = res.status();
    m.requests
        .get_or_create(&RouteStatus {
            method: method.clone(),
            route: route.clone(),
            status: status.as_u16().to_string(),
        })
        .inc();
    m.latency
        .get_or_create(&Route { method, route })
        .observe(start.elapsed().as_secs_f64());
    let reason = match status {
        StatusCode::UNAUTHORIZED => Some(
            res.extensions()
                .get::<super::api::Refused>()
                .map_or("token", |r| r.0),
        ),
        StatusCode::FORBIDDEN => Some("scope"),
        _ => None,
    };
    if let Some(reason) = reason {
        m.refusals.get_or_create(&Reason { reason }).inc();
    }
    res
}
