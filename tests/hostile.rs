//! A hostile or broken jail. OpenSSH will not misbehave on request, so the jail
//! here is an in-process russh *server* (the same vendored russh the agent is
//! built on) on a tokio runtime in a background thread, or, for breakage below
//! SSH, a raw TCP listener. The agent is the real binary as a child process.
//!
//! Each test names, next to its assertions, how an agent without the behaviour
//! under test would make it fail.

mod common;
use common::*;
use jailbird::limits::{FORWARD_REPLY_TIMEOUT, MAX_CHANNELS};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{PrivateKey, PublicKey};
use russh::server::{self, Auth, Session, VerifiedPublicKey};
use russh::{Channel, ChannelMsg, ChannelOpenFailure};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// The account the fake jail lets in.
const USER: &str = "tunuser";

// ---------------------------------------------------------------------------
// The fake jail
// ---------------------------------------------------------------------------

/// How the fake jail misbehaves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    /// Accepts the agent's key, then never answers `tcpip-forward`.
    Silent,
    /// Accepts the agent's key and grants the forward; the test then opens
    /// channels through the session's [`server::Handle`].
    Grant,
    /// Rejects every key (as a jail without the `authorize` line would).
    AuthReject,
    /// Drops the connection in the middle of authentication.
    AuthDisconnect,
}

#[derive(Debug)]
enum Event {
    Connected,
    ForwardAsked,
}

#[derive(Default)]
struct Log {
    events: Vec<(Instant, Event)>,
    /// One handle per session whose forward was granted.
    handles: Vec<server::Handle>,
    /// One handle per authenticated session (for agents that ask no forward: -L).
    sessions: Vec<server::Handle>,
}

struct Shared {
    mode: Mode,
    agent_key: PublicKey,
    log: Mutex<Log>,
}

impl Shared {
    fn event(&self, e: Event) {
        self.log.lock().unwrap().events.push((Instant::now(), e));
    }
}

struct JailHandler(Arc<Shared>);

impl server::Handler for JailHandler {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        match self.0.mode {
            Mode::AuthReject => Ok(Auth::reject()),
            Mode::AuthDisconnect => Err(russh::Error::Disconnect),
            Mode::Silent | Mode::Grant => {
                if user == USER && key.public_key.key_data() == self.0.agent_key.key_data() {
                    Ok(Auth::Accept)
                } else {
                    Ok(Auth::reject())
                }
            }
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.0.log.lock().unwrap().sessions.push(session.handle());
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.0.event(Event::ForwardAsked);
        if self.0.mode == Mode::Silent {
            // Never reply: this session's loop parks here for good (so it
            // does not answer keepalives either, like a wedged jail).
            std::future::pending::<()>().await;
        }
        self.0.log.lock().unwrap().handles.push(session.handle());
        Ok(true)
    }
}

/// A fresh ed25519 host key (seed from ring's system random source).
fn host_key() -> PrivateKey {
    use ring::rand::SecureRandom;
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut seed).unwrap();
    PrivateKey::from(Ed25519Keypair::from_seed(&seed))
}

/// `TYPE BASE64` of a key, for `--host-key`.
fn host_key_arg(key: &PrivateKey) -> String {
    let line = key.public_key().to_openssh().unwrap();
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The fake jail's server configuration with `host_key`.
fn jail_config(host_key: PrivateKey) -> Arc<server::Config> {
    Arc::new(server::Config {
        keys: vec![host_key],
        // Rejections answer at once (russh's default pads them to 1 s).
        auth_rejection_time: Duration::from_millis(5),
        auth_rejection_time_initial: Some(Duration::ZERO),
        inactivity_timeout: None,
        nodelay: true,
        ..Default::default()
    })
}

/// A russh server on 127.0.0.1, port picked by the kernel, serving each
/// connection with [`JailHandler`] on a current-thread runtime in its own
/// thread (which lives until the test process ends).
struct FakeJail {
    port: u16,
    shared: Arc<Shared>,
}

impl FakeJail {
    fn start(mode: Mode, host_key: PrivateKey, agent_key: PublicKey) -> FakeJail {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared {
            mode,
            agent_key,
            log: Mutex::new(Log::default()),
        });
        let config = jail_config(host_key);
        let s = shared.clone();
        thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = l.accept().await else {
                        continue;
                    };
                    s.event(Event::Connected);
                    let (config, handler) = (config.clone(), JailHandler(s.clone()));
                    tokio::spawn(async move {
                        if let Ok(session) = server::run_stream(config, stream, handler).await {
                            let _ = session.await;
                        }
                    });
                }
            });
        });
        FakeJail { port, shared }
    }

    fn times(&self, want: fn(&Event) -> bool) -> Vec<Instant> {
        let log = self.shared.log.lock().unwrap();
        log.events
            .iter()
            .filter(|(_, e)| want(e))
            .map(|(t, _)| *t)
            .collect()
    }

    fn connections(&self) -> Vec<Instant> {
        self.times(|e| matches!(e, Event::Connected))
    }

    /// The handle of the first session whose forward was granted.
    fn granted(&self) -> server::Handle {
        wait_until(READY, "a granted forward", || {
            self.shared.log.lock().unwrap().handles.first().cloned()
        })
    }
}

