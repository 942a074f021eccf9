//! `--proxy`: the jail reached through an HTTP CONNECT proxy. A real squid
//! (Debian's, started per test on a free loopback port with a generated
//! config: no caching, CONNECT only to one port, Basic auth through
//! basic_ncsa_auth) carries the tunnel end to end and refuses it with 407 and
//! 403; tiny fake proxies close at once or answer garbage or an endless head.
//! Every failure is one line naming its cause and is retried; the credentials
//! appear neither in the agent's stderr nor in its status file.
#![cfg(feature = "proxy")]

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const USER: &str = "jbproxyuser";
const PASSWORD: &str = "pw-Zq81x:s@fe";
/// PASSWORD percent-encoded for the URL.
const PASSWORD_IN_URL: &str = "pw-Zq81x%3As%40fe";
/// base64("jbproxyuser:pw-Zq81x:s@fe"), as the Proxy-Authorization header carries it.
const BASIC: &str = "amJwcm94eXVzZXI6cHctWnE4MXg6c0BmZQ==";

const SQUID: &str = "/usr/sbin/squid";
const NCSA_AUTH: &str = "/usr/lib/squid/basic_ncsa_auth";

/// A squid on a free loopback port that lets USER:PASSWORD CONNECT to
/// `allowed_port` and nothing else; killed (with its helpers) on drop.
struct Squid {
    dir: TempDir,
    port: u16,
    child: Child,
}

impl Squid {
    fn start(allowed_port: u16) -> Squid {
        for p in [SQUID, NCSA_AUTH] {
            assert!(
                Path::new(p).exists(),
                "{p} missing: run scripts/test-setup.sh (installs squid)"
            );
        }
        let dir = TempDir::new("squid");
        let hash = run_ok(Command::new("openssl").args(["passwd", "-apr1", PASSWORD]));
        std::fs::write(dir.path("passwd"), format!("{USER}:{}\n", hash.trim())).unwrap();
        let d = |name: &str| dir.path(name).display().to_string();
        let port = free_port();
        // Run as root, squid drops to cache_effective_user; unprivileged, it
        // stays who it is.
        let user = if is_root() {
            "cache_effective_user proxy\n"
        } else {
            ""
        };
        let config = format!(
            "http_port 127.0.0.1:{port}\n\
             visible_hostname jailbird-test\n\
             {user}\
             pid_filename {pid}\n\
             cache_log {cache_log}\n\
             access_log stdio:{access_log}\n\
             cache_store_log none\n\
             coredump_dir {dir}\n\
             cache deny all\n\
             cache_mem 1 MB\n\
             netdb_filename none\n\
             pinger_enable off\n\
             dns_nameservers 127.0.0.1\n\
             shutdown_lifetime 0 seconds\n\
             auth_param basic program {NCSA_AUTH} {passwd}\n\
             auth_param basic children 1 startup=1 idle=1\n\
             auth_param basic realm jailbird-test\n\
             acl CONNECT method CONNECT\n\
             acl jail_port port {allowed_port}\n\
             acl authed proxy_auth REQUIRED\n\
             http_access deny !CONNECT\n\
             http_access deny !jail_port\n\
             http_access allow authed\n\
             http_access deny all\n",
            pid = d("squid.pid"),
            cache_log = d("cache.log"),
            access_log = d("access.log"),
            dir = dir.0.display(),
            passwd = d("passwd"),
        );
        std::fs::write(dir.path("squid.conf"), config).unwrap();
        if is_root() {
            run_ok(
                Command::new("chown")
                    .args(["-R", "proxy:proxy"])
                    .arg(&dir.0),
            );
        }
        let mut child = Command::new(SQUID)
            .args(["-N", "-f"])
            .arg(dir.path("squid.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start squid");
        wait_until(READY, "squid answering on its port", || {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "squid exited ({status}): {}",
                    std::fs::read_to_string(dir.path("cache.log")).unwrap_or_default()
                );
            }
            port_answers(port).then_some(())
        });
        Squid { dir, port, child }
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path("access.log")).unwrap_or_default()
    }
}

