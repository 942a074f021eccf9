//! One SSH link to one jail: TCP connect, handshake and host-key check,
//! public-key auth, the `tcpip-forward` request, then serving forwarded
//! channels until the link ends or shutdown is asked for. Never a shell,
//! pty or exec.

use crate::backoff;
use crate::config::{Forward, Jail};
use crate::forward::{self, Incoming, Target};
use crate::hostcert;
use crate::hostkey::{self, TrustSources, Verdict};
use crate::identity::fingerprint;
use crate::limits::{
    AUTH_TIMEOUT, CHANNEL_QUEUE_MSGS, CLOCK_RECHECK, FORWARD_REPLY_TIMEOUT, JAIL_READ_BUF_BYTES,
    MAX_CHANNELS, MAX_PACKET_BYTES, SHUTDOWN_GRACE, WINDOW_BYTES,
};
use crate::shutdown::Shutdown;
use russh::client::{self, ChannelOpenHandle, ChannelOpener, Handle, Msg, Session};
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh::{Channel, ChannelOpenFailure, Disconnect};
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::error::Elapsed;
use tokio::time::{Instant, timeout, timeout_at};

/// Settings shared by every attempt.
pub struct Ctx {
    /// How to log in to a jail.
    pub login: Login,
    pub forward: Forward,
    /// Where channels end up: the device-side target for `-R`, the host the
    /// jail connects to for `-L`.
    pub target: Target,
}

/// How to reach and log in to a jail: the tunnel's and the claim's.
pub struct Login {
    pub ssh: Arc<client::Config>,
    /// The same, also asking for the jail's host certificate: for jails a CA
    /// may vouch for (`--host-ca`, `@cert-authority`), as ssh(1) does.
    pub ssh_cert: Arc<client::Config>,
    pub key: Arc<PrivateKey>,
    pub trust: Arc<TrustSources>,
    /// `--certificate`: read again at each attempt (a renewer may replace it).
    pub certificate: Option<std::path::PathBuf>,
    pub connect_timeout: Duration,
    /// `--proxy`: every jail is reached through this HTTP CONNECT proxy.
    pub proxy: Option<crate::config::ProxyUrl>,
}

/// The russh client configuration for these keepalive settings.
///
/// russh closes the link when more than `keepalive_max` keepalives in a row go
/// unanswered, i.e. after `(max + 1) x interval`; OpenSSH's ServerAliveCountMax
/// counts differently, so `max = count - 1`. The inactivity timer backs that up
/// when a dead link blocks a write (the keepalive timer cannot fire then).
pub fn ssh_config(
    alive_interval: Option<Duration>,
    alive_count_max: u32,
    ciphers: &[&str],
) -> client::Config {
    let mut preferred = russh::Preferred::default();
    let names: Vec<russh::cipher::Name> = ciphers
        .iter()
        .filter_map(|c| russh::cipher::Name::try_from(*c).ok())
        .collect();
    if !names.is_empty() {
        preferred.cipher = names.into();
    }
    // Never `ssh-rsa` host-key signatures (SHA-1), only rsa-sha2-256/512, as
    // OpenSSH since 8.8 (matters for `rsa` builds).
    preferred.key = no_sha1_rsa(&preferred.key).into();
    let mut c = client::Config {
        preferred,
        client_id: russh::SshId::Standard(
            concat!("SSH-2.0-jailbird_", env!("CARGO_PKG_VERSION")).into(),
        ),
        window_size: WINDOW_BYTES,
        maximum_packet_size: MAX_PACKET_BYTES,
        channel_buffer_size: CHANNEL_QUEUE_MSGS,
        read_buffer_size: JAIL_READ_BUF_BYTES,
        nodelay: true,
        ..Default::default()
    };
    if let Some(i) = alive_interval {
        c.keepalive_interval = Some(i);
        c.keepalive_max = alive_count_max.saturating_sub(1).max(1) as usize;
        c.inactivity_timeout = Some(i * alive_count_max + Duration::from_millis(500));
    }
    c
}

/// `c`, also advertising the host certificate algorithms of its host keys.
pub fn with_host_certificates(mut c: client::Config) -> client::Config {
    c.preferred.host_key_certificates = c.preferred.key.to_vec().into();
    c
}

/// The known_hosts file's CA lines, if there is a file.
fn ca_lines(trust: &TrustSources) -> Result<Option<hostcert::CaLines>, String> {
    match &trust.known_hosts {
        Some(path) => Ok(Some(hostcert::CaLines::parse(&hostkey::read_known_hosts(
            path,
        )?))),
        None => Ok(None),
    }
}

/// The system clock in Unix seconds (0 if it reads before 1970).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The client configuration for `jail`: with certificate algorithms when a CA
/// may vouch for it (an unreadable known_hosts is reported by the key check).
fn config_for(ctx: &Login, jail: &Jail) -> Arc<client::Config> {
    if ctx.trust.pinned.is_some() {
        return ctx.ssh.clone(); // a pinned key is the only trust: no certificates
    }
    let lines = ca_lines(&ctx.trust).ok().flatten();
    let cas = hostcert::Authorities {
        fleet: &ctx.trust.host_cas,
        known_hosts: lines.as_ref(),
    };
    if cas.any_for(&jail.host, jail.port) {
        ctx.ssh_cert.clone()
    } else {
        ctx.ssh.clone()
    }
}

