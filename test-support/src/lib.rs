//! Test harness: real OpenSSH `sshd` jails and device sshds on free loopback
//! ports, the agent as a child process, echo targets, and readiness waits with
//! deadlines. Everything is cleaned up on drop, also when a test fails.
//!
//! The agent binary is `JAILBIRD_TEST_BIN` if set (e.g. a cross-built ARM
//! binary), else the one cargo built; `JAILBIRD_TEST_RUNNER` (e.g.
//! `qemu-arm-static -cpu arm1176`) is put in front of it.
#![allow(dead_code)]
// `new()` starts real processes and namespaces: a `Default` would hide that.
#![allow(clippy::new_without_default)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Generous deadline for things that normally take milliseconds (slow CI, qemu).
pub const READY: Duration = Duration::from_secs(30);

/// Polls `f` until it returns `Some`, or panics with `what` at the deadline.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory removed on drop. Mode 0755 so sshd, reading
/// authorized_keys as the jail user, can traverse it.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "jailbird-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        run_ok(Command::new("chmod").arg("0755").arg(&p));
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn is_root() -> bool {
    run_ok(Command::new("id").arg("-u")).trim() == "0"
}

fn current_user() -> String {
    run_ok(Command::new("id").arg("-un")).trim().to_string()
}

/// The unprivileged account the jail lets in (created by scripts/test-setup.sh).
pub fn jail_user() -> String {
    if !is_root() {
        return current_user();
    }
    let u = std::env::var("JAILBIRD_TEST_JAIL_USER").unwrap_or_else(|_| "jbtunnel".into());
    let ok = Command::new("id")
        .arg(&u)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "jail user {u} does not exist: run scripts/test-setup.sh first"
    );
    u
}

/// The account the operator logs into on the device sshd.
pub fn device_user() -> String {
    if is_root() {
        "root".into()
    } else {
        current_user()
    }
}

pub fn sshd_path() -> String {
    for p in ["/usr/sbin/sshd", "/usr/local/sbin/sshd"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("no sshd found: run scripts/test-setup.sh (installs openssh-server)")
}

/// A free loopback TCP port (the kernel picks it; the caller binds it soon after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn port_answers(port: u16) -> bool {
    TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_ok()
}

/// An ed25519 key pair made by ssh-keygen: (private key path, public key line).
pub fn keygen(dir: &TempDir, name: &str) -> (PathBuf, String) {
    let p = dir.path(name);
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
            .arg(&p),
    );
    let public = std::fs::read_to_string(p.with_extension("pub")).unwrap();
    (p, public.trim().to_string())
}

/// How a jail sshd is locked down (seed 000), with knobs tests turn.
#[derive(Clone)]
pub struct JailOpts {
    /// The one port `PermitListen` allows.
    pub permit_listen: u16,
    /// authorized_keys contents.
    pub authorized_keys: String,
    /// `ClientAliveInterval` seconds (0 = off) and `ClientAliveCountMax`.
    pub client_alive: (u32, u32),
    /// Port to listen on (0 = pick a free one).
    pub port: u16,
    /// `PermitListen any` instead of the one port (for `-R 0`).
    pub permit_any: bool,
    /// `AllowStreamLocalForwarding remote` + `StreamLocalBindUnlink yes` (seed 003).
    pub streamlocal: bool,
    /// `AllowTcpForwarding yes` + `PermitOpen` this one `host:port` (for `-L`);
    /// `None` keeps the jail remote-only with `PermitOpen none`.
    pub permit_open: Option<String>,
    /// Run sshd inside this network namespace, listening on this address
    /// (see [`NetPair`]); `None` is loopback in the test's own namespace.
    pub netns: Option<(String, String)>,
    /// More sshd_config lines (e.g. `HostCertificate PATH`).
    pub extra: String,
}