impl Drop for Squid {
    fn drop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// `--proxy` with the right credentials for a proxy on `port`.
fn proxy_url(port: u16) -> String {
    format!("http://{USER}:{PASSWORD_IN_URL}@127.0.0.1:{port}")
}

/// The agent for `s`, with `extra` words before the destination and `env`.
fn spawn(s: &Setup, target: u16, extra: &[&str], env: &[(&str, &str)]) -> Agent {
    let mut args = s.run_args(target);
    let dest = args.pop().unwrap();
    args.extend(extra.iter().map(|w| w.to_string()));
    args.push(dest);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Agent::spawn(&refs, env)
}

/// Neither the password, nor the user, nor their Basic encoding, in the
/// agent's stderr or its status file.
fn assert_no_credentials(agent: &Agent, status: &Path) {
    let status = std::fs::read_to_string(status).unwrap_or_default();
    for (what, text) in [
        ("stderr", agent.lines().join("\n")),
        ("status file", status),
    ] {
        for secret in [PASSWORD, PASSWORD_IN_URL, "pw-Zq81x", USER, BASIC] {
            assert!(!text.contains(secret), "{what} shows {secret:?}:\n{text}");
        }
    }
}

/// Waits for two warning lines holding every `needles` and `retrying in`
/// (one line per failure, retried), and returns the first.
fn two_attempts(agent: &Agent, needles: &[&str]) -> String {
    let first = agent.wait_log_n(needles[0], 1, READY);
    agent.wait_log_n(needles[0], 2, READY);
    for n in needles.iter().chain(&["retrying in"]) {
        assert!(first.contains(n), "{n:?} not in {first:?}");
    }
    first
}

#[test]
fn up_through_squid_and_the_forward_reaches_the_target() {
    let s = Setup::new();
    let squid = Squid::start(s.jail.port);
    let echo = Echo::start();
    // Through the environment variable (the flag is used below).
    let mut agent = spawn(
        &s,
        echo.port,
        &[],
        &[("JAILBIRD_PROXY", &proxy_url(squid.port))],
    );
    let up = agent.wait_log("tunnel up", READY);
    assert!(
        up.contains(&format!("jail=127.0.0.1:{}", s.jail.port))
            && up.contains(&format!("proxy=http://127.0.0.1:{}", squid.port)),
        "{up}"
    );
    let data = pattern(1 << 20, 7);
    assert_eq!(
        sha256(&echo_roundtrip(s.listen, &data)),
        sha256(&data),
        "data through the tunnel via squid"
    );
    assert!(echo.accepted.load(Ordering::SeqCst) >= 1);
    let status = s.dir.path("status");
    let text = std::fs::read_to_string(&status).unwrap();
    assert!(
        text.starts_with("state=up\n")
            && text.contains(&format!("proxy=http://127.0.0.1:{}\n", squid.port)),
        "{text}"
    );
    assert_no_credentials(&agent, &status);
    // squid carried it: it logs the CONNECT to the jail once the tunnel ends.
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(5)).success());
    wait_until(READY, "squid's log line for the tunnel", || {
        let log = squid.access_log();
        log.lines()
            .find(|l| {
                l.contains("TCP_TUNNEL/200")
                    && l.contains(&format!("CONNECT 127.0.0.1:{}", s.jail.port))
            })
            .map(drop)
    });
}

#[test]
fn the_host_key_is_checked_against_the_jail_not_the_proxy() {
    let s = Setup::new();
    let squid = Squid::start(s.jail.port);
    // known_hosts names the jail's key under the proxy's address and port only.
    let kh = s.dir.path("known_hosts_proxy");
    std::fs::write(
        &kh,
        format!("[127.0.0.1]:{} {}\n", squid.port, s.jail.host_key_line),
    )
    .unwrap();
    let mut args = s.run_args(9);
    let i = args.iter().position(|a| a == "--known-hosts").unwrap();
    args[i + 1] = kh.display().to_string();
    let dest = args.pop().unwrap();
    let url = proxy_url(squid.port);
    args.extend(["--proxy".to_string(), url, dest]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::spawn(&refs, &[]);
    let line = agent.wait_log("is not known", READY);
    assert!(
        line.contains(&format!("jail 127.0.0.1:{} host key", s.jail.port)),
        "{line}"
    );
    assert_eq!(agent.count("tunnel up"), 0);
}

#[test]
fn wrong_credentials_are_one_line_naming_407_and_retried() {
    let s = Setup::new();
    let squid = Squid::start(s.jail.port);
    let url = format!("http://{USER}:{PASSWORD_IN_URL}x@127.0.0.1:{}", squid.port);
    let agent = spawn(&s, 9, &["--proxy", &url], &[]);
    let line = two_attempts(
        &agent,
        &[
            "407 Proxy Authentication Required",
            "refused the user and password",
            &format!("CONNECT to jail 127.0.0.1:{}", s.jail.port),
        ],
    );
    assert!(line.contains(&format!("proxy http://127.0.0.1:{}", squid.port)));
    let status = s.dir.path("status");
    wait_until(READY, "state=down naming 407", || {
        let t = std::fs::read_to_string(&status).unwrap_or_default();
        (t.starts_with("state=down\n") && t.contains("407")).then_some(())
    });
    assert_no_credentials(&agent, &status);
    // Without any credentials: the line says the proxy wants some.
    let agent = spawn(
        &s,
        9,
        &["--proxy", &format!("http://127.0.0.1:{}", squid.port)],
        &[],
    );
    two_attempts(&agent, &["407", "wants a user and password"]);
}

#[test]
fn a_port_the_proxy_forbids_is_one_line_naming_403() {
    let s = Setup::new();
    // squid allows CONNECT to another port only.
    let squid = Squid::start(free_port());
    let agent = spawn(&s, 9, &["--proxy", &proxy_url(squid.port)], &[]);
    two_attempts(
        &agent,
        &[
            "403 Forbidden",
            "its rules do not allow a tunnel to that host and port",
        ],
    );
    assert_no_credentials(&agent, &s.dir.path("status"));
}

/// A fake proxy on a free loopback port: each connection is read a little,
/// then handed to `answer`; counts connections.
fn fake_proxy(
    answer: impl Fn(std::net::TcpStream) + Clone + Send + 'static,
) -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut req = [0u8; 1024];
                let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
                let _ = s.read(&mut req);
                answer(s)
            });
        }
    });
    (port, seen)
}