/// The agent's state file and its public key (from `jailbird authorize`), and
/// the `-R` listen port it asks the jail for (never bound here: the fake jail
/// only pretends to listen).
struct Device {
    dir: TempDir,
    state: String,
    key: PublicKey,
    listen: u16,
}

impl Device {
    fn new() -> Device {
        let (dir, state, listen, line) = authorized_device("hostile");
        let mut words = line.split_whitespace();
        words.find(|w| *w == "ssh-ed25519").expect(&line);
        let b64 = words.next().expect(&line);
        let key = PublicKey::from_openssh(&format!("ssh-ed25519 {b64}")).unwrap();
        Device {
            dir,
            state,
            key,
            listen,
        }
    }

    /// `jailbird run -R listen:127.0.0.1:target` against 127.0.0.1:`jail_port`,
    /// the jail's host key pinned with `--host-key`.
    fn run(&self, jail_port: u16, host_key: &str, target: u16) -> Agent {
        let status = self.dir.path("status").display().to_string();
        let forward = format!("{}:127.0.0.1:{target}", self.listen);
        let dest = format!("{USER}@127.0.0.1:{jail_port}");
        Agent::spawn(
            &[
                "run",
                "--state",
                &self.state,
                "--host-key",
                host_key,
                "--status-file",
                &status,
                "-R",
                &forward,
                &dest,
            ],
            &[],
        )
    }
}

/// A device's agent with its tunnel up through a granting fake jail.
struct Granted {
    dev: Device,
    jail: FakeJail,
    agent: Agent,
    /// The jail's side of the session whose forward it granted.
    handle: server::Handle,
}

/// Starts a fake jail with host key `key` that grants the forward, and the
/// agent of a new device forwarding to `target`; returns once the tunnel is up.
fn granted_tunnel(key: PrivateKey, target: u16) -> Granted {
    let dev = Device::new();
    let hk = host_key_arg(&key);
    let jail = FakeJail::start(Mode::Grant, key, dev.key.clone());
    let agent = dev.run(jail.port, &hk, target);
    agent.wait_log("tunnel up", READY);
    let handle = jail.granted();
    Granted {
        dev,
        jail,
        agent,
        handle,
    }
}

// ---------------------------------------------------------------------------
// Targets on the device side
// ---------------------------------------------------------------------------

/// A TCP listener on the device side counting connections: `echo` sends every
/// byte back and holds each connection open until the peer closes it; a decoy
/// says `decoy` and closes.
struct Target {
    port: u16,
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
}

