//! Webhook delivery: `warden serve` takes due events from the registry's
//! outbox and POSTs them, signed, to their hooks.
//!
//! ```text
//! loop: store::hook::due (oldest unacknowledged event per hook and device,
//!       at most MAX_IN_FLIGHT) -> POST each at once (timeouts) -> 2xx: delivered;
//!       anything else: attempts+1, next try after BACKOFF_FIRST * 2^attempts
//!       (at most BACKOFF_MAX), until one delivery to the hook succeeds: then
//!       all its waiting events are due -> again; nothing due: sleep POLL_INTERVAL
//! ```
//!
//! At least once: a row is marked delivered only after its 2xx, so a
//! restart in between sends it again (receivers de-duplicate by
//! `X-Warden-Delivery`). In order per device: a device's next event is not
//! due until the one before it was acknowledged.
//!
//! The signature: `X-Warden-Signature: sha256=HEX(HMAC-SHA256(secret,
//! TIMESTAMP + "." + BODY))` with `X-Warden-Timestamp: TIMESTAMP` (Unix
//! seconds of this attempt): a receiver checks it and refuses old timestamps.

use crate::store::conn::{Conn, DbUrl, Mode};
use crate::store::hook::{self, Due};
use bytes_body::Body;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Deliveries in flight at once (each to a different device or hook).
pub const MAX_IN_FLIGHT: usize = 16;
/// The largest body sent (an event is a few hundred bytes; a larger one is
/// a registry that was tampered with and is not sent).
pub const MAX_HOOK_BODY_BYTES: usize = 16 * 1024;
/// The wait before the first retry, doubled each attempt.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);
/// The longest wait between two attempts of one event.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Time to connect (and finish TLS) to a receiver.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for one whole delivery, connect to status line.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the outbox is looked at when nothing was due.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long acknowledged events are kept (then pruned).
pub const KEEP_DELIVERED: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often acknowledged events are pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

mod bytes_body {
    pub type Body = http_body_util::Full<axum::body::Bytes>;
}

/// `sha256=HEX` of HMAC-SHA256(secret, timestamp "." body).
pub fn signature(secret: &str, timestamp: i64, body: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body.as_bytes());
    let tag = ctx.sign();
    let mut s = String::from("sha256=");
    for b in tag.as_ref() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The wait after `attempts` failed attempts.
pub fn backoff(attempts: i64) -> Duration {
    let shift = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    BACKOFF_FIRST.saturating_mul(1 << shift).min(BACKOFF_MAX)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Runs the delivery loop until the process ends.
pub async fn deliver_forever(db: DbUrl) {
    let tls = match client_tls() {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            eprintln!("warden: webhooks: no TLS client ({e}); https:// hooks will fail");
            None
        }
    };
    let mut last_prune: Option<tokio::time::Instant> = None;
    loop {
        if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
            last_prune = Some(tokio::time::Instant::now());
            let db = db.clone();
            let before = now_ms() / 1000 - i64::try_from(KEEP_DELIVERED.as_secs()).unwrap_or(0);
            let _ = tokio::task::spawn_blocking(move || {
                let mut c = Conn::open(&db, Mode::Admin)?;
                hook::prune_delivered(&mut c, before)
            })
            .await;
        }
        let d = db.clone();
        let due = tokio::task::spawn_blocking(move || {
            let mut c = Conn::open(&d, Mode::Admin)?;
            hook::due(&mut c, now_ms(), MAX_IN_FLIGHT)
        })
        .await;
        let due = match due {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                eprintln!("warden: webhooks: {e}");
                tokio::time::sleep(BACKOFF_MAX.min(Duration::from_secs(5))).await;
                continue;
            }
            Err(_) => {
                tokio::time::sleep(POLL_INTERVAL).await;
                continue;
            }
        };
        if due.is_empty() {
            tokio::time::sleep(POLL_INTERVAL).await;
            continue;
        }
        let mut set = tokio::task::JoinSet::new();
        for d in due {
            let tls = tls.clone();
            set.spawn(async move {
                let r = tokio::time::timeout(DELIVERY_TIMEOUT, post(&d, &tls))
                    .await
                    .unwrap_or_else(|_| Err("timed out".into()));
                (d, r)
            });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                results.push(r);
            }
        }
        let d = db.clone();
        let recorded = tokio::task::spawn_blocking(move || {
            let mut c = Conn::open(&d, Mode::Admin)?;
            let m = super::metrics::metrics();
            let mut back = std::collections::BTreeSet::new();
            for (due, r) in results {
                let result = match r {
                    Ok(()) => {
                        hook::delivered(&mut c, due.seq, now_ms() / 1000)?;
                        back.insert(due.hook);
                        "delivered"
                    }
                    Err(why) => {
                        let next = now_ms()
                            + i64::try_from(backoff(due.attempts).as_millis()).unwrap_or(0);
                        hook::failed(&mut c, due.seq, next, &why)?;
                        "failed"
                    }
                };
                m.hook_deliveries
                    .get_or_create(&super::metrics::HookResult { result })
                    .inc();
            }
            for h in back {
                hook::receiver_back(&mut c, h, now_ms())?;
            }
            Ok::<_, crate::error::Error>(())
        })
        .await;
        if let Ok(Err(e)) = recorded {
            eprintln!("warden: webhooks: {e}");
        }
    }
}

