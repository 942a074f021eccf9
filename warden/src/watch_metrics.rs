//! The jail host's figures: `warden watch --metrics-listen ADDR` serves
//! them, counted where they happen.
//!
//! ```text
//! sshd -> warden authorized-keys (one process per login, exits)
//!           \-- one datagram "L1 RESULT REASON MICROS", non-blocking, to
//!               the watch's unix socket; dropped if nobody listens
//! warden watch: receives them (thread), counts its own ticks and ended
//!               sessions, answers GET /metrics (plain HTTP, loopback only)
//! ```
//!
//! The lookup never waits for the watch: the socket is a datagram socket,
//! the send is non-blocking, and a missing socket, a full queue or a watch
//! that is not running costs the lookup one failed system call, nothing
//! more. A report is parsed like any input from another process: a fixed
//! set of words and a bounded number, anything else is counted as
//! rejected and otherwise ignored.

use crate::error::Error;
use crate::types::{Name, quote};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Where a jail's watch listens for lookup reports unless told otherwise.
pub const DEFAULT_SOCKET_DIR: &str = "/run/warden";
/// The largest report datagram read (a report is ~40 bytes).
pub const MAX_REPORT_BYTES: usize = 128;
/// A lookup slower than this is recorded as this (a report cannot claim more).
pub const MAX_REPORTED_MICROS: u64 = 60_000_000;

/// The socket a jail's lookups report to: `/run/warden/metrics-JAIL.sock`.
pub fn default_socket(jail: &Name) -> PathBuf {
    Path::new(DEFAULT_SOCKET_DIR).join(format!("metrics-{jail}.sock"))
}

/// How one `authorized-keys` lookup ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allowed,
    Refused,
    /// The registry could not answer (sshd hears no).
    Error,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        [Outcome::Allowed, Outcome::Refused, Outcome::Error]
            .into_iter()
            .find(|o| o.word() == s)
    }
}

/// `authorized-keys`' hand-over: one datagram, never waiting, errors ignored.
pub fn report_lookup(socket: &Path, outcome: Outcome, reason: &str, took: Duration) {
    let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
    let msg = format!("L1 {} {reason} {micros}", outcome.word());
    if let Ok(s) = UnixDatagram::unbound()
        && s.set_nonblocking(true).is_ok()
    {
        let _ = s.send_to(msg.as_bytes(), socket);
    }
}