impl Target {
    fn start(echo: bool) -> Target {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (a, o) = (accepted.clone(), open.clone());
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                a.fetch_add(1, Ordering::SeqCst);
                o.fetch_add(1, Ordering::SeqCst);
                let o = o.clone();
                thread::spawn(move || {
                    if !echo {
                        let _ = s.write_all(b"decoy\n");
                        o.fetch_sub(1, Ordering::SeqCst);
                        return;
                    }
                    echo_until_eof(&mut s);
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Target {
            port,
            accepted,
            open,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A runtime for the test thread's own async work (opening channels, moving
/// data). russh's server `Handle` and `Channel` talk to the session over tokio
/// channels, so they work from any runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends `data` into a server-side channel and reads back as many bytes (the
/// agent's target echoes), concurrently, within `READY`.
async fn roundtrip(ch: Channel<server::Msg>, data: &[u8]) -> Result<Vec<u8>, String> {
    let (mut rx, tx) = ch.split();
    let send = async {
        tx.data(data)
            .await
            .map_err(|e| format!("send into the channel: {e}"))
    };
    let recv = async {
        let mut back = Vec::new();
        while back.len() < data.len() {
            match rx.wait().await {
                Some(ChannelMsg::Data { data }) => back.extend_from_slice(&data),
                Some(ChannelMsg::Eof | ChannelMsg::Close) | None => break,
                Some(_) => {}
            }
        }
        back
    };
    let (sent, back) = tokio::time::timeout(READY, async { tokio::join!(send, recv) })
        .await
        .map_err(|_| "no echo within READY".to_string())?;
    sent?;
    let _ = tx.close().await;
    Ok(back)
}

/// Log records that begin with `start` (e.g. `[INFO ] tunnel up`): the text
/// of another record, or an indented continuation line, does not count.
fn records(agent: &Agent, start: &str) -> usize {
    agent
        .lines()
        .iter()
        .filter(|l| l.starts_with(start))
        .count()
}

/// No line shows a crash.
fn assert_no_panic(agent: &Agent) {
    for l in agent.lines() {
        assert!(
            !l.contains("panicked") && !l.contains("RUST_BACKTRACE"),
            "agent panicked: {l}"
        );
    }
}

// ---------------------------------------------------------------------------
// 1. The jail never answers the forward request
// ---------------------------------------------------------------------------

#[test]
fn unanswered_forward_request_times_out_and_the_agent_reconnects() {
    let dev = Device::new();
    let key = host_key();
    let hk = host_key_arg(&key);
    let jail = FakeJail::start(Mode::Silent, key, dev.key.clone());
    let target = Target::start(true);
    let agent = dev.run(jail.port, &hk, target.port);

    let asked = wait_until(READY, "the forward request", || {
        jail.times(|e| matches!(e, Event::ForwardAsked))
            .first()
            .copied()
    });
    // Without FORWARD_REPLY_TIMEOUT the agent would wait on the reply until its
    // keepalives declare the link dead (ServerAliveInterval 10 s x 3 = 30 s):
    // the deadline below lets that later reconnect arrive, so the timing and
    // log assertions after it are what fail, not a timeout here.
    let max_backoff = Duration::from_secs(1); // first retry: [0.5, 1] s
    let second = wait_until(
        FORWARD_REPLY_TIMEOUT + max_backoff + READY,
        "a second connection to the jail",
        || jail.connections().get(1).copied(),
    );
    let waited = second - asked;
    eprintln!(
        "figures: forward asked -> next connection {:.2}s (FORWARD_REPLY_TIMEOUT {}s)",
        waited.as_secs_f32(),
        FORWARD_REPLY_TIMEOUT.as_secs()
    );
    // Gave up no earlier than the timeout (an agent that dropped the link at
    // once, or retried on anything else, would be faster) ...
    assert!(
        waited >= FORWARD_REPLY_TIMEOUT - Duration::from_millis(100),
        "agent gave up after {waited:?}, before FORWARD_REPLY_TIMEOUT"
    );
    // ... and not much later: the timeout, one backoff step, scheduling slack.
    // Keepalive-based recovery (>= 30 s) or none at all fails here.
    assert!(
        waited <= FORWARD_REPLY_TIMEOUT + max_backoff + Duration::from_secs(3),
        "agent took {waited:?} to retry an unanswered forward request"
    );
    let line = agent.wait_log("did not answer the forward request", READY);
    assert!(
        line.contains(&format!(
            "jail 127.0.0.1:{} did not answer the forward request for localhost:{} within {}s",
            jail.port,
            dev.listen,
            FORWARD_REPLY_TIMEOUT.as_secs()
        )),
        "{line}"
    );
    assert!(line.contains("retrying in"), "{line}");
    assert_eq!(agent.count("tunnel up"), 0, "{:#?}", agent.lines());
    assert_no_panic(&agent);
}

// ---------------------------------------------------------------------------
// 2. A channel flood right after the forward is granted
// ---------------------------------------------------------------------------

/// Channels the jail opens at once: ten times the cap.
const FLOOD: usize = 10 * MAX_CHANNELS;

/// What the flood may add to the agent's resident memory while MAX_CHANNELS
/// channels are held open: measured +0.8 MiB (debug build; 32 tasks with their
/// 16 KiB copy buffers, 32 target sockets, russh's channel state); a refused
/// open must leave nothing behind. An agent that served all FLOOD channels
/// would touch 320 copy buffers (COPY_BUF_BYTES, 16 KiB each: 5 MiB) before
/// any socket or task (the held-channel count below catches that first).
const FLOOD_RSS_BOUND_KIB: u64 = 4 * 1024;

#[test]
fn channel_flood_is_capped_and_the_tunnel_survives_it() {
    let target = Target::start(true);
    let Granted {
        dev,
        jail,
        agent,
        handle,
    } = granted_tunnel(host_key(), target.port);
    let pid = agent.child.id();
    let rss_idle = vm_rss_kib(pid);

    // The flood, as soon as the forward is granted and the agent's idle VmRSS
    // read: FLOOD forwarded-tcpip opens at once, none of them closed.
    // The originator carries a newline and a forged log line: the agent names
    // the originator in its refusal line, which must stay one line.
    let rt = runtime();
    let listen = u32::from(dev.listen);
    let results = rt.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for i in 0..FLOOD {
            let h = handle.clone();
            set.spawn(async move {
                h.channel_open_forwarded_tcpip(
                    "localhost",
                    listen,
                    "198.51.100.7\n[INFO ] tunnel up jail=forged",
                    40_000 + i as u32,
                )
                .await
            });
        }
        tokio::time::timeout(READY, set.join_all())
            .await
            .expect("the agent answered every channel open within READY")
    });
    let mut held = Vec::new();
    let mut refused = 0;
    for r in results {
        match r {
            Ok(ch) => held.push(ch),
            Err(russh::Error::ChannelOpenFailure(ChannelOpenFailure::ResourceShortage)) => {
                refused += 1
            }
            Err(e) => panic!("channel open failed other than by the cap: {e:?}"),
        }
    }
    // An agent without the cap accepts all FLOOD (and connects each to the
    // target); one that refused more than it must (e.g. counted refused opens
    // against the cap) holds fewer than MAX_CHANNELS.
    assert_eq!(held.len(), MAX_CHANNELS, "channels accepted while held");
    assert_eq!(refused, FLOOD - MAX_CHANNELS);
    // Every accepted channel is one connection to the target, still open.
    wait_until(READY, "MAX_CHANNELS connections at the target", || {
        (target.accepted() == MAX_CHANNELS && target.open() == MAX_CHANNELS).then_some(())
    });
    // One refusal line each, and each a single line: the forged "tunnel up"
    // in the originator must not appear as a line of its own.
    agent.wait_log_n("already open (MAX_CHANNELS)", FLOOD - MAX_CHANNELS, READY);
    let rss_flood = vm_rss_kib(pid);

    // The held channels still carry data (the session loop is not wedged).
    let first = held.pop().unwrap();
    let data = pattern(64 * 1024, 2);
    let back = rt.block_on(roundtrip(first, &data)).unwrap();
    assert_eq!(sha256(&back), sha256(&data), "echo on a held channel");

    // Release them all: the agent must close every target connection ...
    rt.block_on(async {
        for ch in &held {
            let _ = ch.close().await;
        }
    });
    drop(held);
    wait_until(READY, "the target connections closed", || {
        (target.open() == 0).then_some(())
    });
    // ... and then accept a new channel that carries data both ways.
    let data = pattern(256 * 1024, 3);
    let back = rt.block_on(async {
        let ch = handle
            .channel_open_forwarded_tcpip("localhost", listen, "198.51.100.8", 1)
            .await
            .expect("a channel after the flood was released");
        roundtrip(ch, &data).await
    });
    assert_eq!(
        sha256(&back.unwrap()),
        sha256(&data),
        "echo after the flood"
    );
    assert_eq!(target.accepted(), MAX_CHANNELS + 1);

    let mut agent = agent;
    assert!(agent.is_running(), "agent exited under the flood");
    // The tunnel never went down: one `tunnel up` (a forged one from the
    // originator field would make two), one connection, no retry.
    assert_eq!(
        records(&agent, "[INFO ] tunnel up"),
        1,
        "{:#?}",
        agent.lines()
    );
    // Every line is a record of its own: a jail-chosen string with a newline
    // in it, logged as is, would add lines that look like the agent's.
    let forged: Vec<String> = agent
        .lines()
        .into_iter()
        .filter(|l| !l.starts_with('['))
        .collect();
    assert!(forged.is_empty(), "lines the jail wrote: {forged:#?}");
    assert_eq!(jail.connections().len(), 1);
    assert_eq!(agent.count("retrying in"), 0, "{:#?}", agent.lines());
    assert_no_panic(&agent);
    eprintln!(
        "figures: flood {FLOOD} opens: {MAX_CHANNELS} held, {refused} refused; agent VmRSS idle {rss_idle} KiB, flooded {rss_flood} KiB (bound idle + {FLOOD_RSS_BOUND_KIB} KiB)"
    );
    assert!(
        rss_flood < rss_idle + FLOOD_RSS_BOUND_KIB,
        "agent VmRSS {rss_flood} KiB under the flood (idle {rss_idle} KiB)"
    );
}

// ---------------------------------------------------------------------------
// 3. The jail names another host/port in the channel
// ---------------------------------------------------------------------------

#[test]
fn a_channel_goes_to_the_configured_target_and_only_for_the_forwarded_port() {
    let target = Target::start(true);
    let decoy = Target::start(false);
    let Granted {
        dev,
        jail: _jail,
        agent,
        handle,
    } = granted_tunnel(host_key(), target.port);
    let decoy_port = u32::from(decoy.port);
    let listen = u32::from(dev.listen);

    // connected_address is what the jail claims the connection came in on; a
    // confused agent might dial it. Originators are junk. The port is the
    // forwarded one, so each is served, and only by the configured target.
    let served: [(&str, &str, u32); 3] = [
        ("127.0.0.1", "10.9.8.7", 1),
        ("", "", 0),
        ("decoy.example", "::1%lo\r\n\0", u32::MAX),
    ];
    let rt = runtime();
    for (i, (addr, orig, orig_port)) in served.into_iter().enumerate() {
        let data = pattern(32 * 1024, 10 + i as u64);
        let back = rt.block_on(async {
            let ch = handle
                .channel_open_forwarded_tcpip(addr, listen, orig, orig_port)
                .await
                .unwrap_or_else(|e| panic!("channel naming {addr:?}:{listen} refused: {e:?}"));
            roundtrip(ch, &data).await
        });
        // Dialled the decoy instead: "decoy\n" comes back, not the data.
        let back = back.unwrap_or_else(|e| panic!("channel naming {addr:?}:{listen}: {e}"));
        assert_eq!(
            sha256(&back),
            sha256(&data),
            "channel naming {addr:?}:{listen} did not reach the echo target"
        );
    }
    // A channel for a port the agent never asked to forward is refused.
    for (addr, port) in [
        ("127.0.0.1", decoy_port),
        ("localhost", 0),
        ("localhost", listen + 1),
    ] {
        let r = rt.block_on(handle.channel_open_forwarded_tcpip(addr, port, "10.0.0.1", 4242));
        assert!(r.is_err(), "a channel for port {port} was accepted");
    }
    // Each served channel was one connection to the configured target, none to
    // the decoy (an agent that dialled connected_address:port counts here).
    assert_eq!(target.accepted(), served.len());
    assert_eq!(decoy.accepted(), 0, "the agent connected to the decoy");
    agent.wait_log_n("not the forwarded port", 3, READY);
    assert_eq!(agent.count("tunnel up"), 1);
    assert_no_panic(&agent);
}

#[cfg(feature = "local-forward")]
#[test]
fn a_local_forward_agent_refuses_every_channel_the_jail_opens() {
    // A -L agent asked the jail for nothing; a jail that opens a forwarded
    // channel anyway must not get a connection to anything on the device
    // (least of all the -L host:port, which names a host on the jail's side).
    let dev = Device::new();
    let key = host_key();
    let hk = host_key_arg(&key);
    let jail = FakeJail::start(Mode::Grant, key, dev.key.clone());
    let target = Target::start(true);
    let status = dev.dir.path("status").display().to_string();
    let agent = Agent::spawn(
        &[
            "run",
            "--state",
            &dev.state,
            "--host-key",
            &hk,
            "--status-file",
            &status,
            "-L",
            &format!("127.0.0.1:{}:127.0.0.1:{}", free_port(), target.port),
            &format!("{USER}@127.0.0.1:{}", jail.port),
        ],
        &[],
    );
    agent.wait_log("tunnel up", READY);
    let handle = wait_until(READY, "an authenticated session", || {
        jail.shared.log.lock().unwrap().sessions.first().cloned()
    });
    let rt = runtime();
    for (addr, port) in [("127.0.0.1", u32::from(target.port)), ("localhost", 22)] {
        let r = rt.block_on(handle.channel_open_forwarded_tcpip(addr, port, "10.0.0.1", 4242));
        assert!(
            r.is_err(),
            "a -L agent accepted a channel the jail opened ({addr}:{port})"
        );
    }
    agent.wait_log("this tunnel is -L: refused", READY);
    assert_eq!(
        target.accepted(),
        0,
        "the agent dialled for a jail-opened channel"
    );
    assert_eq!(agent.count("tunnel up"), 1);
    assert_no_panic(&agent);
}

// ---------------------------------------------------------------------------
// 4. Broken before the tunnel is up: backoff, not a busy loop
// ---------------------------------------------------------------------------

/// How long connection attempts are counted, from the first one.
const WINDOW: Duration = Duration::from_secs(12);
/// src/backoff.rs: the n-th retry waits a delay in [d/2, d] for d = 1, 2, 4, 8 s.
/// With failures that take no time, attempts start at
///   earliest: 0, 0.5, 1.5, 3.5, 7.5, 15.5 s  -> at most 5 within 12 s;
///   latest:   0, 1,   3,   7,   15 s        -> at least 4 within 12 s.
/// A fixed 1 s or 2 s retry would make 6+ (a busy loop hundreds); no retry, 1.
/// The lower bound allows one attempt lost to a slow, shared machine.
const MIN_ATTEMPTS: usize = 3;
const MAX_ATTEMPTS: usize = 5;

/// One broken jail and the agent pointed at it.
struct Broken {
    name: &'static str,
    agent: Agent,
    /// When the jail saw each connection attempt.
    connections: Box<dyn Fn() -> Vec<Instant>>,
    /// What every failure line must say.
    why: String,
    _dev: Device,
}

impl Broken {
    fn fake(name: &'static str, mode: Mode, why: impl Fn(u16) -> String) -> Broken {
        let dev = Device::new();
        let key = host_key();
        let hk = host_key_arg(&key);
        let jail = FakeJail::start(mode, key, dev.key.clone());
        let agent = dev.run(jail.port, &hk, free_port());
        Broken {
            name,
            agent,
            why: why(jail.port),
            connections: Box::new(move || jail.connections()),
            _dev: dev,
        }
    }

    fn raw(name: &'static str, greet: Vec<u8>, read: usize, why: impl Fn(u16) -> String) -> Broken {
        let dev = Device::new();
        let (port, times) = raw_jail(greet, read);
        let agent = dev.run(port, &host_key_arg(&host_key()), free_port());
        Broken {
            name,
            agent,
            why: why(port),
            connections: Box::new(move || times.lock().unwrap().clone()),
            _dev: dev,
        }
    }

    /// Checks the attempts in [`WINDOW`] from the first against the backoff,
    /// and that each failure produced exactly one log line, saying `why`.
    fn check(&self, first: Instant) {
        let name = self.name;
        let at: Vec<f32> = (self.connections)()
            .iter()
            .filter(|t| **t <= first + WINDOW)
            .map(|t| (*t - first).as_secs_f32())
            .collect();
        eprintln!(
            "figures: {name}: {} attempts in {}s, at {at:.2?} s",
            at.len(),
            WINDOW.as_secs()
        );
        // A busy loop or a fixed short delay makes too many; no retry, one.
        assert!(
            (MIN_ATTEMPTS..=MAX_ATTEMPTS).contains(&at.len()),
            "{name}: {} attempts in {WINDOW:?} (backoff allows {MIN_ATTEMPTS}..={MAX_ATTEMPTS}): at {at:?}",
            at.len()
        );
        // Each attempt has failed and been logged (the last one may still be
        // running when the window ends; its line follows within READY).
        self.agent.wait_log_n("retrying in", at.len(), READY);
        let lines = self.agent.lines();
        for l in lines.iter().filter(|l| l.contains("retrying in")) {
            assert!(
                l.contains(&self.why),
                "{name}: failure line does not say {:?}: {l}",
                self.why
            );
        }
        // One line per failure and nothing else but the startup line (a
        // second line per failure, e.g. from russh, or a panic shows here).
        let others: Vec<&String> = lines
            .iter()
            .filter(|l| !l.contains("retrying in") && !l.contains("device key"))
            .collect();
        assert!(others.is_empty(), "{name}: unexpected lines: {others:#?}");
    }
}

/// A raw TCP "jail" below SSH: `greet` is what it sends first; after reading up
/// to `read` bytes of the agent's side it closes (`read` = 0: it waits for the
/// agent to close). Returns the port and the times connections arrived.
fn raw_jail(greet: Vec<u8>, read: usize) -> (u16, Arc<Mutex<Vec<Instant>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            t.lock().unwrap().push(Instant::now());
            let greet = greet.clone();
            thread::spawn(move || {
                let _ = s.set_read_timeout(Some(READY));
                let _ = s.write_all(&greet);
                let mut buf = [0u8; 4096];
                let mut got = 0;
                while read == 0 || got < read {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got += n,
                    }
                }
                // Dropped here: closed with the agent's KEXINIT half read.
            });
        }
    });
    (port, times)
}

