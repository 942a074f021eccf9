//! The reconnect loop: one attempt at a time, rotating through the jails,
//! one backoff policy (reset after a healthy stretch), and shutdown selected
//! on everywhere. It never gives up on its own.

use crate::backoff::{Backoff, Policy};
use crate::config::{Forward, Jail, LocalForward, RunConfig};
use crate::device::DeviceKey;
use crate::forward::{self, Target};
use crate::identity::{self, State};
use crate::limits::HEALTHY_RESET;
use crate::session::{self, Attempt, Ctx, Login, StoredPins};
use crate::shutdown::Shutdown;
use crate::status;
use russh::keys::PrivateKey;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What an embedder hears of the reconnect loop (the fleet simulator,
/// benches/fleet-sim, counts attempts with it); the agent hears nothing.
pub trait Observer {
    /// The forward was granted: the tunnel is up.
    fn up(&mut self, _up: &session::Up) {}
    /// An attempt ended; `up_for` is `None` if it never came up.
    fn ended(&mut self, _failure: &session::Failure, _up_for: Option<Duration>) {}
}

impl Observer for () {}

/// Holds the tunnel until shutdown. Errors only for bad local configuration
/// (an unreadable identity), which retrying cannot fix.
pub async fn run(cfg: RunConfig, shutdown: Shutdown) -> Result<(), String> {
    run_with(cfg, shutdown, Policy::AGENT, &mut ()).await
}

/// [`run`] with another reconnect policy, reporting to `observer`.
pub async fn run_with(
    mut cfg: RunConfig,
    mut shutdown: Shutdown,
    policy: Policy,
    observer: &mut dyn Observer,
) -> Result<(), String> {
    let DeviceKey { key, state } = DeviceKey::load(&cfg.state_path, &cfg.key)?;
    log::info!("device key {}", identity::fingerprint(key.public_key()));
    if let Some(path) = &cfg.certificate {
        // A certificate that cannot be this key's is a configuration error; an
        // expired one is waited out (a renewer may replace the file).
        match crate::device::load_certificate(path, &key, session::unix_now()) {
            Err(crate::device::CertProblem::Unusable(why)) => return Err(why),
            Err(crate::device::CertProblem::OutsideWindow(why)) => log::warn!("{why}"),
            Ok(cert) => log::info!(
                "logging in with certificate {:?} (serial {})",
                cert.key_id().escape_debug().to_string(),
                cert.serial()
            ),
        }
    }
    let ssh = || session::ssh_config(cfg.alive_interval, cfg.alive_count_max, &cfg.ciphers);
    let login = Login {
        ssh: Arc::new(ssh()),
        ssh_cert: Arc::new(session::with_host_certificates(ssh())),
        key: Arc::new(key),
        trust: Arc::new(cfg.trust.clone()),
        certificate: cfg.certificate.clone(),
        connect_timeout: cfg.connect_timeout,
        proxy: cfg.proxy.clone(),
    };
    // The owner of the tunnel's lifecycle writes its record, for every outcome.
    let status = cfg.status_file.as_deref();
    let mut pins = Pins {
        path: &cfg.state_path,
        state,
        enrolled: false,
    };
    let rng = ring::rand::SystemRandom::new();
    // Replaced by the enrolment's jails when claiming.
    #[cfg_attr(not(feature = "claim"), allow(unused_mut))]
    let mut jails = cfg.jails.clone();
    let forward = match cfg.forward.take() {
        Some(f) => f,
        #[cfg(feature = "claim")]
        None => {
            let Some(claim) = &cfg.claim else {
                return Err("no forward given (-R or -L)".into());
            };
            let c = Claiming {
                claim,
                login: &login,
                jails: &cfg.jails,
                status,
                policy,
                rng: &rng,
            };
            let Some(e) = c.enrolment(&mut pins, &mut shutdown).await? else {
                return closed(status);
            };
            pins.enrolled = true;
            let forward;
            (jails, forward) = enrolled_tunnel(&e);
            log::info!(
                "running as enrolled device {}: -R {}:{}:{} to {}@{} ({} jail(s) in turn)",
                e.device,
                e.port,
                crate::spec::bracket(&e.target_host),
                e.target_port,
                e.user,
                jails[0],
                jails.len()
            );
            forward
        }
        #[cfg(not(feature = "claim"))]
        None => return Err("no forward given (-R or -L)".into()),
    };
    let (forward, target) = prepare_forward(&forward, &login.key)?;
    let local = match &forward {
        Forward::Local(l) => Some(bind_local(l).await?),
        Forward::Remote(_) => None,
    };
    let ctx = Ctx {
        login,
        forward,
        target,
    };
    let mut backoff = Backoff::new(policy);
    let mut next = 0usize;
    loop {
        let jail = &jails[next % jails.len()];
        let outcome = attempt(
            &ctx,
            jail,
            &mut pins,
            status,
            &mut shutdown,
            local.as_ref(),
            observer,
        )
        .await;
        let Some(failure) = outcome.failure else {
            return closed(status);
        };
        observer.ended(&failure, outcome.up_for);
        status::down(status, &failure.to_string());
        let delay = if outcome.up_for.is_some_and(|d| d >= HEALTHY_RESET) {
            backoff.after_drop(failure.kind(), random_u32(&rng))
        } else {
            backoff.next_delay(failure.kind(), random_u32(&rng))
        };
        next = next.wrapping_add(1);
        log::warn!("{failure}; retrying in {:.1}s", delay.as_secs_f32());
        if !pause(delay, &mut shutdown, local.as_ref()).await {
            return closed(status);
        }
    }
}

/// The forward as this device serves it (a `-R` socket path with `%h` and
/// `%i` filled in), and where its channels end up.
fn prepare_forward(forward: &Forward, key: &PrivateKey) -> Result<(Forward, Target), String> {
    let mut forward = forward.clone();
    let target = match &mut forward {
        Forward::Remote(r) => {
            if let Some(t) = &r.socket {
                r.socket = Some(expand_socket_path(t, key)?);
            }
            Target {
                host: r.target_host.clone(),
                port: r.target_port,
            }
        }
        Forward::Local(l) => Target {
            host: l.host.clone(),
            port: l.host_port,
        },
    };
    Ok((forward, target))
}

/// A `-R` socket path template for this device; refused if the result is
/// too long or otherwise unusable as a socket path.
fn expand_socket_path(template: &str, key: &PrivateKey) -> Result<String, String> {
    let id = identity::device_id(key.public_key());
    let path = crate::config::expand_socket_path(template, &identity::hostname(), &id);
    if !crate::spec::valid_socket_path(&path) {
        return Err(format!(
            "-R {template:?}: expands to {path:?}, longer than {} bytes or not a usable socket path",
            crate::spec::MAX_SOCKET_PATH_BYTES
        ));
    }
    Ok(path)
}

/// The `-L` listener, bound once for the life of the agent: the port stays
/// ours across reconnects, and a busy port is a startup error, not a retry loop.
async fn bind_local(l: &LocalForward) -> Result<TcpListener, String> {
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
    Ok(listener)
}

/// Host keys pinned on first use and the enrolment, kept in the state file.
struct Pins<'a> {
    path: &'a Path,
    state: Option<State>,
    /// Running the stored enrolment: its jails' keys count as pins.
    enrolled: bool,
}