/// Host-key algorithms without `ssh-rsa` (RSA with SHA-1 signatures).
fn no_sha1_rsa(algs: &[russh::keys::Algorithm]) -> Vec<russh::keys::Algorithm> {
    algs.iter()
        .filter(|a| !matches!(a, russh::keys::Algorithm::Rsa { hash: None }))
        .cloned()
        .collect()
}

/// Why an attempt failed; each message is one line an operator can act on.
#[derive(Debug)]
pub enum Failure {
    Connect(String),
    Handshake(String),
    HostKey(String),
    Auth(String),
    ForwardRefused(String),
    ForwardTimeout(String),
    /// Declared dead by keepalives (the path, or the jail host, went silent).
    Lost(String),
    /// Closed or reset by the jail (it restarted, or evicted us).
    Dropped(String),
}

impl Failure {
    /// The backoff policy this failure calls for.
    pub fn kind(&self) -> backoff::Failure {
        match self {
            Failure::ForwardRefused(_) => backoff::Failure::ForwardRefused,
            Failure::Dropped(_) => backoff::Failure::Dropped,
            _ => backoff::Failure::Other,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(s)
            | Failure::Handshake(s)
            | Failure::HostKey(s)
            | Failure::Auth(s) => f.write_str(s),
            Failure::ForwardRefused(s)
            | Failure::ForwardTimeout(s)
            | Failure::Lost(s)
            | Failure::Dropped(s) => f.write_str(s),
        }
    }
}

/// How one attempt ended.
pub struct Attempt {
    /// How long the tunnel was up (None if it never came up).
    pub up_for: Option<Duration>,
    /// `None` for a requested shutdown.
    pub failure: Option<Failure>,
}

/// What the host-key callback decided, read after the handshake.
#[derive(Default)]
struct KeyCheck {
    new_pin: Option<([u8; 32], String)>,
    /// A host certificate's validity window the unset clock could not judge.
    unchecked_window: Option<(u64, u64)>,
    /// Negotiated cipher, for the `tunnel up` line.
    cipher: &'static str,
}

/// The russh handler: host-key policy and the channel gate.
/// What the handler returns to russh, and russh hands back from the
/// handshake or the session: the trust policy's refusal, typed, or a
/// protocol error.
#[derive(Debug)]
pub enum HandshakeError {
    /// The jail's host key failed the trust policy: why, in one line.
    HostKey(String),
    Ssh(russh::Error),
}

