//! SIGTERM (how systemd and procd stop services) and SIGINT become one
//! shutdown signal that every loop selects on.

use tokio::sync::watch;

/// A cloneable view of the shutdown signal.
#[derive(Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Resolves once shutdown has been requested (at once if it already was).
    pub async fn wait(&mut self) {
        // An Err means the sender is gone, which only happens at exit: treat as shutdown.
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// A signal that never fires, plus the trigger that fires it (for tests and embedding).
    pub fn manual() -> (watch::Sender<bool>, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (tx, Shutdown(rx))
    }
}

/// Installs SIGTERM and SIGINT handlers. Must be called inside the runtime.
pub fn install() -> std::io::Result<Shutdown> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = Shutdown::manual();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        log::info!("{name}: closing the tunnel");
        let _ = tx.send(true);
        // Keep the sender alive so waiters see `true`, not a closed channel.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}