impl Pins<'_> {
    /// The keys stored for `jail`: pinned on first use, and (running the
    /// enrolment) the one the claim answer named.
    fn get(&self, jail: &Jail) -> StoredPins {
        let Some(state) = self.state.as_ref() else {
            return StoredPins::default();
        };
        let enrolled = state.enrolment.as_ref().filter(|_| self.enrolled);
        StoredPins {
            accepted: state.pin_for(&jail.to_string()).map(|p| p.sha256),
            enrolled: enrolled.and_then(|e| {
                e.jails
                    .iter()
                    .find(|j| j.host.as_str() == jail.host && j.port == jail.port)
                    .map(|j| j.key_sha256)
            }),
        }
    }

    /// Pins a key accepted as new; merged under a lock with what other agents
    /// sharing the file pinned.
    fn save(&mut self, jail: &Jail, sha: [u8; 32]) -> Result<(), String> {
        let saved =
            identity::save_pin(self.path, &jail.to_string(), sha).map_err(|e| e.to_string())?;
        self.state = Some(saved);
        Ok(())
    }
}

/// One attempt on `jail`: connect, record `up` in the status file, serve
/// until the link ends or shutdown is asked for.
async fn attempt(
    ctx: &Ctx,
    jail: &Jail,
    pins: &mut Pins<'_>,
    status: Option<&Path>,
    shutdown: &mut Shutdown,
    local: Option<&TcpListener>,
    observer: &mut dyn Observer,
) -> Attempt {
    let stored = pins.get(jail);
    let mut save_pin = |jail: &Jail, sha: [u8; 32]| pins.save(jail, sha);
    match session::connect(ctx, jail, stored, &mut save_pin, shutdown, local).await {
        Ok(link) => {
            let up = status::Up {
                jail: &jail.to_string(),
                listen: &link.up.listen,
                port: link.up.port,
                target: &format!("{}:{}", ctx.target.host, ctx.target.port),
                proxy: ctx.login.proxy.as_ref().map(ToString::to_string),
            };
            status::up(status, &up);
            observer.up(&link.up);
            session::serve(ctx, jail, link, shutdown, local).await
        }
        Err(failure) => Attempt {
            up_for: None,
            failure,
        },
    }
}