/// Roots for https:// receivers: the system's CA certificates.
fn client_tls() -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let found = rustls_native_certs::load_native_certs();
    for c in found.certs {
        let _ = roots.add(c);
    }
    // ring, as everywhere in warden (store/conn.rs says why it is marked deprecated).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// One POST; `Ok` only for a 2xx answer.
async fn post(d: &Due, tls: &Option<Arc<rustls::ClientConfig>>) -> Result<(), String> {
    use hyper_util::rt::TokioIo;
    if d.body.len() > MAX_HOOK_BODY_BYTES {
        return Err(format!("body larger than {MAX_HOOK_BODY_BYTES} bytes"));
    }
    let uri: hyper::Uri = d.url.as_str().parse().map_err(|_| "bad URL".to_string())?;
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("no host")?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let bare = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect((bare.as_str(), port)),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| format!("connect: {e}"))?;
    let ts = now_ms() / 1000;
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let req = hyper::Request::post(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "warden-webhook")
        .header("X-Warden-Event", d.event)
        .header("X-Warden-Delivery", d.seq.to_string())
        .header("X-Warden-Timestamp", ts.to_string())
        .header("X-Warden-Signature", signature(&d.secret, ts, &d.body))
        .body(Body::from(d.body.clone()))
        .map_err(|e| format!("request: {e}"))?;
    let status = if https {
        let tls = tls.as_ref().ok_or("no TLS client")?;
        let name = rustls::pki_types::ServerName::try_from(bare.clone())
            .map_err(|_| format!("{bare}: not a TLS server name"))?;
        let stream = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp),
        )
        .await
        .map_err(|_| "TLS handshake timed out".to_string())?
        .map_err(|e| format!("TLS: {e}"))?;
        send(TokioIo::new(stream), req).await?
    } else {
        send(TokioIo::new(tcp), req).await?
    };
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {status}"))
    }
}

async fn send<T>(io: T, req: hyper::Request<Body>) -> Result<hyper::StatusCode, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut tx, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    let driver = tokio::spawn(conn);
    let res = tx.send_request(req).await.map_err(|e| format!("HTTP: {e}"));
    driver.abort();
    Ok(res?.status())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Computed independently: python3 -c 'import hmac,hashlib;
        // print(hmac.new(b"0123456789abcdef", b"1700000000.{}", hashlib.sha256).hexdigest())'
        assert_eq!(
            signature("0123456789abcdef", 1700000000, "{}"),
            "sha256=e4f8e2ecae2295b2ddb2f0b5584c8275e226c0ebe9b3b819e70156bb67122e3e"
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), BACKOFF_FIRST);
        assert_eq!(backoff(1), BACKOFF_FIRST * 2);
        assert_eq!(backoff(100), BACKOFF_MAX);
        assert_eq!(backoff(-3), BACKOFF_FIRST);
    }
}