/// Four jails that break before the tunnel is up, each with its own agent, all
/// observed over the same window (side by side, so the test takes one window).
#[test]
fn jails_breaking_before_the_tunnel_is_up_are_retried_with_backoff() {
    let handshake = |port: u16| format!("SSH handshake with jail 127.0.0.1:{port} failed");
    // 4 KiB of random bytes without a newline: no identification line can come
    // of it (russh gives up after 255 bytes). The connection stays open, so
    // giving up is the agent's doing, not an EOF.
    let mut junk = vec![0u8; 4096];
    {
        use ring::rand::SecureRandom;
        ring::rand::SystemRandom::new().fill(&mut junk).unwrap();
    }
    for b in &mut junk {
        if *b == b'\n' {
            *b = 0xff;
        }
    }
    let broken = [
        // A version line, then gone after the agent's own version line and
        // part of its KEXINIT.
        Broken::raw(
            "dropped during kex",
            b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n".to_vec(),
            64,
            handshake,
        ),
        Broken::raw("garbage banner", junk, 0, handshake),
        Broken::fake("auth rejected", Mode::AuthReject, |port| {
            format!("jail 127.0.0.1:{port} refused key SHA256:")
        }),
        // russh hands the agent a link that ended mid-auth as a refusal; an
        // agent that believed it would blame authorized_keys here.
        Broken::fake("dropped during auth", Mode::AuthDisconnect, |port| {
            format!("jail 127.0.0.1:{port} closed the connection during authentication")
        }),
    ];
    let firsts: Vec<Instant> = broken
        .iter()
        .map(|b| {
            wait_until(READY, &format!("{}: a first attempt", b.name), || {
                (b.connections)().first().copied()
            })
        })
        .collect();
    // A fixed observation window, not a synchronisation point.
    let end = firsts.iter().max().unwrap().to_owned() + WINDOW;
    thread::sleep(end.saturating_duration_since(Instant::now()));
    for (b, first) in broken.iter().zip(firsts) {
        b.check(first);
    }
    for mut b in broken {
        assert!(b.agent.is_running(), "{}: agent exited", b.name);
        assert_eq!(b.agent.count("tunnel up"), 0);
        assert_no_panic(&b.agent);
    }
}