impl JailOpts {
    /// A jail that lets `authorized_keys` forward `permit_listen` and nothing else.
    pub fn new(permit_listen: u16, authorized_keys: &str) -> JailOpts {
        JailOpts {
            permit_listen,
            authorized_keys: authorized_keys.trim().to_string(),
            client_alive: (0, 3),
            port: 0,
            permit_any: false,
            streamlocal: false,
            permit_open: None,
            netns: None,
            extra: String::new(),
        }
    }
}

/// A running OpenSSH jail: key-only, no root, one user with a /bin/false shell,
/// remote forwarding only, one PermitListen port, no TTY, ForceCommand /bin/false.
pub struct Jail {
    pub dir: TempDir,
    pub port: u16,
    pub opts: JailOpts,
    pub host_key_line: String,
    pub user: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Jail {
    pub fn start(opts: JailOpts) -> Jail {
        let dir = TempDir::new("jail");
        let (_, host_key_line) = keygen(&dir, "ssh_host_ed25519_key");
        let mut jail = Jail {
            dir,
            port: opts.port,
            opts,
            host_key_line,
            user: jail_user(),
            child: None,
            log: PathBuf::new(),
        };
        jail.spawn();
        jail
    }

    /// Starts (or restarts, same port and host key) the sshd process.
    pub fn spawn(&mut self) {
        std::fs::write(
            self.dir.path("authorized_keys"),
            format!("{}\n", self.opts.authorized_keys),
        )
        .unwrap();
        let mut last_err = String::new();
        for _ in 0..10 {
            let port = if self.opts.port != 0 {
                self.opts.port
            } else if self.port != 0 {
                self.port
            } else {
                free_port()
            };
            let (ci, cm) = self.opts.client_alive;
            let addr = self
                .opts
                .netns
                .as_ref()
                .map_or("127.0.0.1", |n| n.1.as_str());
            let config = format!(
                "ListenAddress {addr}:{port}\n\
                 HostKey {hk}\n\
                 PidFile none\n\
                 AuthorizedKeysFile {ak}\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PubkeyAuthentication yes\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PermitRootLogin no\n\
                 AllowUsers {user}\n\
                 AllowTcpForwarding {atf}\n\
                 GatewayPorts no\n\
                 PermitListen {pl}\n\
                 PermitOpen {po}\n\
                 AllowStreamLocalForwarding {sl}\n\
                 StreamLocalBindUnlink {slu}\n\
                 AllowAgentForwarding no\n\
                 X11Forwarding no\n\
                 PermitTunnel no\n\
                 PermitTTY no\n\
                 ForceCommand /bin/false\n\
                 ClientAliveInterval {ci}\n\
                 ClientAliveCountMax {cm}\n\
                 LogLevel VERBOSE\n{extra}",
                hk = self.dir.path("ssh_host_ed25519_key").display(),
                extra = self.opts.extra,
                ak = self.dir.path("authorized_keys").display(),
                user = self.user,
                sl = if self.opts.streamlocal {
                    "remote"
                } else {
                    "no"
                },
                slu = if self.opts.streamlocal { "yes" } else { "no" },
                atf = if self.opts.permit_open.is_some() {
                    "yes"
                } else {
                    "remote"
                },
                po = self.opts.permit_open.as_deref().unwrap_or("none"),
                pl = if self.opts.permit_any {
                    "any".to_string()
                } else {
                    self.opts.permit_listen.to_string()
                },
            );
            let cfg = self.dir.path("sshd_config");
            std::fs::write(&cfg, config).unwrap();
            self.log = self.dir.path(&format!("sshd-{port}.log"));
            let ns = self.opts.netns.as_ref().map(|n| n.0.as_str());
            let child = start_sshd(&cfg, &self.log, ns);
            match wait_sshd_ready(child, &self.log, port, ns.is_none()) {
                Ok(child) => {
                    self.port = port;
                    self.child = Some(child);
                    return;
                }
                Err(e) => last_err = e,
            }
            if self.opts.port != 0 || self.port != 0 {
                // A fixed port (restart) that is still busy: wait and retry the same port.
                thread::sleep(Duration::from_millis(200));
            }
        }
        panic!("jail sshd did not start: {last_err}");
    }

    /// Kills the whole jail: listener and every per-connection process (SIGKILL, no goodbye).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(c.id());
            let _ = c.wait();
        }
    }

    /// The known_hosts line for this jail.
    pub fn known_hosts_line(&self) -> String {
        // OpenSSH writes the default port without brackets.
        if self.port == 22 {
            format!("{} {}", self.addr(), self.host_key_line)
        } else {
            format!("[{}]:{} {}", self.addr(), self.port, self.host_key_line)
        }
    }

    /// The address sshd listens on.
    pub fn addr(&self) -> &str {
        self.opts
            .netns
            .as_ref()
            .map_or("127.0.0.1", |n| n.1.as_str())
    }

    /// A known_hosts file naming this jail.
    pub fn known_hosts_file(&self, dir: &TempDir) -> PathBuf {
        let p = dir.path("known_hosts");
        std::fs::write(&p, format!("{}\n", self.known_hosts_line())).unwrap();
        p
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The listener's pid (also the process group of every per-connection process).
    pub fn jail_pid(&self) -> u32 {
        self.child.as_ref().expect("jail running").id()
    }

    pub fn destination(&self) -> String {
        format!("{}@{}:{}", self.user, self.addr(), self.port)
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Every descendant of `pid` (sshd's per-connection processes start their own
/// sessions, so the process group alone does not find them).
pub fn descendants(pid: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the ")" of the command name: state, ppid, ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r.to_string()) else {
            continue;
        };
        if let Some(ppid) = rest
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u32>().ok())
        {
            parent_of.push((p, ppid));
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![pid];
    while let Some(p) = frontier.pop() {
        for (child, _) in parent_of.iter().filter(|(_, pp)| *pp == p) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}

/// SIGKILL to a process, its group and every descendant.
pub fn kill_group(pgid: u32) {
    let mut pids: Vec<String> = descendants(pgid).iter().map(u32::to_string).collect();
    pids.push(pgid.to_string());
    let _ = Command::new("kill")
        .args(["-s", "KILL", "--"])
        .arg(format!("-{pgid}"))
        .args(&pids)
        .stderr(Stdio::null())
        .status();
}

pub fn start_sshd(cfg: &Path, log: &Path, netns: Option<&str>) -> Child {
    let _ = std::fs::create_dir_all("/run/sshd");
    in_netns(netns, Command::new(sshd_path()))
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .process_group(0)
        .spawn()
        .expect("spawn sshd")
}

/// `cmd`, run inside network namespace `netns` (via `ip netns exec`) if given.
pub fn in_netns(netns: Option<&str>, cmd: Command) -> Command {
    let Some(ns) = netns else { return cmd };
    let mut c = Command::new("ip");
    c.args(["netns", "exec", ns]).arg(cmd.get_program());
    c.args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c
}

/// Waits for sshd's "Server listening" line and, if `probe`, for the port to
/// answer (a listener inside another namespace cannot be probed from here).
pub fn wait_sshd_ready(
    mut child: Child,
    log: &Path,
    port: u16,
    probe: bool,
) -> Result<Child, String> {
    let deadline = Instant::now() + READY;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "sshd exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            ));
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("Server listening") && (!probe || port_answers(port)) {
            return Ok(child);
        }
        if Instant::now() > deadline {
            kill_group(child.id());
            let _ = child.wait();
            return Err(format!("sshd on port {port} not ready: {text}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// An ordinary sshd standing for the device's own sshd (the tunnel's target).
pub struct DeviceSshd {
    pub dir: TempDir,
    pub port: u16,
    pub client_key: PathBuf,
    child: Option<Child>,
}

impl DeviceSshd {
    pub fn start() -> DeviceSshd {
        Self::start_with(|_| String::new())
    }

    /// Starts it with more sshd_config lines, made from its directory (for
    /// files placed there before sshd starts).
    pub fn start_with(extra: impl Fn(&TempDir) -> String) -> DeviceSshd {
        let dir = TempDir::new("device");
        let extra = extra(&dir);
        keygen(&dir, "ssh_host_ed25519_key");
        let (client_key, client_pub) = keygen(&dir, "operator");
        std::fs::write(dir.path("authorized_keys"), format!("{client_pub}\n")).unwrap();
        for _ in 0..10 {
            let port = free_port();
            let cfg = dir.path("sshd_config");
            std::fs::write(
                &cfg,
                format!(
                    "ListenAddress 127.0.0.1:{port}\nHostKey {}\nPidFile none\nAuthorizedKeysFile {}\nStrictModes no\nUsePAM no\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\nAllowUsers {}\nLogLevel VERBOSE\n{extra}",
                    dir.path("ssh_host_ed25519_key").display(),
                    dir.path("authorized_keys").display(),
                    device_user()
                ),
            )
            .unwrap();
            let log = dir.path("sshd.log");
            if let Ok(child) = wait_sshd_ready(start_sshd(&cfg, &log, None), &log, port, true) {
                return DeviceSshd {
                    dir,
                    port,
                    client_key,
                    child: Some(child),
                };
            }
        }
        panic!("device sshd did not start");
    }
}

/// A real `ssh` client that trusts nothing it is not told, asks nothing, and
/// authenticates with `key` only: add the route, destination and command.
pub fn ssh_client(key: &Path) -> Command {
    let mut c = Command::new("ssh");
    c.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
    ])
    .args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .arg("-i")
    .arg(key)
    .stdin(Stdio::null());
    c
}

impl DeviceSshd {
    /// Runs `command` on this device as the operator with a real `ssh` client,
    /// reaching it through `route` (e.g. `["-p", "PORT"]` for the jail's port, or
    /// `["-o", "ProxyCommand=nc -U SOCKET"]`) and `host`. Returns stdout.
    pub fn operator_ssh(&self, route: &[&str], host: &str, command: &str) -> String {
        let out = ssh_client(&self.client_key)
            .args(route)
            .arg(format!("{}@{host}", device_user()))
            .arg(command)
            .output()
            .expect("run ssh");
        assert!(
            out.status.success(),
            "ssh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl DeviceSshd {
    /// What this sshd logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path("sshd.log")).unwrap_or_default()
    }
}

impl Drop for DeviceSshd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(c.id());
            let _ = c.wait();
        }
    }
}

/// An echo server on a free loopback port, one thread per connection.
pub struct Echo {
    pub port: u16,
    pub accepted: Arc<AtomicUsize>,
}

impl Echo {
    pub fn start() -> Echo {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                count.fetch_add(1, Ordering::SeqCst);
                thread::spawn(move || echo_until_eof(&mut s));
            }
        });
        Echo { port, accepted }
    }
}