impl From<russh::Error> for HandshakeError {
    fn from(e: russh::Error) -> Self {
        HandshakeError::Ssh(e)
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::HostKey(why) => f.write_str(why),
            HandshakeError::Ssh(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for HandshakeError {}

/// Host keys this agent stored for one jail.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoredPins {
    /// Pinned on first use (`StrictHostKeyChecking=accept-new`).
    pub accepted: Option<[u8; 32]>,
    /// Named by the claim answer that enrolled this device: trusted in
    /// addition to the configured sources, and a jail no source knows must
    /// show this key.
    pub enrolled: Option<[u8; 32]>,
}

struct Client {
    jail: Jail,
    trust: Arc<TrustSources>,
    pins: StoredPins,
    check: Arc<Mutex<KeyCheck>>,
    incoming: mpsc::Sender<Incoming>,
    permits: Arc<Semaphore>,
    /// The forward asked of the jail: the only one whose channels are taken.
    expect: Arc<Expected>,
}

/// The forward this agent asked the jail for.
struct Expected {
    /// False for `-L`: nothing was asked of the jail, so no channel it opens is wanted.
    reverse: bool,
    /// The listen port; 0 until the jail has allocated one for `-R 0`.
    port: AtomicU32,
    /// The socket path of a `-R /path.sock:...` forward.
    socket: Option<String>,
}

impl Expected {
    /// What channels the jail may open for this forward.
    fn for_forward(forward: &Forward) -> Self {
        match forward {
            Forward::Remote(f) => Expected {
                reverse: true,
                port: AtomicU32::new(u32::from(f.port)),
                socket: f.socket.clone(),
            },
            Forward::Local(_) => Expected {
                reverse: false,
                port: AtomicU32::new(0),
                socket: None,
            },
        }
    }
}

/// What a forwarded channel says it came in on.
enum Via<'a> {
    Port(u32),
    Socket(&'a str),
}

impl Client {
    /// A host certificate, by hostcert's rules; the CA lines come from the
    /// known_hosts file and `--host-ca`.
    fn check_certificate(&self, cert: &russh::keys::Certificate) -> Result<bool, HandshakeError> {
        let jail = &self.jail;
        let lines = ca_lines(&self.trust).map_err(HandshakeError::HostKey)?;
        let cas = hostcert::Authorities {
            fleet: &self.trust.host_cas,
            known_hosts: lines.as_ref(),
        };
        let refused = |why: &str| format!("jail {jail} host certificate refused: {why}");
        let key = hostcert::plain_blob(cert).map_err(|e| HandshakeError::HostKey(refused(&e)))?;
        if self.trust.pinned.is_some() {
            // A pin is exclusive, certificate or not: only the pinned key.
            return match self.verdict(&key).map_err(HandshakeError::HostKey)? {
                Verdict::Trusted => Ok(true),
                _ => Err(HandshakeError::HostKey(refused(
                    "its key is not the pinned --host-key",
                ))),
            };
        }
        let now = unix_now();
        let ok = match hostcert::check(cert, cas, &jail.host, jail.port, now) {
            Ok(ok) => ok,
            // As ssh(1): a certificate that fails for any reason but a
            // revocation is tried again as its plain key.
            Err(r) if !r.revoked && self.verdict(&key) == Ok(Verdict::Trusted) => {
                log::warn!("{}; its key is trusted as a plain key", refused(&r.why));
                return Ok(true);
            }
            Err(r) => return Err(HandshakeError::HostKey(refused(&r.why))),
        };
        log::info!(
            "jail {jail} host certificate {:?} signed by trusted CA {}",
            cert.key_id().escape_debug().to_string(),
            ok.ca
        );
        if let Some((after, before)) = ok.unchecked_window {
            log::warn!(
                "the system clock reads {now} s since 1970, before {} (this build's earliest sane time): jail {jail}'s certificate validity ({after}..{before}) is checked once the clock is set",
                hostcert::CLOCK_EPOCH_SECS
            );
        }
        if let Ok(mut c) = self.check.lock() {
            c.unchecked_window = ok.unchecked_window;
        }
        Ok(true)
    }

    fn verdict(&self, blob: &[u8]) -> Result<Verdict, String> {
        let sha = ring::digest::digest(&ring::digest::SHA256, blob);
        if self.pins.enrolled.is_some_and(|p| p[..] == *sha.as_ref()) {
            return Ok(Verdict::Trusted);
        }
        if let Some(pinned) = &self.trust.pinned {
            return Ok(if pinned == blob {
                Verdict::Trusted
            } else {
                Verdict::Mismatch(vec![hostkey::blob_fingerprint(pinned)])
            });
        }
        if let Some(path) = &self.trust.known_hosts {
            let v = hostkey::check_known_hosts_file(path, &self.jail.host, self.jail.port, blob)?;
            if v != Verdict::Unknown {
                return Ok(v);
            }
        }
        let shown = |p: &[u8; 32]| format!("SHA256:{}", base64_unpadded(p));
        Ok(match (self.pins.accepted, self.pins.enrolled) {
            (Some(p), _) if p[..] == *sha.as_ref() => Verdict::Trusted,
            (Some(p), _) => Verdict::Mismatch(vec![shown(&p)]),
            (None, Some(p)) => Verdict::Mismatch(vec![shown(&p)]),
            (None, None) => Verdict::Unknown,
        })
    }

    /// Takes one of the MAX_CHANNELS slots for a forwarded connection and hands
    /// it to the session loop, or refuses it (the tunnel stays up either way).
    async fn admit(
        &mut self,
        channel: Channel<Msg>,
        via: Via<'_>,
        origin: String,
        reply: ChannelOpenHandle,
    ) {
        let refuse = if !self.expect.reverse {
            Some("this tunnel is -L".to_string())
        } else {
            let want = self.expect.port.load(Ordering::Relaxed);
            match via {
                Via::Port(p) if self.expect.socket.is_some() || (want != 0 && p != want) => {
                    Some(format!("it names port {p}, not the forwarded port {want}"))
                }
                Via::Socket(path) if self.expect.socket.as_deref() != Some(path) => Some(format!(
                    "it names socket {}, not the forwarded one",
                    path.escape_debug()
                )),
                _ => None,
            }
        };
        if let Some(why) = refuse {
            log::warn!("jail opened a forwarded channel from {origin} but {why}: refused");
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return;
        }
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            log::warn!(
                "refused forwarded connection from {origin}: {MAX_CHANNELS} connections already open (MAX_CHANNELS)"
            );
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return;
        };
        // Capacity equals the permit count, so this only fails if the session is ending.
        if let Err(mpsc::error::TrySendError::Full(i) | mpsc::error::TrySendError::Closed(i)) =
            self.incoming.try_send(Incoming {
                channel,
                reply,
                origin,
                permit,
            })
        {
            i.reply.reject(ChannelOpenFailure::ResourceShortage).await;
        }
    }

    fn refuse_channel(
        kind: &str,
        reply: ChannelOpenHandle,
    ) -> impl Future<Output = Result<(), HandshakeError>> + Send {
        log::warn!("jail opened an unexpected {kind} channel: refused");
        async move {
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            Ok(())
        }
    }
}

fn base64_unpadded(b: &[u8]) -> String {
    use base64ct::Encoding;
    base64ct::Base64Unpadded::encode_string(b)
}

impl client::Handler for Client {
    type Error = HandshakeError;