/// A report, parsed: (outcome, refusal reason if refused, seconds).
fn parse_report(b: &[u8]) -> Option<(Outcome, Option<&'static str>, f64)> {
    let s = std::str::from_utf8(b).ok()?;
    let mut w = s.split(' ');
    if w.next()? != "L1" {
        return None;
    }
    let outcome = Outcome::parse(w.next()?)?;
    let reason = w.next()?;
    let micros: u64 = w.next()?.parse().ok()?;
    if w.next().is_some() || micros > MAX_REPORTED_MICROS {
        return None;
    }
    let reason = match outcome {
        Outcome::Refused => Some(
            *crate::sshd::REFUSAL_REASONS
                .iter()
                .find(|r| **r == reason)?,
        ),
        _ if reason == "-" => None,
        _ => return None,
    };
    Some((outcome, reason, micros as f64 / 1e6))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// The jail host's counters (one set per watch process).
pub struct WatchMetrics {
    registry: prometheus_client::registry::Registry,
    lookups: Family<ResultLabel, Counter>,
    refusals: Family<ReasonLabel, Counter>,
    lookup_seconds: Histogram,
    rejected: Counter,
    ticks: Family<ResultLabel, Counter>,
    ended: Family<ReasonLabel, Counter>,
}

impl WatchMetrics {
    fn new(jail: &Name) -> Self {
        let mut registry = crate::metrics::registry();
        let m = WatchMetrics {
            registry: Default::default(),
            lookups: Family::default(),
            refusals: Family::default(),
            lookup_seconds: Histogram::new(crate::metrics::latency_buckets()),
            rejected: Counter::default(),
            ticks: Family::default(),
            ended: Family::default(),
        };
        let _ = jail; // the scrape target's labels name the jail
        registry.register(
            "authorized_keys_lookups",
            "authorized-keys lookups by result (allowed, refused, error)",
            m.lookups.clone(),
        );
        registry.register(
            "login_refusals",
            "authorized-keys refusals by reason",
            m.refusals.clone(),
        );
        registry.register(
            "authorized_keys_duration_seconds",
            "authorized-keys lookup time, from the command's start to its answer",
            m.lookup_seconds.clone(),
        );
        registry.register(
            "metrics_reports_rejected",
            "lookup reports that did not parse (ignored)",
            m.rejected.clone(),
        );
        registry.register(
            "watch_ticks",
            "watch looks at the jail by result (ok, error)",
            m.ticks.clone(),
        );
        registry.register(
            "watch_sessions_ended",
            "sessions watch ended, by why (revoked, old_key, stray_port, operator)",
            m.ended.clone(),
        );
        for r in ["ok", "error"] {
            let _ = m.ticks.get_or_create(&ResultLabel { result: r });
        }
        WatchMetrics { registry, ..m }
    }

    fn take(&self, b: &[u8]) {
        match parse_report(b) {
            Some((o, reason, secs)) => {
                self.lookups
                    .get_or_create(&ResultLabel { result: o.word() })
                    .inc();
                if let Some(r) = reason {
                    self.refusals
                        .get_or_create(&ReasonLabel { reason: r })
                        .inc();
                }
                self.lookup_seconds.observe(secs);
            }
            None => {
                self.rejected.inc();
            }
        }
    }
}

static METRICS: OnceLock<Arc<WatchMetrics>> = OnceLock::new();

/// A watch tick ended (`ok`: it recorded presence without an error).
pub fn tick(ok: bool) {
    if let Some(m) = METRICS.get() {
        let result = if ok { "ok" } else { "error" };
        m.ticks.get_or_create(&ResultLabel { result }).inc();
    }
}

/// Watch ended a session; `why` is one of a fixed set of words.
pub fn session_ended(why: &'static str) {
    if let Some(m) = METRICS.get() {
        m.ended.get_or_create(&ReasonLabel { reason: why }).inc();
    }
}

/// Starts the figures of `warden watch`: the report socket at `socket`
/// (replacing a stale socket file, refusing any other file) and the
/// `/metrics` endpoint on `listen` (loopback only: plain HTTP).
pub fn start(jail: &Name, listen: &str, socket: &Path) -> Result<(), Error> {
    let addr: SocketAddr = listen.parse().map_err(|_| {
        Error::invalid(format!(
            "--metrics-listen {}: want ADDR:PORT (e.g. 127.0.0.1:9469)",
            quote(listen)
        ))
    })?;
    if !addr.ip().is_loopback() {
        return Err(Error::invalid(format!(
            "--metrics-listen {addr}: plain HTTP, loopback only (scrape through a local exporter or tunnel)"
        )));
    }
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    match std::fs::symlink_metadata(socket) {
        Ok(m) if m.file_type().is_socket() => {
            let _ = std::fs::remove_file(socket);
        }
        Ok(_) => {
            return Err(Error::runtime(format!(
                "--metrics-socket {}: exists and is not a socket",
                socket.display()
            )));
        }
        Err(_) => {}
    }
    let sock = UnixDatagram::bind(socket)
        .map_err(|e| Error::runtime(format!("--metrics-socket {}: {e}", socket.display())))?;
    // The command user sshd runs authorized-keys as must be able to send.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| Error::runtime(format!("--metrics-socket {}: {e}", socket.display())))?;
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .map_err(|e| Error::runtime(format!("--metrics-listen {addr}: {e}")))?;
    let m = Arc::new(WatchMetrics::new(jail));
    let _ = METRICS.set(m.clone());
    let rx = m.clone();
    std::thread::Builder::new()
        .name("metrics-reports".into())
        .spawn(move || {
            let mut buf = [0u8; MAX_REPORT_BYTES];
            loop {
                match sock.recv(&mut buf) {
                    Ok(n) => rx.take(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        eprintln!("watch: metrics socket: {e}");
                        return;
                    }
                }
            }
        })
        .map_err(|e| Error::runtime(format!("cannot start the metrics thread: {e}")))?;
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || serve_http(listener, m))
        .map_err(|e| Error::runtime(format!("cannot start the metrics thread: {e}")))?;
    eprintln!(
        "watch: metrics on http://{addr}/metrics, lookup reports on {}",
        socket.display()
    );
    Ok(())
}

/// GET /metrics on a one-thread runtime (nothing else is served).
fn serve_http(listener: std::net::TcpListener, m: Arc<WatchMetrics>) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("watch: metrics endpoint: {e}");
            return;
        }
    };
    rt.block_on(async move {
        let Ok(l) = tokio::net::TcpListener::from_std(listener) else {
            eprintln!("watch: metrics endpoint: cannot use the listener");
            return;
        };
        let app = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let m = m.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            crate::metrics::CONTENT_TYPE,
                        )],
                        crate::metrics::encode(&m.registry),
                    )
                }
            }),
        );
        if let Err(e) = axum::serve(l, app).await {
            eprintln!("watch: metrics endpoint: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_parse_strictly() {
        assert_eq!(
            parse_report(b"L1 refused revoked 1500"),
            Some((Outcome::Refused, Some("revoked"), 0.0015))
        );
        assert_eq!(
            parse_report(b"L1 allowed - 900"),
            Some((Outcome::Allowed, None, 0.0009))
        );
        for bad in [
            &b"L1 refused made_up 1"[..],
            b"L1 allowed revoked 1",
            b"L2 allowed - 1",
            b"L1 allowed - 1 extra",
            b"L1 allowed - -1",
            b"L1 allowed - 99999999999",
            b"\xff",
        ] {
            assert_eq!(parse_report(bad), None, "{bad:?}");
        }
    }
}