#[test]
fn a_proxy_that_closes_at_once_is_one_line_and_retried() {
    let s = Setup::new();
    let (port, seen) = fake_proxy(drop::<std::net::TcpStream>);
    let agent = spawn(&s, 9, &["--proxy", &proxy_url(port)], &[]);
    two_attempts(
        &agent,
        &[
            "closed the connection before answering CONNECT",
            &format!("proxy http://127.0.0.1:{port}"),
        ],
    );
    assert!(seen.load(Ordering::SeqCst) >= 2);
    assert_no_credentials(&agent, &s.dir.path("status"));
}

#[test]
fn a_proxy_that_answers_garbage_is_one_line_and_retried() {
    let s = Setup::new();
    let (port, _) = fake_proxy(|mut s| {
        let _ = s.write_all(b"SSH-2.0-NotAProxy\r\n");
        // Stay open: the verdict must not wait for the close.
        std::thread::sleep(Duration::from_secs(20));
    });
    let start = Instant::now();
    let agent = spawn(
        &s,
        9,
        &["--proxy", &proxy_url(port), "-o", "ConnectTimeout=30"],
        &[],
    );
    two_attempts(&agent, &["something that is not HTTP: \"SSH-2.0-NotAProxy"]);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "waited for the close"
    );
    assert_no_credentials(&agent, &s.dir.path("status"));
}

#[test]
fn an_endless_answer_is_cut_at_the_head_limit() {
    let s = Setup::new();
    let (port, _) = fake_proxy(|mut s| {
        if s.write_all(b"HTTP/1.1 200 Connection established\r\n")
            .is_err()
        {
            return;
        }
        let pad = [b"X-Pad: ".as_slice(), &[b'a'; 1000], b"\r\n"].concat();
        let start = Instant::now();
        // Until the agent hangs up (or a minute, so a broken agent fails the test, not hangs it).
        while start.elapsed() < Duration::from_secs(60) && s.write_all(&pad).is_ok() {}
    });
    let start = Instant::now();
    let agent = spawn(
        &s,
        9,
        &["--proxy", &proxy_url(port), "-o", "ConnectTimeout=30"],
        &[],
    );
    two_attempts(
        &agent,
        &["a head longer than 8192 bytes (MAX_PROXY_HEAD_BYTES)"],
    );
    // Bounded by bytes, not by ConnectTimeout.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    assert_no_credentials(&agent, &s.dir.path("status"));
}

#[test]
fn the_jails_first_bytes_in_the_proxys_answer_segment_reach_russh() {
    // A proxy that waits for the jail's SSH banner and sends it in the same
    // write as its 200: the agent must take exactly the answer's head.
    let s = Setup::new();
    let jail = s.jail.port;
    let (port, seen) = fake_proxy(move |client| {
        let Ok(mut up) = std::net::TcpStream::connect(("127.0.0.1", jail)) else {
            return;
        };
        let mut banner = [0u8; 256];
        let Ok(n) = up.read(&mut banner) else { return };
        let mut answer = b"HTTP/1.1 200 Connection established\r\nVia: fake\r\n\r\n".to_vec();
        answer.extend_from_slice(&banner[..n]);
        let mut down = client;
        if down.write_all(&answer).is_err() {
            return;
        }
        let (mut down2, mut up2) = (down.try_clone().unwrap(), up.try_clone().unwrap());
        let t = std::thread::spawn(move || std::io::copy(&mut up2, &mut down2));
        let _ = std::io::copy(&mut down, &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
        let _ = t.join();
    });
    let echo = Echo::start();
    let agent = spawn(&s, echo.port, &["--proxy", &proxy_url(port)], &[]);
    agent.wait_log("tunnel up", READY);
    let data = pattern(64 * 1024, 3);
    assert_eq!(echo_roundtrip(s.listen, &data), data);
    assert_eq!(seen.load(Ordering::SeqCst), 1, "one attempt was enough");
}