    async fn kex_done(
        &mut self,
        _shared_secret: Option<&[u8]>,
        names: &russh::Names,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let cipher = crate::config::SUPPORTED_CIPHERS
            .iter()
            .find(|c| **c == names.cipher.as_ref())
            .copied();
        if let Ok(mut c) = self.check.lock() {
            c.cipher = cipher.unwrap_or("other");
        }
        Ok(())
    }

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            PublicKeyOrCertificate::Certificate(cert) => return self.check_certificate(cert),
        };
        let blob = key.to_bytes().map_err(|_| russh::Error::UnknownKey)?;
        let got = fingerprint(key);
        let jail = &self.jail;
        match self.verdict(&blob).map_err(HandshakeError::HostKey)? {
            Verdict::Trusted => Ok(true),
            Verdict::Unknown if self.trust.accept_new => {
                let mut sha = [0u8; 32];
                sha.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &blob).as_ref());
                // Trusted only once it is on disk: establish saves it before
                // authenticating, and fails the attempt if it cannot.
                if let Ok(mut check) = self.check.lock() {
                    check.new_pin = Some((sha, got));
                }
                Ok(true)
            }
            Verdict::Unknown => Err(HandshakeError::HostKey(format!(
                "jail {jail} host key {got} is not known: add it to --known-hosts, pin it with --host-key, or use -o StrictHostKeyChecking=accept-new"
            ))),
            Verdict::Mismatch(expected) => Err(HandshakeError::HostKey(format!(
                "jail host key changed for {jail}: expected {}, got {got}",
                expected.join(" or ")
            ))),
            Verdict::Revoked => Err(HandshakeError::HostKey(format!(
                "jail {jail} host key {got} is marked @revoked in known_hosts"
            ))),
        }
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: Channel<Msg>,
        connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        // The jail picks these strings: escaped, so it cannot forge log lines.
        let origin = format!("{}:{originator_port}", originator_address.escape_debug());
        log::debug!(
            "jail opened forwarded-tcpip for {}:{connected_port} from {origin}",
            connected_address.escape_debug()
        );
        self.admit(channel, Via::Port(connected_port), origin, reply)
            .await;
        Ok(())
    }

    async fn server_channel_open_forwarded_streamlocal(
        &mut self,
        channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if cfg!(feature = "streamlocal") {
            let origin = format!("unix socket {}", socket_path.escape_debug());
            self.admit(channel, Via::Socket(socket_path), origin, reply)
                .await;
            Ok(())
        } else {
            Self::refuse_channel("forwarded-streamlocal", reply).await
        }
    }

    async fn server_channel_open_agent_forward(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse_channel("agent", reply).await
    }

    async fn server_channel_open_session(
        &mut self,
        _channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse_channel("session", reply).await
    }

    async fn server_channel_open_direct_tcpip(
        &mut self,
        _channel: Channel<Msg>,
        _host: &str,
        _port: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse_channel("direct-tcpip", reply).await
    }

    async fn server_channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        _socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse_channel("direct-streamlocal", reply).await
    }

    async fn server_channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        Self::refuse_channel("x11", reply).await
    }
}

/// A TCP stream to the jail within `deadline`: straight to it, or through
/// the `--proxy` (which then resolves the jail's name); either way the same
/// stream type goes to russh, and the host key is checked against the jail.
async fn dial(ctx: &Login, jail: &Jail, deadline: Instant) -> Result<TcpStream, Failure> {
    #[cfg(feature = "proxy")]
    if let Some(proxy) = &ctx.proxy {
        let name = format!("proxy {proxy} (for jail {jail})");
        let mut s = tcp(&proxy.host, proxy.port, deadline, &name).await?;
        crate::proxy::handshake(&mut s, proxy, jail, deadline)
            .await
            .map_err(Failure::Connect)?;
        return Ok(s);
    }
    #[cfg(not(feature = "proxy"))]
    let _ = ctx;
    tcp(&jail.host, jail.port, deadline, &format!("jail {jail}")).await
}

/// Resolves `host` (again, every attempt) and connects within `deadline`;
/// `name` says what it is in the error line.
async fn tcp(host: &str, port: u16, deadline: Instant, name: &str) -> Result<TcpStream, Failure> {
    let limit = |what: &str| {
        Failure::Connect(format!(
            "cannot reach {name}: {what} timed out (ConnectTimeout)"
        ))
    };
    let addrs = timeout_at(deadline, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| limit("name lookup"))?
        .map_err(|e| Failure::Connect(format!("cannot resolve {name}: {e}")))?;
    let mut last = None;
    for addr in addrs {
        match timeout_at(deadline, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Ok(Err(e)) => last = Some(format!("cannot connect to {name} ({addr}): {e}")),
            Err(_) => return Err(limit("TCP connect")),
        }
    }
    Err(Failure::Connect(last.unwrap_or_else(|| {
        format!("{name}: name has no addresses")
    })))
}

