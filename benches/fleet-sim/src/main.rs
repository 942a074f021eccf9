//! The fleet simulator: N devices in one process, each the agent's own
//! supervisor (session code, backoff, host-key check) with its own key,
//! holding its own `-R` forward through a real jail. Driven by
//! benches/fleet_sim.py, which sets up the registry and the jail, and which
//! kills and restarts the jail for a reconnect storm.
//!
//! ```text
//! fleet-sim keys DIR N POOL          # DIR/NNNNN.state per device; prints warden's import CSV
//! fleet-sim run --plan FILE --jail HOST:PORT --user USER --known-hosts FILE
//!               [--ramp PER_SEC] [--policy equal|full|spread:SECS]
//! ```
//!
//! `run` reads a plan of `STATE_PATH PORT` lines (one device each), starts
//! one supervisor per line at the ramp rate, and prints one JSON line every
//! [`REPORT_EVERY`]: devices up, ever up, attempts, failures by kind, its own
//! RSS. On stdin it takes `echo K` (a round trip through K devices'
//! forwards, spread over the fleet) and `quit`.

use jailbird::backoff::{Jitter, Policy};
use jailbird::session::{Failure, Up};
use jailbird::shutdown::Shutdown;
use jailbird::supervisor::Observer;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Most devices one process simulates.
const MAX_DEVICES: usize = 20_000;
/// Echo connections served at once (the devices' shared target).
const MAX_ECHO_CONNS: usize = 256;
/// Bytes each echo check sends and expects back.
const ECHO_BYTES: usize = 4096;
/// Time one echo check may take.
const ECHO_TIMEOUT: Duration = Duration::from_secs(10);
/// Echo checks in flight at once.
const ECHO_PARALLEL: usize = 32;
/// How often a progress line is printed.
const REPORT_EVERY: Duration = Duration::from_millis(500);
/// Commands queued from stdin.
const COMMAND_QUEUE: usize = 8;
/// Time the supervisors get to say goodbye on `quit`.
const QUIT_GRACE: Duration = Duration::from_secs(5);

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let r = match argv.first().map(String::as_str) {
        Some("keys") => keys(&argv[1..]),
        Some("run") => run(&argv[1..]),
        _ => Err("usage: fleet-sim keys DIR N POOL | fleet-sim run --plan FILE --jail HOST:PORT --user USER --known-hosts FILE [--ramp PER_SEC] [--policy equal|full|spread:SECS]".into()),
    };
    if let Err(e) = r {
        eprintln!("fleet-sim: {e}");
        std::process::exit(2);
    }
}

/// Creates one agent state file (the device key) per device and prints the
/// CSV `warden import` takes: `id,mac,key,pool`.
fn keys(a: &[String]) -> Result<(), String> {
    let [dir, n, pool] = a else {
        return Err("usage: fleet-sim keys DIR N POOL".into());
    };
    let n: usize = n.parse().map_err(|_| format!("N {n:?}: not a number"))?;
    if n == 0 || n > MAX_DEVICES {
        return Err(format!("N {n}: 1..={MAX_DEVICES}"));
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{dir}: {e}"))?;
    println!("id,mac,key,pool");
    for i in 0..n {
        let path = PathBuf::from(dir).join(format!("{i:05}.state"));
        let d = jailbird::device::DeviceKey::load(&path, &jailbird::config::KeySource::State)?;
        let public = d.key.public_key();
        let id = jailbird::identity::device_id(public);
        let line = jailbird::identity::public_line(public, "");
        // A MAC per device, as a fleet's factory records it (locally administered).
        let mac = format!(
            "02:00:{:02x}:{:02x}:{:02x}:{:02x}",
            (i >> 24) & 0xff,
            (i >> 16) & 0xff,
            (i >> 8) & 0xff,
            i & 0xff
        );
        println!("{id},{mac},{},{pool}", line.trim());
    }
    Ok(())
}

struct Args {
    plan: PathBuf,
    jail: String,
    user: String,
    known_hosts: String,
    ramp: f64,
    policy: Policy,
}

fn parse_run(a: &[String]) -> Result<Args, String> {
    let mut it = a.iter();
    let (mut plan, mut jail, mut user, mut known_hosts) = (None, None, None, None);
    let mut ramp = 100.0;
    let mut policy = Policy::AGENT;
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag}: needs a value"))
        };
        match flag.as_str() {
            "--plan" => plan = Some(PathBuf::from(value()?)),
            "--jail" => jail = Some(value()?),
            "--user" => user = Some(value()?),
            "--known-hosts" => known_hosts = Some(value()?),
            "--ramp" => {
                let v = value()?;
                ramp = v
                    .parse()
                    .ok()
                    .filter(|r: &f64| *r > 0.0)
                    .ok_or_else(|| format!("--ramp {v:?}: devices per second, > 0"))?;
            }
            "--policy" => policy = parse_policy(&value()?)?,
            other => return Err(format!("unknown flag {other:?}")),
        }
    }
    Ok(Args {
        plan: plan.ok_or("--plan is required")?,
        jail: jail.ok_or("--jail is required")?,
        user: user.ok_or("--user is required")?,
        known_hosts: known_hosts.ok_or("--known-hosts is required")?,
        ramp,
        policy,
    })
}

