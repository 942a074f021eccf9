//! The reconnect loop: one attempt at a time, rotating through the jails,
//! one backoff policy (reset after a healthy stretch), and shutdown selected
//! on everywhere. It never gives up on its own.

use crate::backoff::Backoff;
use crate::config::{Forward, RunConfig};
use crate::device::DeviceKey;
use crate::forward::{self, Target};
use crate::identity;
use crate::limits::HEALTHY_RESET;
use crate::session::{self, Ctx};
use crate::shutdown::Shutdown;
use crate::status;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Holds the tunnel until shutdown. Errors only for bad local configuration
/// (an unreadable identity), which retrying cannot fix.
pub async fn run(cfg: RunConfig, mut shutdown: Shutdown) -> Result<(), String> {
    let DeviceKey { key, mut state } = DeviceKey::load(&cfg.state_path, &cfg.key)?;
    log::info!("device key {}", identity::fingerprint(key.public_key()));
    let mut forward = cfg.forward.clone();
    let mut local = None;
    let target = match &mut forward {
        Forward::Remote(r) => {
            if let Some(t) = &r.socket {
                let id = identity::device_id(key.public_key());
                let path = crate::config::expand_socket_path(t, &identity::hostname(), &id);
                if !crate::spec::valid_socket_path(&path) {
                    return Err(format!(
                        "-R {t:?}: expands to {path:?}, longer than {} bytes or not a usable socket path",
                        crate::spec::MAX_SOCKET_PATH_BYTES
                    ));
                }
                r.socket = Some(path);
            }
            Target {
                host: r.target_host.clone(),
                port: r.target_port,
            }
        }
        Forward::Local(l) => {
            // Bound once, for the life of the agent: the port stays ours across
            // reconnects, and a busy port is a startup error, not a retry loop.
            let listener = TcpListener::bind((l.bind_address(), l.port))
                .await
                .map_err(|e| format!("-L: cannot listen on {}:{}: {e}", l.bind, l.port))?;
            if let Ok(a) = listener.local_addr() {
                log::info!(
                    "listening on {a} for -L to {}:{} (refused while the link to the jail is down)",
                    l.host,
                    l.host_port
                );
            }
            local = Some(listener);
            Target {
                host: l.host.clone(),
                port: l.host_port,
            }
        }
    };
    let ctx = Ctx {
        ssh: Arc::new(session::ssh_config(
            cfg.alive_interval,
            cfg.alive_count_max,
            &cfg.ciphers,
        )),
        key: Arc::new(key),
        trust: Arc::new(cfg.trust.clone()),
        forward,
        target,
        connect_timeout: cfg.connect_timeout,
    };
    // The owner of the tunnel's lifecycle writes its record, for every outcome.
    let status = cfg.status_file.as_deref();
    let target = format!("{}:{}", ctx.target.host, ctx.target.port);
    let rng = ring::rand::SystemRandom::new();
    let mut backoff = Backoff::default();
    let mut next = 0usize;
    loop {
        let jail = &cfg.jails[next % cfg.jails.len()];
        let state_pin = state
            .as_ref()
            .and_then(|s| s.pin_for(&jail.to_string()))
            .map(|p| p.sha256);
        let mut save_pin = |jail: &crate::config::Jail, sha: [u8; 32]| -> Result<(), String> {
            // Merged under a lock with what other agents sharing the file pinned.
            let saved = identity::save_pin(&cfg.state_path, &jail.to_string(), sha)
                .map_err(|e| e.to_string())?;
            state = Some(saved);
            Ok(())
        };
        let attempt = match session::connect(
            &ctx,
            jail,
            state_pin,
            &mut save_pin,
            &mut shutdown,
            local.as_ref(),
        )
        .await
        {
            Ok(link) => {
                let up = status::Up {
                    jail: &jail.to_string(),
                    listen: &link.up.listen,
                    port: link.up.port,
                    target: &target,
                };
                status::up(status, &up);
                session::serve(&ctx, jail, link, &mut shutdown, local.as_ref()).await
            }
            Err(failure) => session::Attempt {
                up_for: None,
                failure,
            },
        };
        let Some(failure) = attempt.failure else {
            status::remove(status);
            log::info!("tunnel closed");
            return Ok(());
        };
        status::down(status, &failure.to_string());
        if attempt.up_for.is_some_and(|d| d >= HEALTHY_RESET) {
            backoff.reset();
        }
        let delay = backoff.next_delay(failure.kind(), random_u32(&rng));
        next = next.wrapping_add(1);
        log::warn!("{failure}; retrying in {:.1}s", delay.as_secs_f32());
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            never = forward::refuse_while_down(local.as_ref()) => match never {},
            _ = shutdown.wait() => {
                status::remove(status);
                log::info!("tunnel closed");
                return Ok(());
            }
        }
    }
}

fn random_u32(rng: &ring::rand::SystemRandom) -> u32 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    // A failed random source only removes jitter; the delay stays bounded.
    let _ = rng.fill(&mut b);
    u32::from_ne_bytes(b)
}