/// Saves a key pinned on first use; returns an error line if it could not be stored.
pub type PinSaver<'a> = &'a mut dyn FnMut(&Jail, [u8; 32]) -> Result<(), String>;

/// A tunnel that is up: what it reports, and what serving it needs.
pub struct Link {
    handle: Handle<Client>,
    incoming: mpsc::Receiver<Incoming>,
    pub up: Up,
}

/// What an established tunnel is: typed, never parsed back out of a string.
#[derive(Clone, Debug)]
pub struct Up {
    /// `ADDR:PORT` the jail listens on (`-R`), the socket path, or the local
    /// listen address (`-L`).
    pub listen: String,
    /// The port the jail (or, for `-L`, this device) listens on; 0 for a socket.
    pub port: u32,
    /// Negotiated cipher.
    pub cipher: &'static str,
    /// The jail's host certificate validity window, still to check once the
    /// clock is set (src/hostcert.rs).
    pub unchecked_window: Option<(u64, u64)>,
}

/// Connects, authenticates and requests the forward. `Err(None)`: `shutdown`
/// fired first.
pub async fn connect(
    ctx: &Ctx,
    jail: &Jail,
    pins: StoredPins,
    save_pin: PinSaver<'_>,
    shutdown: &mut Shutdown,
    local: Option<&TcpListener>,
) -> Result<Link, Option<Failure>> {
    let (tx, incoming) = mpsc::channel(MAX_CHANNELS);
    let setup = establish(ctx, jail, pins, save_pin, tx);
    let (handle, mut up) = tokio::select! {
        r = setup => r.map_err(Some)?,
        _ = shutdown.wait() => return Err(None),
        never = forward::refuse_while_down(local) => match never {},
    };
    if let Some(a) = local.and_then(|l| l.local_addr().ok()) {
        up.listen = a.to_string();
        up.port = u32::from(a.port());
    }
    Ok(Link {
        handle,
        incoming,
        up,
    })
}