// ---------------------------------------------------------------------------
// 5. The jail breaks flow control, or changes its host key at a re-exchange
// ---------------------------------------------------------------------------

/// A process's peak resident memory in KiB (VmHWM).
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A device-side target that accepts connections and never reads them (a
/// wedged service): whatever the jail sends must wait in the agent, so only
/// the window it granted bounds the agent's memory.
fn stalled_target() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
        }
    });
    port
}

/// Channels the flood is spread over, and what the jail pushes into each,
/// ignoring the window: far beyond WINDOW_BYTES plus what the loopback
/// socket buffers of a stalled target absorb.
const WINDOW_FLOOD_CHANNELS: usize = 4;
const WINDOW_FLOOD_BYTES: usize = 48 * 1024 * 1024;
/// The agent's peak VmRSS may exceed its idle VmRSS by this much while the
/// flood lasts: one window and one packet per channel, plus the allocator's
/// slack. An agent that accepts data beyond the window queues up to
/// CHANNEL_QUEUE_MSGS packets per channel (8 MiB at MAX_PACKET_BYTES) before
/// its session loop parks, and fails this.
const WINDOW_FLOOD_RSS_BOUND_KIB: u64 = 4 * 1024;

#[test]
fn a_jail_that_ignores_the_window_is_disconnected_and_memory_stays_bounded() {
    use jailbird::limits::MAX_PACKET_BYTES;
    use russh::server::Hostile;
    let Granted {
        dev,
        jail: _jail,
        agent,
        handle,
    } = granted_tunnel(host_key(), stalled_target());
    let pid = agent.child.id();
    let rss_idle = vm_rss_kib(pid);

    let rt = runtime();
    let listen = u32::from(dev.listen);
    let flood = bytes::Bytes::from(pattern(WINDOW_FLOOD_BYTES, 7));
    // Bounded: against an agent that lets its session loop park, the jail's
    // session wedges too and these calls would never return.
    let held = rt.block_on(async {
        let mut held = Vec::new();
        for i in 0..WINDOW_FLOOD_CHANNELS {
            let open = tokio::time::timeout(
                READY,
                handle.channel_open_forwarded_tcpip(
                    "localhost",
                    listen,
                    "198.51.100.9",
                    1 + i as u32,
                ),
            )
            .await
            .unwrap_or(Err(russh::Error::ConnectionTimeout));
            // The first channel always opens; a later open finds the session
            // gone once an earlier flood was caught.
            let ch = match open {
                Ok(ch) => ch,
                Err(e) if i > 0 => {
                    eprintln!("channel {i}: {e:?}");
                    break;
                }
                Err(e) => panic!("the agent refused a channel for its forward: {e:?}"),
            };
            // Packets no larger than the agent advertised: only the window is broken.
            let act = Hostile::Data {
                channel: ch.id(),
                data: flood.clone(),
                packet: MAX_PACKET_BYTES as usize,
            };
            // The session may already be gone once an earlier flood was refused.
            let _ = tokio::time::timeout(READY, handle.hostile(act)).await;
            held.push(ch);
        }
        held
    });
    // An agent without the check keeps the session (and never logs this).
    let deadline = Instant::now() + READY;
    while agent.count("peer ignored the channel window") == 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(50));
    }
    let peak = vm_hwm_kib(pid);
    eprintln!(
        "figures: {WINDOW_FLOOD_CHANNELS} channels x {} MiB past the window into a stalled target: agent VmRSS idle {rss_idle} KiB, peak {peak} KiB (bound idle + {WINDOW_FLOOD_RSS_BOUND_KIB} KiB)",
        WINDOW_FLOOD_BYTES >> 20
    );
    assert!(
        peak < rss_idle + WINDOW_FLOOD_RSS_BOUND_KIB,
        "agent peak VmRSS {peak} KiB while flooded (idle {rss_idle} KiB)"
    );
    agent.wait_log("peer ignored the channel window", Duration::ZERO);
    drop(held);
    // Dropped as a lost link, then back: a jail's misbehaviour is not fatal.
    agent.wait_log_n("tunnel up", 2, READY);
    assert_no_panic(&agent);
}