/// Waits `delay` before the next attempt, refusing `-L` connections
/// meanwhile; false if shutdown was asked for first.
async fn pause(delay: Duration, shutdown: &mut Shutdown, local: Option<&TcpListener>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        never = forward::refuse_while_down(local) => match never {},
        _ = shutdown.wait() => false,
    }
}

/// A requested shutdown: the status file goes with the tunnel.
fn closed(status: Option<&Path>) -> Result<(), String> {
    status::remove(status);
    log::info!("tunnel closed");
    Ok(())
}

fn random_u32(rng: &ring::rand::SystemRandom) -> u32 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 4];
    // A failed random source only removes jitter; the delay stays bounded.
    let _ = rng.fill(&mut b);
    u32::from_ne_bytes(b)
}

/// The jails and the forward an enrolment names, exactly as if
/// `-R PORT:TARGET USER@jail,...` had been given.
#[cfg(feature = "claim")]
fn enrolled_tunnel(
    e: &identity::Enrolment,
) -> (heapless::Vec<Jail, { crate::limits::MAX_JAILS }>, Forward) {
    let jails = e
        .jails
        .iter()
        .map(|j| Jail {
            user: e.user.to_string(),
            host: j.host.to_string(),
            port: j.port,
        })
        .collect();
    let forward = Forward::Remote(crate::config::RemoteForward {
        socket: None,
        bind: None,
        port: e.port,
        target_host: e.target_host.to_string(),
        target_port: e.target_port,
    });
    (jails, forward)
}

/// What claiming needs: the token and the claim account's jails.
#[cfg(feature = "claim")]
struct Claiming<'a> {
    claim: &'a crate::config::Claim,
    login: &'a Login,
    /// The claim account at each jail given.
    jails: &'a [Jail],
    status: Option<&'a Path>,
    policy: Policy,
    rng: &'a ring::rand::SystemRandom,
}