/// Serves an established tunnel until the link ends or `shutdown` fires.
pub async fn serve(
    ctx: &Ctx,
    jail: &Jail,
    link: Link,
    shutdown: &mut Shutdown,
    local: Option<&TcpListener>,
) -> Attempt {
    let Link {
        mut handle,
        incoming: mut rx,
        up,
    } = link;
    let opener = handle.channel_opener();
    // -L connections take their slots here; -R channels take theirs in Client::admit.
    let local_permits = Arc::new(Semaphore::new(MAX_CHANNELS));
    let up_at = Instant::now();
    log::info!(
        "tunnel up jail={jail} listen={} target={}:{} cipher={}{}",
        up.listen,
        ctx.target.host,
        ctx.target.port,
        up.cipher,
        ctx.login
            .proxy
            .as_ref()
            .map_or(String::new(), |p| format!(" proxy={p}"))
    );

    let mut tasks = JoinSet::new();
    let mut unchecked = up.unchecked_window;
    // One clock for the whole session: channel traffic must not push it back.
    let mut clock = tokio::time::interval(CLOCK_RECHECK);
    clock.reset();
    let failure = loop {
        tokio::select! {
            _ = shutdown.wait() => break None,
            r = &mut handle => break Some(lost(jail, r)),
            _ = clock.tick(), if unchecked.is_some() => {
                if let Some(f) = recheck_window(jail, &mut unchecked) {
                    break Some(f);
                }
            }
            Some(incoming) = rx.recv() => {
                let target = ctx.target.clone();
                tasks.spawn(async move { forward::serve(incoming, &target).await });
            }
            r = forward::accept(local) => match r {
                Ok((stream, peer)) => {
                    take_local(stream, peer, &opener, &local_permits, &ctx.target, &mut tasks);
                }
                Err(e) => {
                    log::warn!("cannot accept a local connection: {e}");
                    tokio::time::sleep(crate::limits::ACCEPT_ERROR_PAUSE).await;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    };
    if failure.is_none() {
        say_goodbye(&ctx.forward, jail, &mut handle).await;
    }
    tasks.abort_all();
    Attempt {
        up_for: Some(up_at.elapsed()),
        failure,
    }
}

/// Once the clock is set, the host certificate's validity window the unset
/// clock could not judge: outside it, the link ends (and the next attempt
/// checks the certificate in full).
fn recheck_window(jail: &Jail, unchecked: &mut Option<(u64, u64)>) -> Option<Failure> {
    let (after, before) = (*unchecked)?;
    let now = unix_now();
    if !hostcert::clock_is_set(now) {
        return None;
    }
    *unchecked = None;
    match hostcert::window_failure(after, before, now) {
        Some(why) => Some(Failure::HostKey(format!(
            "jail {jail} host certificate is {why} now that the clock is set ({after}..{before}, now {now})"
        ))),
        None => {
            log::info!("the clock is set: jail {jail}'s host certificate is within its validity");
            None
        }
    }
}

/// Why the link ended, when the session ended without being asked to.
fn lost(jail: &Jail, r: Result<(), HandshakeError>) -> Failure {
    use std::io::ErrorKind::{BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof};
    match r {
        Ok(()) => Failure::Dropped(format!("link to jail {jail} closed by the jail")),
        Err(HandshakeError::Ssh(
            russh::Error::KeepaliveTimeout | russh::Error::InactivityTimeout,
        )) => Failure::Lost(format!(
            "link to jail {jail} declared dead: no answer to keepalives (ServerAliveInterval x ServerAliveCountMax)"
        )),
        // The jail's end went away (a restart): what a whole fleet sees at once.
        Err(e @ HandshakeError::Ssh(russh::Error::Disconnect | russh::Error::HUP)) => {
            Failure::Dropped(format!("link to jail {jail} lost: {e}"))
        }
        Err(HandshakeError::Ssh(russh::Error::IO(e)))
            if matches!(
                e.kind(),
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof
            ) =>
        {
            Failure::Dropped(format!("link to jail {jail} lost: {e}"))
        }
        Err(e) => Failure::Lost(format!("link to jail {jail} lost: {e}")),
    }
}

/// A local (`-L`) connection: served through the jail if a MAX_CHANNELS
/// slot is free, else reset.
fn take_local(
    stream: TcpStream,
    peer: SocketAddr,
    opener: &ChannelOpener,
    permits: &Arc<Semaphore>,
    target: &Target,
    tasks: &mut JoinSet<()>,
) {
    match permits.clone().try_acquire_owned() {
        Ok(permit) => {
            let (opener, target) = (opener.clone(), target.clone());
            tasks.spawn(async move {
                forward::serve_local(opener, stream, peer, &target, permit).await
            });
        }
        Err(_) => {
            log::warn!(
                "refused local connection from {peer}: {MAX_CHANNELS} connections already open (MAX_CHANNELS)"
            );
            forward::reset(stream);
        }
    }
}

/// On shutdown: cancels the forward and disconnects, waiting for the jail's
/// acknowledgement no longer than SHUTDOWN_GRACE.
async fn say_goodbye(forward: &Forward, jail: &Jail, handle: &mut Handle<Client>) {
    let bye = async {
        let _ = match forward {
            Forward::Local(_) => Ok(()),
            Forward::Remote(f) => match &f.socket {
                Some(path) => handle.cancel_streamlocal_forward(path.as_str()).await,
                None => {
                    handle
                        .cancel_tcpip_forward(f.bind_address(), u32::from(f.port))
                        .await
                }
            },
        };
        let _ = handle
            .disconnect(Disconnect::ByApplication, "jailbird shutting down", "en")
            .await;
        let _ = (&mut *handle).await;
    };
    if timeout(SHUTDOWN_GRACE, bye).await.is_err() {
        log::warn!(
            "jail {jail} did not acknowledge the disconnect within {}ms",
            SHUTDOWN_GRACE.as_millis()
        );
    }
}

/// One attempt's setup, each step under its own limit: [`open`], then the
/// forward request.
async fn establish(
    ctx: &Ctx,
    jail: &Jail,
    pins: StoredPins,
    save_pin: PinSaver<'_>,
    incoming: mpsc::Sender<Incoming>,
) -> Result<(Handle<Client>, Up), Failure> {
    let expect = Arc::new(Expected::for_forward(&ctx.forward));
    let (handle, checked) =
        open(&ctx.login, jail, pins, save_pin, incoming, expect.clone()).await?;
    let mut up = request_forward(&ctx.forward, jail, &handle, &expect, checked.cipher).await?;
    up.unchecked_window = checked.unchecked_window;
    Ok((handle, up))
}

/// A logged-in link: TCP connect, SSH handshake with the host-key check,
/// pinning a key accepted as new, authentication; each under its limit.
async fn open(
    login: &Login,
    jail: &Jail,
    pins: StoredPins,
    save_pin: PinSaver<'_>,
    incoming: mpsc::Sender<Incoming>,
    expect: Arc<Expected>,
) -> Result<(Handle<Client>, KeyCheck), Failure> {
    let deadline = Instant::now() + login.connect_timeout;
    let stream = dial(login, jail, deadline).await?;
    let check = Arc::new(Mutex::new(KeyCheck::default()));
    let handler = Client {
        jail: jail.clone(),
        trust: login.trust.clone(),
        pins,
        check: check.clone(),
        incoming,
        permits: Arc::new(Semaphore::new(MAX_CHANNELS)),
        expect,
    };
    let connected = timeout_at(
        deadline,
        client::connect_stream(config_for(login, jail), stream, handler),
    )
    .await;
    // What the host-key callback decided during the handshake.
    let mut checked = check
        .lock()
        .map(|mut c| std::mem::take(&mut *c))
        .unwrap_or_default();
    let mut handle = handshake_reply(login, jail, connected)?;
    keep_new_pin(jail, checked.new_pin.take(), save_pin)?;
    authenticate(login, jail, &mut handle).await?;
    Ok((handle, checked))
}

/// Logs in to `jail` as its claim account, runs `jailbird-claim 1` (the
/// forced command answers), sends `request`, and returns what came back
/// before EOF: at most [`MAX_CLAIM_ANSWER_BYTES`] + 1 bytes (one more than
/// allowed, for the parser to refuse), all within [`CLAIM_ANSWER_TIMEOUT`].
#[cfg(feature = "claim")]
pub async fn claim(
    login: &Login,
    jail: &Jail,
    pins: StoredPins,
    save_pin: PinSaver<'_>,
    request: &[u8],
) -> Result<Vec<u8>, Failure> {
    use crate::limits::{CLAIM_ANSWER_TIMEOUT, MAX_CLAIM_ANSWER_BYTES};
    use russh::ChannelMsg;
    let (tx, _rx) = mpsc::channel(1);
    // No forward asked: every channel the jail opens is refused.
    let expect = Arc::new(Expected {
        reverse: false,
        port: AtomicU32::new(0),
        socket: None,
    });
    let (handle, _) = open(login, jail, pins, save_pin, tx, expect).await?;
    let lost = |e: &dyn fmt::Display| Failure::Lost(format!("claim at jail {jail}: {e}"));
    let exchange = async {
        let ch = handle.channel_open_session().await.map_err(|e| lost(&e))?;
        // Split as forward.rs does: the same halves' code serves both.
        let (mut rx, tx) = ch.split();
        tx.exec(true, crate::claim::COMMAND)
            .await
            .map_err(|e| lost(&e))?;
        tx.data_bytes(bytes::Bytes::copy_from_slice(request))
            .await
            .map_err(|e| lost(&e))?;
        tx.eof().await.map_err(|e| lost(&e))?;
        let mut answer = Vec::with_capacity(1024);
        while let Some(msg) = rx.wait().await {
            match msg {
                ChannelMsg::Data { data } => {
                    let room = MAX_CLAIM_ANSWER_BYTES + 1 - answer.len();
                    answer.extend_from_slice(&data[..data.len().min(room)]);
                    if answer.len() > MAX_CLAIM_ANSWER_BYTES {
                        break;
                    }
                }
                ChannelMsg::Failure => {
                    return Err(lost(&"the jail refused to run the claim command"));
                }
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok(answer)
    };
    let answer = timeout(CLAIM_ANSWER_TIMEOUT, exchange).await;
    // The forced command is done: dropping the handle ends the link.
    drop(handle);
    answer.unwrap_or_else(|_| {
        Err(Failure::Lost(format!(
            "claim at jail {jail}: no complete answer within {}s",
            CLAIM_ANSWER_TIMEOUT.as_secs()
        )))
    })
}

/// What the handshake's outcome means: the session, or why the attempt
/// failed (a trust refusal is [`Failure::HostKey`]).
fn handshake_reply(
    ctx: &Login,
    jail: &Jail,
    connected: Result<Result<Handle<Client>, HandshakeError>, Elapsed>,
) -> Result<Handle<Client>, Failure> {
    match connected {
        Err(_) => Err(Failure::Handshake(format!(
            "jail {jail}: no SSH handshake within {}s (ConnectTimeout)",
            ctx.connect_timeout.as_secs()
        ))),
        Ok(Err(HandshakeError::HostKey(why))) => Err(Failure::HostKey(why)),
        Ok(Err(HandshakeError::Ssh(e))) => Err(Failure::Handshake(format!(
            "SSH handshake with jail {jail} failed: {e}"
        ))),
        Ok(Ok(h)) => Ok(h),
    }
}

/// A key accepted as new is trusted only once it is on disk: saved before
/// authenticating, and the attempt fails if it cannot be.
fn keep_new_pin(
    jail: &Jail,
    new_pin: Option<([u8; 32], String)>,
    save_pin: PinSaver<'_>,
) -> Result<(), Failure> {
    if let Some((sha, fp)) = new_pin {
        save_pin(jail, sha)
            .map_err(|e| Failure::HostKey(format!("cannot pin jail {jail} host key {fp}: {e}")))?;
        log::info!("pinned jail {jail} host key {fp} (StrictHostKeyChecking=accept-new)");
    }
    Ok(())
}

/// Public-key authentication within AUTH_TIMEOUT; a refusal names the key
/// and the user, a link that ended meanwhile says so.
async fn authenticate(
    ctx: &Login,
    jail: &Jail,
    handle: &mut Handle<Client>,
) -> Result<(), Failure> {
    let hash = if ctx.key.algorithm().is_rsa() {
        handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten()
    } else {
        None
    };
    let user = jail.user.as_str();
    let auth = match &ctx.certificate {
        Some(path) => {
            let cert = crate::device::load_certificate(path, &ctx.key, unix_now())
                .map_err(|p| Failure::Auth(p.to_string()))?;
            timeout(
                AUTH_TIMEOUT,
                handle.authenticate_openssh_cert(user, ctx.key.clone(), cert),
            )
            .await
        }
        None => {
            timeout(
                AUTH_TIMEOUT,
                handle.authenticate_publickey(
                    user,
                    PrivateKeyWithHashAlg::new(ctx.key.clone(), hash),
                ),
            )
            .await
        }
    };
    match auth {
        Ok(Ok(client::AuthResult::Success)) => Ok(()),
        // russh reports a link that ended mid-auth as a failure: not a refusal.
        Ok(Ok(client::AuthResult::Failure { .. })) if handle.is_closed() => Err(Failure::Auth(
            format!("jail {jail} closed the connection during authentication"),
        )),
        Ok(Ok(client::AuthResult::Failure { .. })) => Err(Failure::Auth(match &ctx.certificate {
            Some(path) => format!(
                "jail {jail} refused certificate {} of key {} for user {}: does it trust the certificate's CA (TrustedUserCAKeys) for that user?",
                path.display(),
                fingerprint(ctx.key.public_key()),
                jail.user
            ),
            None => format!(
                "jail {jail} refused key {} for user {}: is its `jailbird authorize` line in that user's authorized_keys?",
                fingerprint(ctx.key.public_key()),
                jail.user
            ),
        })),
        Ok(Err(e)) => Err(Failure::Auth(format!(
            "authentication with jail {jail} failed: {e}"
        ))),
        Err(_) => Err(Failure::Auth(format!(
            "jail {jail} did not answer authentication within {}s",
            AUTH_TIMEOUT.as_secs()
        ))),
    }
}

/// Why a jail most likely refuses a `tcpip-forward` request.
const PORT_REFUSED: &str = "usually its old session still holds the port (until ClientAliveInterval x ClientAliveCountMax evicts it), or the port is not permitted for this key (PermitListen / permitlisten)";

/// Asks the jail for the reverse forward (`-L` asks nothing: channels are
/// opened per local connection) and says what came up: for `-R 0`, the port
/// the jail allocated, which the channel gate then expects.
async fn request_forward(
    forward: &Forward,
    jail: &Jail,
    handle: &Handle<Client>,
    expect: &Expected,
    cipher: &'static str,
) -> Result<Up, Failure> {
    let Forward::Remote(f) = forward else {
        return Ok(Up {
            listen: String::new(),
            port: 0,
            cipher,
            unchecked_window: None,
        });
    };
    let (listen, port) = match &f.socket {
        Some(path) => {
            let reply = timeout(
                FORWARD_REPLY_TIMEOUT,
                handle.streamlocal_forward(path.as_str()),
            )
            .await;
            forward_reply(
                jail,
                path,
                reply.map(|r| r.map(|()| 0)),
                format_args!(
                    "a stale socket is there (the jail needs StreamLocalBindUnlink yes), its directory is not writable by {}, or AllowStreamLocalForwarding is off",
                    jail.user
                ),
            )?;
            (path.clone(), 0)
        }
        None => {
            let spec = format!("{}:{}", f.bind_address(), f.port);
            let reply = timeout(
                FORWARD_REPLY_TIMEOUT,
                handle.tcpip_forward(f.bind_address(), u32::from(f.port)),
            )
            .await;
            let allocated = forward_reply(jail, &spec, reply, format_args!("{PORT_REFUSED}"))?;
            let port = if f.port == 0 {
                allocated
            } else {
                u32::from(f.port)
            };
            expect.port.store(port, Ordering::Relaxed);
            (format!("{}:{port}", f.bind_address()), port)
        }
    };
    Ok(Up {
        listen,
        port,
        cipher,
        unchecked_window: None,
    })
}

/// What the jail's answer to the forward request for `what` means: the port
/// it allocated, or why the attempt failed (`refused`: the likely causes).
fn forward_reply(
    jail: &Jail,
    what: &str,
    reply: Result<Result<u32, russh::Error>, Elapsed>,
    refused: fmt::Arguments<'_>,
) -> Result<u32, Failure> {
    match reply {
        Ok(Ok(port)) => Ok(port),
        Ok(Err(russh::Error::RequestDenied)) => Err(Failure::ForwardRefused(format!(
            "jail {jail} refused the forward of {what}: {refused}"
        ))),
        Ok(Err(e)) => Err(Failure::Lost(format!(
            "jail {jail} dropped the link during the forward request for {what}: {e}"
        ))),
        Err(_) => Err(Failure::ForwardTimeout(format!(
            "jail {jail} did not answer the forward request for {what} within {}s",
            FORWARD_REPLY_TIMEOUT.as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::{Algorithm, HashAlg};

    #[test]
    fn sha1_rsa_host_keys_are_never_offered() {
        assert!(
            russh::Preferred::DEFAULT
                .key
                .contains(&Algorithm::Rsa { hash: None }),
            "russh's default changed: this test no longer shows anything"
        );
        let c = ssh_config(None, 3, &[]);
        assert!(!c.preferred.key.contains(&Algorithm::Rsa { hash: None }));
        assert!(c.preferred.key.contains(&Algorithm::Rsa {
            hash: Some(HashAlg::Sha256)
        }));
        assert!(c.preferred.key.contains(&Algorithm::Ed25519));
    }
}