/// `equal` (the agent before issue 16), `full`, `spread:SECS` (full jitter and
/// the first retry after the jail closed the link within SECS),
/// `equal+spread:SECS`, `agent` (what the agent runs).
fn parse_policy(s: &str) -> Result<Policy, String> {
    let bad = || format!("--policy {s:?}: agent, equal, full, spread:SECS or equal+spread:SECS");
    Ok(match s {
        "agent" => Policy::AGENT,
        "equal" => Policy::EQUAL,
        "full" => Policy::FULL,
        _ => {
            let (jitter, rest) = match s.strip_prefix("equal+") {
                Some(rest) => (Jitter::Equal, rest),
                None => (Jitter::Full, s),
            };
            let secs = rest
                .strip_prefix("spread:")
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(bad)?;
            Policy {
                jitter,
                drop_spread: Duration::from_secs(secs),
            }
        }
    })
}

/// What the whole fleet has seen so far.
#[derive(Default)]
struct Stats {
    up: Vec<bool>,
    ever_up: Vec<bool>,
    ever: usize,
    attempts: u64,
    failures: BTreeMap<&'static str, u64>,
}

struct Device {
    index: usize,
    stats: Rc<RefCell<Stats>>,
}

impl Observer for Device {
    fn up(&mut self, _up: &Up) {
        let mut s = self.stats.borrow_mut();
        s.attempts += 1;
        s.up[self.index] = true;
        if !s.ever_up[self.index] {
            s.ever_up[self.index] = true;
            s.ever += 1;
        }
    }

    fn ended(&mut self, failure: &Failure, up_for: Option<Duration>) {
        let mut s = self.stats.borrow_mut();
        s.up[self.index] = false;
        if up_for.is_none() {
            s.attempts += 1;
        }
        *s.failures.entry(kind(failure)).or_default() += 1;
    }
}

fn kind(f: &Failure) -> &'static str {
    match f {
        Failure::Connect(_) => "connect",
        Failure::Handshake(_) => "handshake",
        Failure::HostKey(_) => "host_key",
        Failure::Auth(_) => "auth",
        Failure::ForwardRefused(_) => "forward_refused",
        Failure::ForwardTimeout(_) => "forward_timeout",
        Failure::Lost(_) => "lost",
        Failure::Dropped(_) => "dropped",
    }
}

fn run(a: &[String]) -> Result<(), String> {
    let args = parse_run(a)?;
    let text =
        std::fs::read_to_string(&args.plan).map_err(|e| format!("{}: {e}", args.plan.display()))?;
    let mut plan = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut w = line.split_whitespace();
        let (Some(state), Some(port), None) = (
            w.next(),
            w.next().and_then(|p| p.parse::<u16>().ok()),
            w.next(),
        ) else {
            return Err(format!(
                "{}:{}: expected `STATE_PATH PORT`",
                args.plan.display(),
                i + 1
            ));
        };
        plan.push((state.to_string(), port));
    }
    if plan.is_empty() || plan.len() > MAX_DEVICES {
        return Err(format!(
            "{}: 1..={MAX_DEVICES} devices, not {}",
            args.plan.display(),
            plan.len()
        ));
    }
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, simulate(args, plan))
}