/// A process's resident memory in KiB (VmRSS).
pub fn vm_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends back every byte read from `s` until EOF or an error, then half-closes.
pub fn echo_until_eof(s: &mut TcpStream) {
    let mut buf = [0u8; 32 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if s.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = s.shutdown(Shutdown::Write);
}

/// Deterministic pseudo-random bytes (xorshift), so a corrupted byte cannot hide.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub fn sha256(b: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, b)
        .as_ref()
        .to_vec()
}

/// Sends `data` through `port` to an echo target and returns what came back
/// (written and read concurrently, then half-closed to end the echo).
pub fn echo_roundtrip(port: u16, data: &[u8]) -> Vec<u8> {
    try_echo_roundtrip(port, data).unwrap_or_else(|e| panic!("echo through port {port}: {e}"))
}

/// [`echo_roundtrip`] that reports a refused or reset connection instead of
/// panicking (for waits on a condition, e.g. a channel slot being freed).
pub fn try_echo_roundtrip(port: u16, data: &[u8]) -> std::io::Result<Vec<u8>> {
    let s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut w = s.try_clone()?;
    let data = data.to_vec();
    let writer = thread::spawn(move || {
        let _ = w.write_all(&data);
        let _ = w.shutdown(Shutdown::Write);
    });
    let mut back = Vec::new();
    let mut r = s;
    let read = r.read_to_end(&mut back);
    let _ = writer.join();
    read.map(|_| back)
}