#[test]
fn a_channel_packet_above_the_advertised_maximum_ends_the_session() {
    use jailbird::limits::MAX_PACKET_BYTES;
    use russh::server::Hostile;
    let target = Target::start(true);
    let Granted {
        dev,
        jail: _jail,
        agent,
        handle,
    } = granted_tunnel(host_key(), target.port);
    let rt = runtime();
    let listen = u32::from(dev.listen);
    // Within the window (the first packet of a fresh channel), twice the size
    // the agent advertised: russh accepts transport packets up to 256 KiB, so
    // only the channel-level check stops it.
    let big = 2 * MAX_PACKET_BYTES as usize;
    rt.block_on(async {
        let ch = handle
            .channel_open_forwarded_tcpip("localhost", listen, "198.51.100.9", 1)
            .await
            .expect("the agent accepts a channel for its forward");
        let act = Hostile::Data {
            channel: ch.id(),
            data: bytes::Bytes::from(pattern(big, 8)),
            packet: big,
        };
        handle
            .hostile(act)
            .await
            .expect("the jail session is alive");
    });
    let line = agent.wait_log("above the advertised maximum", READY);
    assert!(
        line.contains(&format!("{big} bytes")) && line.contains(&MAX_PACKET_BYTES.to_string()),
        "{line}"
    );
    agent.wait_log_n("tunnel up", 2, READY);
    assert_no_panic(&agent);
}

