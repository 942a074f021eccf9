//! `warden serve`: the fleet's HTTP API (contract v2), on axum and tokio,
//! TLS by rustls on ring (the certificate reloaded on SIGHUP), plain HTTP on
//! a loopback address only. Every request is answered by the command layer
//! (cmd/): the handlers in api.rs parse, authorize and render, nothing more.
//!
//! ```text
//! TCP (at most MAX_CONNECTIONS) -> [TLS] -> hyper (header timeout) -> axum router
//!   -> api.rs handler -> spawn_blocking (at most MAX_REGISTRY_CALLS): token, then cmd::*
//! ```
//!
//! The registry drivers are synchronous: each request runs on a blocking
//! thread with a connection of its own (Conn::open), bounded by a semaphore.

pub mod api;
pub mod hooks;
pub mod metrics;
pub mod schema;
pub mod web;

use crate::cli::ServeArgs;
use crate::cmd::Ctx;
use crate::error::Error;
use crate::types::quote;
use axum_server::accept::Accept;
use axum_server::tls_rustls::{RustlsAcceptor, RustlsConfig};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Registry calls running at once (each a blocking thread and a connection).
pub const MAX_REGISTRY_CALLS: usize = 16;
/// Open client connections at once; one more is closed at once.
pub const MAX_CONNECTIONS: usize = 512;
/// The largest request body (bytes); a larger one is answered 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Time for one request, from its headers to its answer (then 408).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Time a client has to send a request's headers: a slow client holds no worker.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a client has to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// On SIGTERM or SIGINT: time for requests in flight to finish.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// Threads answering HTTP (registry calls have their own, MAX_REGISTRY_CALLS).
pub const WORKER_THREADS: usize = 2;

/// `warden serve --listen ADDR:PORT [--tls-cert FILE --tls-key FILE]`: runs
/// until SIGTERM or SIGINT.
pub fn serve(ctx: Ctx, a: &ServeArgs) -> Result<String, Error> {
    let addr: SocketAddr = a.listen.parse().map_err(|_| {
        Error::invalid(format!(
            "--listen {}: want ADDR:PORT (e.g. 127.0.0.1:8443, [::1]:8443)",
            quote(&a.listen)
        ))
    })?;
    let tls = match (&a.tls_cert, &a.tls_key) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ => None,
    };
    if tls.is_none() && !addr.ip().is_loopback() {
        return Err(Error::invalid(format!(
            "--listen {addr}: plain HTTP only on a loopback address; give --tls-cert and --tls-key"
        )));
    }
    let config = tls.as_ref().map(|(c, k)| server_config(c, k)).transpose()?;
    // The registry answers (and is migrated) before the first request.
    ctx.admin(|_| Ok(()))?;
    let listener = std::net::TcpListener::bind(addr)
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .map_err(|e| Error::runtime(format!("--listen {addr}: {e}")))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKER_THREADS)
        .max_blocking_threads(MAX_REGISTRY_CALLS)
        .enable_all()
        .build()
        .map_err(|e| Error::runtime(format!("cannot start the server's threads: {e}")))?;
    rt.block_on(run(ctx, listener, tls.zip(config)))
}

type Tls = ((PathBuf, PathBuf), Arc<rustls::ServerConfig>);

async fn run(ctx: Ctx, listener: std::net::TcpListener, tls: Option<Tls>) -> Result<String, Error> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::runtime(format!("listener: {e}")))?;
    let app = api::router(ctx.db.clone())
        .merge(web::router(ctx.db.clone(), tls.is_some())?)
        .into_make_service_with_connect_info::<SocketAddr>();
    let handle = axum_server::Handle::new();
    tokio::spawn(stop_on_signal(handle.clone()));
    tokio::spawn(hooks::deliver_forever(ctx.db.clone()));
    let limit = Limited(Arc::new(Semaphore::new(MAX_CONNECTIONS)));
    let scheme = if tls.is_some() { "https" } else { "http" };
    eprintln!("warden: serving the API on {scheme}://{addr}");
    let served = match tls {
        None => {
            let mut s = axum_server::from_tcp(listener)
                .map_err(|e| Error::runtime(format!("listener {addr}: {e}")))?
                .acceptor(limit)
                .handle(handle);
            tune(s.http_builder());
            s.serve(app).await
        }
        Some(((cert, key), config)) => {
            let rc = RustlsConfig::from_config(config);
            tokio::spawn(reload_on_hup(rc.clone(), cert, key));
            let acceptor = RustlsAcceptor::new(rc)
                .handshake_timeout(TLS_HANDSHAKE_TIMEOUT)
                .acceptor(limit);
            let mut s = axum_server::from_tcp(listener)
                .map_err(|e| Error::runtime(format!("listener {addr}: {e}")))?
                .acceptor(acceptor)
                .handle(handle);
            tune(s.http_builder());
            s.serve(app).await
        }
    };
    served.map_err(|e| Error::runtime(format!("serving on {addr}: {e}")))?;
    eprintln!("warden: stopped");
    Ok(String::new())
}

/// HTTP/1 with a deadline for the request headers.
fn tune(b: &mut hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>) {
    b.http1()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
}

/// SIGTERM (systemd's stop) or SIGINT: stop accepting, let requests in
/// flight finish within [`SHUTDOWN_GRACE`].
async fn stop_on_signal(handle: axum_server::Handle<SocketAddr>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        eprintln!("warden: cannot watch SIGTERM/SIGINT");
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    eprintln!("warden: stopping");
    handle.graceful_shutdown(Some(SHUTDOWN_GRACE));
}

/// SIGHUP: read the certificate and key again; keep the old ones if the new
/// files do not make a configuration.
async fn reload_on_hup(rc: RustlsConfig, cert: PathBuf, key: PathBuf) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        eprintln!("warden: cannot watch SIGHUP: no certificate reload");
        return;
    };
    while hup.recv().await.is_some() {
        match server_config(&cert, &key) {
            Ok(c) => {
                rc.reload_from_config(c);
                eprintln!("warden: reloaded {}", cert.display());
            }
            Err(e) => eprintln!("warden: keeping the old certificate: {e}"),
        }
    }
}

/// rustls on ring: the certificate chain and key from PEM files.
fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
    let bad = |p: &Path, e: &dyn std::fmt::Display| Error::invalid(format!("{}: {e}", p.display()));
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, &e))?;
    if certs.is_empty() {
        return Err(bad(cert, &"no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, &e))?;
    // ring, as for PostgreSQL (store/conn.rs says why it is marked deprecated).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut c = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::runtime(format!("TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| bad(key, &e))?;
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(c))
}

/// Accepts a connection while fewer than [`MAX_CONNECTIONS`] are open; the
/// connection holds its slot until it closes.
#[derive(Clone)]
struct Limited(Arc<Semaphore>);

impl<S: Send + 'static> Accept<TcpStream, S> for Limited {
    type Stream = Held;
    type Service = S;
    type Future = std::future::Ready<io::Result<(Held, S)>>;

    fn accept(&self, io: TcpStream, service: S) -> Self::Future {
        std::future::ready(match self.0.clone().try_acquire_owned() {
            Ok(slot) => Ok((Held { io, _slot: slot }, service)),
            Err(_) => Err(io::Error::other("connection limit reached")),
        })
    }
}

/// A connection and its slot.
struct Held {
    io: TcpStream,
    _slot: OwnedSemaphorePermit,
}

impl AsyncRead for Held {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