#[cfg(feature = "claim")]
impl Claiming<'_> {
    /// The stored enrolment, or a new one claimed with the token (retried
    /// until it is accepted; `None`: shutdown came first). Errors only for
    /// local problems retrying cannot fix.
    async fn enrolment(
        &self,
        pins: &mut Pins<'_>,
        shutdown: &mut Shutdown,
    ) -> Result<Option<identity::Enrolment>, String> {
        use crate::claim::{self, Answer};
        if let Some(e) = pins.state.as_ref().and_then(|s| s.enrolment.as_ref()) {
            if let Some(why) = e.problem() {
                return Err(format!(
                    "state file {}: the stored enrolment is unusable ({why}); move the file away to claim again",
                    pins.path.display()
                ));
            }
            log::info!(
                "enrolled as device {} (stored): the claim token is not used",
                e.device
            );
            return Ok(Some(e.clone()));
        }
        let request = self.request()?;
        let mut backoff = Backoff::new(self.policy);
        let mut next = 0usize;
        loop {
            let jail = &self.jails[next % self.jails.len()];
            next = next.wrapping_add(1);
            let stored = pins.get(jail);
            let mut save_pin = |jail: &Jail, sha: [u8; 32]| pins.save(jail, sha);
            let exchange = session::claim(self.login, jail, stored, &mut save_pin, &request);
            let outcome = tokio::select! {
                biased;
                r = exchange => r,
                _ = shutdown.wait() => return Ok(None),
            };
            let jitter = random_u32(self.rng);
            let slow = crate::backoff::claim_refused(jitter);
            // (the line, the refusal's word if any, the delay)
            let (line, word, delay) = match outcome.map(|a| claim::parse_answer(&a)) {
                Ok(Ok(Answer::Accepted(e))) => {
                    let saved =
                        identity::save_enrolment(pins.path, &e).map_err(|e| e.to_string())?;
                    pins.state = Some(saved);
                    log::info!("claimed at jail {jail}: enrolled as device {}", e.device);
                    return Ok(Some(*e));
                }
                Ok(Ok(Answer::Refused(r))) if r.is_unavailable() => (
                    format!("claim at jail {jail}: {r}"),
                    None,
                    backoff.next_delay(crate::backoff::Failure::Other, jitter),
                ),
                Ok(Ok(Answer::Refused(r))) => {
                    (format!("claim refused by {jail}: {r}"), Some(r), slow)
                }
                Ok(Err(bad)) => (
                    format!("claim answer from {jail} refused: {bad}"),
                    None,
                    slow,
                ),
                Err(failure) => {
                    let delay = backoff.next_delay(failure.kind(), jitter);
                    (failure.to_string(), None, delay)
                }
            };
            match &word {
                Some(r) => status::down_with(self.status, &line, "claim=refused:", r.word()),
                None => status::down(self.status, &line),
            }
            log::warn!("{line}; retrying in {:.0}s", delay.as_secs_f32());
            if !pause(delay, shutdown, None).await {
                return Ok(None);
            }
        }
    }

    /// The request: token, this device's MAC (said in a log line), id and
    /// its own sshd host keys (a missing key file is a warning).
    fn request(&self) -> Result<Vec<u8>, String> {
        use crate::claim;
        let mac = claim::device_mac().ok_or(
            "claim: no network interface with a MAC address (looked at /proc/net/route and /sys/class/net)",
        )?;
        log::info!(
            "claim: MAC {} of {} ({})",
            mac.address,
            mac.interface,
            if mac.default_route {
                "it holds the default route"
            } else {
                "no default route: the first interface with a MAC address"
            }
        );
        let path = &self.claim.device_host_key;
        let keys = claim::device_host_keys(path)?;
        if keys.is_empty() {
            log::warn!(
                "claim: no device host key in {} (the request carries none; with dropbear: dropbearkey -y -f /etc/dropbear/dropbear_ed25519_host_key | grep ^ssh- > {0})",
                path.display()
            );
        }
        claim::request(
            &self.claim.token.0,
            &mac.address,
            self.claim.device_id.as_deref(),
            &keys,
        )
    }
}