#[test]
fn a_host_key_that_changes_at_a_re_exchange_ends_the_session() {
    use russh::server::Hostile;
    let key = host_key();
    let target = Target::start(true);
    let Granted {
        dev,
        jail: _jail,
        agent,
        handle,
    } = granted_tunnel(key.clone(), target.port);
    let rt = runtime();
    let listen = u32::from(dev.listen);
    let echo = |seed: u64| {
        let data = pattern(64 * 1024, seed);
        let back = rt.block_on(async {
            let ch = handle
                .channel_open_forwarded_tcpip("localhost", listen, "198.51.100.9", 1)
                .await
                .map_err(|e| format!("channel open: {e:?}"))?;
            roundtrip(ch, &data).await
        });
        back.map(|b| sha256(&b) == sha256(&data))
    };

    // A re-exchange with the same key is routine: the session carries on (the
    // jail holds the channel open until its kex is done, so the echo proves it).
    rt.block_on(handle.hostile(Hostile::Rekey(jail_config(key))))
        .expect("the jail session is alive");
    assert_eq!(
        echo(1),
        Ok(true),
        "echo after a re-exchange with the same key"
    );
    assert_eq!(agent.count("tunnel up"), 1, "{:#?}", agent.lines());

    // Another key at the next one: an agent that checks the host key only at
    // the first exchange keeps talking to whoever holds the new key.
    rt.block_on(handle.hostile(Hostile::Rekey(jail_config(host_key()))))
        .expect("the jail session is alive");
    agent.wait_log("server host key changed during re-exchange", READY);
    // The jail's listener still serves the pinned key: the agent comes back.
    agent.wait_log_n("tunnel up", 2, READY);
    assert_no_panic(&agent);
}