async fn simulate(args: Args, plan: Vec<(String, u16)>) -> Result<(), String> {
    let n = plan.len();
    let echo = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let echo_port = echo.local_addr().map_err(|e| e.to_string())?.port();
    tokio::task::spawn_local(serve_echo(echo));
    let (host, jail_port) = args.jail.rsplit_once(':').ok_or("--jail: HOST:PORT")?;
    let stats = Rc::new(RefCell::new(Stats {
        up: vec![false; n],
        ever_up: vec![false; n],
        ..Default::default()
    }));
    let (stop, shutdown) = Shutdown::manual();
    let started = Instant::now();
    let ports: Vec<u16> = plan.iter().map(|p| p.1).collect();
    let mut devices = tokio::task::JoinSet::new();
    let mut cfgs = Vec::with_capacity(n);
    for (state, port) in &plan {
        let words = [
            "run",
            "-R",
            &format!("{port}:127.0.0.1:{echo_port}"),
            "-p",
            jail_port,
            "--state",
            state,
            "--known-hosts",
            &args.known_hosts,
            "-o",
            "StrictHostKeyChecking=yes",
            &format!("{}@{host}", args.user),
        ];
        let parsed = jailbird::cli::parse(words.iter().map(OsString::from))?;
        let cfg = match jailbird::config::build(parsed, &|_| None).map_err(|e| e.0)? {
            jailbird::config::Command::Run(c) => *c,
            _ => return Err("not a run command".into()),
        };
        cfgs.push(cfg);
    }
    // The ramp: device i starts at i / ramp seconds.
    let ramp_stats = stats.clone();
    let policy = args.policy;
    let ramp = args.ramp;
    let spawner_shutdown = shutdown.clone();
    let spawner = tokio::task::spawn_local(async move {
        for (index, cfg) in cfgs.into_iter().enumerate() {
            let at = started + Duration::from_secs_f64(index as f64 / ramp);
            tokio::time::sleep_until(at.into()).await;
            let mut obs = Device {
                index,
                stats: ramp_stats.clone(),
            };
            let sd = spawner_shutdown.clone();
            devices.spawn_local(async move {
                if let Err(e) = jailbird::supervisor::run_with(cfg, sd, policy, &mut obs).await {
                    eprintln!("fleet-sim: device {index}: {e}");
                }
            });
        }
        devices
    });
    let (tx, mut commands) = tokio::sync::mpsc::channel::<String>(COMMAND_QUEUE);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
        let _ = tx.blocking_send("quit".into());
    });
    let mut tick = tokio::time::interval(REPORT_EVERY);
    let mut all_up = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let line = report(&stats.borrow(), started);
                println!("{}", line.0);
                if line.1 == n && !all_up {
                    println!("{{\"event\":\"all-up\",\"t\":{:.3}}}", started.elapsed().as_secs_f64());
                }
                all_up = line.1 == n;
            }
            Some(cmd) = commands.recv() => {
                let mut w = cmd.split_whitespace();
                match (w.next(), w.next()) {
                    (Some("echo"), k) => {
                        let k = k.and_then(|k| k.parse().ok()).unwrap_or(n).min(n);
                        let (ok, failed) = echo_checks(&ports, k, host).await;
                        println!("{{\"event\":\"echo\",\"checked\":{k},\"ok\":{ok},\"failed\":{failed:?}}}");
                    }
                    (Some("quit"), _) => break,
                    _ => println!("{{\"event\":\"error\",\"what\":\"unknown command\"}}"),
                }
            }
        }
    }
    let _ = stop.send(true);
    spawner.abort();
    let _ = tokio::time::timeout(QUIT_GRACE, async {
        if let Ok(mut d) = spawner.await {
            while d.join_next().await.is_some() {}
        }
    })
    .await;
    println!("{}", report(&stats.borrow(), started).0);
    Ok(())
}

/// One progress line, and the number of devices up.
fn report(s: &Stats, started: Instant) -> (String, usize) {
    let up = s.up.iter().filter(|u| **u).count();
    let failures: Vec<String> = s
        .failures
        .iter()
        .map(|(k, v)| format!("\"{k}\":{v}"))
        .collect();
    (
        format!(
            "{{\"t\":{:.3},\"up\":{up},\"ever\":{},\"attempts\":{},\"failures\":{{{}}},\"rss_kib\":{}}}",
            started.elapsed().as_secs_f64(),
            s.ever,
            s.attempts,
            failures.join(","),
            rss_kib()
        ),
        up,
    )
}

/// Echo round trips through `k` devices' forwards, spread over the fleet:
/// (passed, ports that failed).
async fn echo_checks(ports: &[u16], k: usize, host: &str) -> (usize, Vec<u16>) {
    let step = (ports.len() / k.max(1)).max(1);
    let sample: Vec<u16> = ports.iter().step_by(step).take(k).copied().collect();
    let gate = Rc::new(Semaphore::new(ECHO_PARALLEL));
    let mut checks = tokio::task::JoinSet::new();
    for port in sample {
        let gate = gate.clone();
        let host = host.to_string();
        checks.spawn_local(async move {
            let _permit = gate.acquire().await;
            let ok = tokio::time::timeout(ECHO_TIMEOUT, echo_once(&host, port)).await;
            (port, matches!(ok, Ok(Ok(true))))
        });
    }
    let (mut ok, mut failed) = (0, Vec::new());
    while let Some(r) = checks.join_next().await {
        match r {
            Ok((_, true)) => ok += 1,
            Ok((port, false)) => failed.push(port),
            Err(_) => failed.push(0),
        }
    }
    failed.sort_unstable();
    (ok, failed)
}

async fn echo_once(host: &str, port: u16) -> std::io::Result<bool> {
    let mut s = TcpStream::connect((host, port)).await?;
    let mut data = vec![0u8; ECHO_BYTES];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut data)
        .map_err(|_| std::io::Error::other("no random"))?;
    s.write_all(&data).await?;
    let mut back = vec![0u8; ECHO_BYTES];
    s.read_exact(&mut back).await?;
    Ok(back == data)
}

/// The devices' shared target: echoes what it reads.
async fn serve_echo(listener: TcpListener) {
    let gate = std::sync::Arc::new(Semaphore::new(MAX_ECHO_CONNS));
    loop {
        let Ok((mut s, _)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = gate.clone().acquire_owned().await else {
            return;
        };
        tokio::task::spawn_local(async move {
            let _permit = permit;
            let (mut r, mut w) = s.split();
            let _ = tokio::io::copy(&mut r, &mut w).await;
        });
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// Sockets: one per device plus echo connections; raise the soft limit to the hard one.
fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}