/// The agent process, its stderr collected line by line.
pub struct Agent {
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

/// The agent cargo built: this package's binary, or, from another workspace
/// member's tests (warden's), the `jailbird` beside that test binary.
pub fn built_agent() -> String {
    if let Some(p) = option_env!("CARGO_BIN_EXE_jailbird") {
        return p.to_string();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let p = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .join("jailbird");
    assert!(
        p.exists(),
        "{} missing: build the agent first (cargo test --workspace builds it)",
        p.display()
    );
    p.display().to_string()
}

pub fn agent_command() -> Command {
    let bin = std::env::var("JAILBIRD_TEST_BIN").unwrap_or_else(|_| built_agent());
    let runner = std::env::var("JAILBIRD_TEST_RUNNER").unwrap_or_default();
    let mut words = runner.split_whitespace();
    let mut cmd = match words.next() {
        Some(r) => {
            let mut c = Command::new(r);
            c.args(words).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    // Tests control the environment: nothing from the caller's shell leaks in.
    for (k, _) in std::env::vars() {
        // JOURNAL_STREAM would switch the log format, RUNTIME_DIRECTORY the status file.
        if k.starts_with("JAILBIRD_")
            || k.starts_with("SSH_")
            || ["RUST_LOG", "JOURNAL_STREAM", "RUNTIME_DIRECTORY"].contains(&k.as_str())
        {
            cmd.env_remove(k);
        }
    }
    cmd
}

impl Agent {
    /// Starts `jailbird` with `args` and extra environment.
    pub fn spawn(args: &[&str], env: &[(&str, &str)]) -> Agent {
        Self::spawn_in(None, args, env)
    }

    /// [`Agent::spawn`] inside network namespace `netns`.
    pub fn spawn_in(netns: Option<&str>, args: &[&str], env: &[(&str, &str)]) -> Agent {
        let mut cmd = agent_command();
        cmd.args(args);
        let mut cmd = in_netns(netns, cmd);
        cmd.envs(env.iter().copied())
            .env(
                "JAILBIRD_LOG",
                std::env::var("JAILBIRD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn jailbird");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let stderr = child.stderr.take().unwrap();
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[agent] {line}");
                sink.lock().unwrap().push(line);
            }
        });
        Agent { child, lines }
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub fn count(&self, needle: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }

    /// Waits until `n` log lines contain `needle`; returns the last of them.
    pub fn wait_log_n(&self, needle: &str, n: usize, timeout: Duration) -> String {
        wait_until(
            timeout,
            &format!("{n} agent log line(s) with {needle:?}"),
            || {
                let lines = self.lines.lock().unwrap();
                let hits: Vec<_> = lines.iter().filter(|l| l.contains(needle)).collect();
                (hits.len() >= n).then(|| hits[n - 1].clone())
            },
        )
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        self.wait_log_n(needle, 1, timeout)
    }

    pub fn signal(&self, sig: &str) {
        run_ok(
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(self.child.id().to_string()),
        );
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        wait_until(timeout, "agent exit", || self.child.try_wait().unwrap())
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `jailbird ARGS` to completion: (status, stdout, stderr).
pub fn jailbird(args: &[&str]) -> (ExitStatus, String, String) {
    let out = agent_command().args(args).output().expect("run jailbird");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A jail whose authorized_keys holds the line `jailbird authorize` printed for
/// a fresh state file; returns the jail, the state dir and the listen port.
pub struct Setup {
    pub dir: TempDir,
    pub state: String,
    pub jail: Jail,
    pub listen: u16,
}

/// A fresh state file in a new directory and the `jailbird authorize --listen`
/// line for a free port: (dir, state path, port, authorized_keys line).
pub fn authorized_device(tag: &str) -> (TempDir, String, u16, String) {
    let dir = TempDir::new(tag);
    let state = dir.path("identity").display().to_string();
    let listen = free_port();
    let (status, line, err) = jailbird(&[
        "authorize",
        "--state",
        &state,
        "--listen",
        &listen.to_string(),
    ]);
    assert!(status.success(), "authorize failed: {err}");
    (dir, state, listen, line)
}

impl Setup {
    pub fn new() -> Setup {
        Self::with(|_| {})
    }

    pub fn with(tweak: impl FnOnce(&mut JailOpts)) -> Setup {
        let (dir, state, listen, line) = authorized_device("agent");
        let mut opts = JailOpts::new(listen, &line);
        tweak(&mut opts);
        let jail = Jail::start(opts);
        Setup {
            dir,
            state,
            jail,
            listen,
        }
    }

    /// Standard run arguments: state, known_hosts, fast keepalives, `-R listen:127.0.0.1:target`.
    pub fn run_args(&self, target_port: u16) -> Vec<String> {
        let kh = self.jail.known_hosts_file(&self.dir);
        vec![
            "run".into(),
            "--state".into(),
            self.state.clone(),
            "--known-hosts".into(),
            kh.display().to_string(),
            "--status-file".into(),
            self.dir.path("status").display().to_string(),
            "-R".into(),
            format!("{}:127.0.0.1:{target_port}", self.listen),
            self.jail.destination(),
        ]
    }

    pub fn spawn_agent(&self, target_port: u16, extra: &[&str]) -> Agent {
        let mut args = self.run_args(target_port);
        let dest = args.pop().unwrap();
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push(dest);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        Agent::spawn(&refs, &[])
    }
}

/// Two network namespaces made for one test, joined by a veth pair: the agent's
/// (`AGENT_ADDR`) and the jail's (`JAIL_ADDR`). Addresses exist only inside
/// them, so parallel tests do not collide. Both are deleted on drop; declare a
/// `NetPair` before the processes that run in it, so they are dropped first.
pub struct NetPair {
    pub agent: String,
    pub jail: String,
    veth_agent: String,
    veth_jail: String,
}

impl NetPair {
    pub const AGENT_ADDR: &'static str = "10.77.0.2";
    pub const JAIL_ADDR: &'static str = "10.77.0.1";

    pub fn new() -> NetPair {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let id = format!(
            "{}{}",
            std::process::id() % 100_000,
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let n = NetPair {
            agent: format!("jbtest-{id}-agent"),
            jail: format!("jbtest-{id}-jail"),
            veth_agent: format!("jbv{id}a"),
            veth_jail: format!("jbv{id}j"),
        };
        let ip = |args: &[&str]| {
            run_ok(Command::new("ip").args(args));
        };
        ip(&["netns", "add", &n.agent]);
        ip(&["netns", "add", &n.jail]);
        ip(&[
            "link",
            "add",
            &n.veth_agent,
            "type",
            "veth",
            "peer",
            "name",
            &n.veth_jail,
        ]);
        ip(&["link", "set", &n.veth_agent, "netns", &n.agent]);
        ip(&["link", "set", &n.veth_jail, "netns", &n.jail]);
        for (ns, dev, addr) in [
            (&n.agent, &n.veth_agent, Self::AGENT_ADDR),
            (&n.jail, &n.veth_jail, Self::JAIL_ADDR),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
        }
        n
    }

    /// Drops every packet both ways (a blackhole qdisc on each end): no RST,
    /// no ICMP, exactly what a dead uplink looks like.
    pub fn cut(&self) {
        for (ns, dev) in [
            (&self.agent, &self.veth_agent),
            (&self.jail, &self.veth_jail),
        ] {
            run_ok(Command::new("tc").args([
                "-n",
                ns,
                "qdisc",
                "add",
                "dev",
                dev,
                "root",
                "blackhole",
            ]));
        }
    }

    /// Gives the agent's end a new address, as a NAT rebinding or a new DHCP
    /// lease after a power cut does: packets for the old flows get no answer at
    /// all (not even a RST), so only the jail's ClientAlive timer ends them.
    pub fn readdress_agent(&self, addr: &str) {
        let (ns, dev) = (&self.agent, &self.veth_agent);
        run_ok(Command::new("ip").args([
            "-n",
            ns,
            "addr",
            "del",
            &format!("{}/24", Self::AGENT_ADDR),
            "dev",
            dev,
        ]));
        run_ok(Command::new("ip").args([
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            dev,
        ]));
    }

    /// Undoes [`NetPair::cut`].
    pub fn heal(&self) {
        for (ns, dev) in [
            (&self.agent, &self.veth_agent),
            (&self.jail, &self.veth_jail),
        ] {
            run_ok(Command::new("tc").args(["-n", ns, "qdisc", "del", "dev", dev, "root"]));
        }
    }

    /// An echo server on 127.0.0.1:`port` inside `ns` (python3, one thread per connection).
    pub fn echo(ns: &str, port: u16) -> NsChild {
        let script = format!(
            "import socket,threading,sys\n\
             l=socket.socket();l.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             l.bind(('127.0.0.1',{port}));l.listen(64)\n\
             print('ready',flush=True)\n\
             def serve(c):\n\
             \x20while True:\n\
             \x20\x20b=c.recv(65536)\n\
             \x20\x20if not b: break\n\
             \x20\x20c.sendall(b)\n\
             \x20c.shutdown(socket.SHUT_WR)\n\
             while True:\n\
             \x20c,_=l.accept();threading.Thread(target=serve,args=(c,),daemon=True).start()\n"
        );
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(script);
        let mut child = in_netns(Some(ns), cmd)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn python3 echo");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "echo server in {ns} did not start");
        NsChild(child)
    }

    /// Sends `len` pseudo-random bytes to 127.0.0.1:`port` inside `ns` and checks
    /// they come back intact within `timeout`. Err carries what went wrong.
    pub fn roundtrip(ns: &str, port: u16, len: usize, timeout: Duration) -> Result<(), String> {
        let script = format!(
            "import socket,os,hashlib,threading,sys\n\
             d=os.urandom({len});s=socket.create_connection(('127.0.0.1',{port}),timeout={t})\n\
             def w():\n\
             \x20s.sendall(d);s.shutdown(socket.SHUT_WR)\n\
             threading.Thread(target=w,daemon=True).start()\n\
             b=bytearray()\n\
             while True:\n\
             \x20x=s.recv(65536)\n\
             \x20if not x: break\n\
             \x20b+=x\n\
             sys.exit(0 if hashlib.sha256(b).digest()==hashlib.sha256(d).digest() else 3)\n",
            t = timeout.as_secs_f32()
        );
        let mut cmd = Command::new("python3");
        cmd.arg("-c").arg(script);
        let out = in_netns(Some(ns), cmd).output().expect("run python3");
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .last()
                    .unwrap_or("")
            ))
        }
    }
}

impl Drop for NetPair {
    fn drop(&mut self) {
        for ns in [&self.agent, &self.jail] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A helper process in a namespace, killed (with its group) on drop.
pub struct NsChild(pub Child);

impl Drop for NsChild {
    fn drop(&mut self) {
        kill_group(self.0.id());
        let _ = self.0.wait();
    }
}
