//! The web view in a real headless Chromium (Debian's `chromium` and
//! `chromedriver`, driven over the W3C WebDriver protocol), against the real
//! `warden serve`, a real jail (sshd with warden's drop-in and `warden
//! watch`) and the real agent holding its tunnel: sign in, search by MAC,
//! see the device online, stop the agent and see it offline, request access
//! and run the ssh command the page shows, sign out; a read token gets no
//! access form and its forged POST is refused, a POST without the CSRF field
//! is refused, and hostile registry text renders as text.
//!
//! Screenshots of each page go to target/web-screenshots/ (test artifacts; the
//! fleet page's is docs/img/web-fleet.png in the README).

mod common;
use common::*;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// The flags Chromium needs on a test machine (root, no display, no network
/// beyond loopback).
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
];

// ---- a small W3C WebDriver client (HTTP/1.1 over loopback) -------------------

/// One chromedriver and one browser session on it; both ended when dropped.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: TempDir,
}

/// The WebDriver element reference key.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("chromedriver");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let b = body.map(|v| v.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
        b.len()
    )
    .unwrap();
    // chromedriver keeps the connection open whatever Connection says: read
    // the headers, then Content-Length bytes (or chunks to the last one).
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "chromedriver closed the connection mid-answer");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let length = head.lines().find_map(|l| {
        l.strip_prefix("content-length:")
            .and_then(|v| v.trim().parse::<usize>().ok())
    });
    let chunked = head.contains("transfer-encoding: chunked");
    loop {
        let body = &raw[head_end..];
        let done = match length {
            Some(n) => body.len() >= n,
            None if chunked => body.windows(5).any(|w| w == b"0\r\n\r\n"),
            None => false,
        };
        if done {
            break;
        }
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&raw[head_end..]).into_owned();
    let body = if chunked { dechunk(&body) } else { body };
    (
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    )
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Browser {
    fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} missing: run scripts/test-setup.sh (apt: chromium chromium-driver)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver");
        wait_until(READY, "chromedriver ready", || {
            if !port_answers(port) {
                return None;
            }
            (http(port, "GET", "/status", None).1["value"]["ready"] == true).then_some(())
        });
        let profile = TempDir::new("chromium");
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.0.display()));
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args}
        }}});
        let (code, v) = http(port, "POST", "/session", Some(&caps));
        assert_eq!(code, 200, "new session: {v}");
        let session = v["value"]["sessionId"].as_str().unwrap().to_string();
        Browser {
            driver,
            port,
            session,
            _profile: profile,
        }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let p = format!("/session/{}{path}", self.session);
        let (code, v) = http(self.port, method, &p, body.as_ref());
        assert_eq!(code, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url})));
    }
    fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap().to_string()
    }
    fn refresh(&self) {
        self.call("POST", "/refresh", Some(json!({})));
    }
    fn all(&self, css: &str) -> Vec<String> {
        self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("not an element: {e}"))
                .to_string()
        })
        .collect()
    }
    fn find(&self, css: &str) -> String {
        let all = self.all(css);
        assert!(
            !all.is_empty(),
            "no {css} on {}:\n{}",
            self.url(),
            self.text("body")
        );
        all[0].clone()
    }
    fn text(&self, css: &str) -> String {
        let e = self.all(css);
        match e.first() {
            Some(e) => self
                .call("GET", &format!("/element/{e}/text"), None)
                .as_str()
                .unwrap()
                .to_string(),
            None => String::new(),
        }
    }
    fn click(&self, css: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})));
    }
    /// Clicks `css` and waits (with a deadline) until a new document has
    /// loaded in place of this one (a form's answer, a link's page).
    fn click_to_load(&self, css: &str) {
        self.eval("document.documentElement.dataset.before = 'yes'");
        self.click(css);
        wait_until(READY, "the next page to load", || {
            (self.eval(
                "return document.readyState === 'complete' && !document.documentElement.dataset.before",
            ) == true)
                .then_some(())
        });
    }
    fn type_in(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.call("POST", &format!("/element/{e}/clear"), Some(json!({})));
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        );
    }
    /// Runs `script` through the driver (DevTools, not the page: the page's
    /// CSP forbids script, the driver's inspection is not the page's).
    fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }
    /// Whether an alert (or confirm, prompt) is open.
    fn alert_open(&self) -> bool {
        let p = format!("/session/{}/alert/text", self.session);
        http(self.port, "GET", &p, None).0 == 200
    }
    fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.call("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/web-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
    /// Asserts the page ran no script and opened no alert: no <script> or
    /// <img> element exists, the globals hostile text would set are unset.
    fn assert_inert(&self) {
        assert!(!self.alert_open(), "an alert opened on {}", self.url());
        let v = self.eval(
            "return [document.scripts.length, document.querySelectorAll('img,iframe,object,embed').length, typeof window.pwned]",
        );
        assert_eq!(v, json!([0, 0, "undefined"]), "on {}", self.url());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let p = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| http(self.port, "DELETE", &p, None));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s.bytes().filter(|&c| c != b'=' && c != b'\n').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= u32::from(val(c)) << (18 - 6 * i);
        }
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// A child process killed when dropped (also when the test fails).
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

// ---- warden serve -------------------------------------------------------------

/// A running `warden serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(reg: &Registry) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = reg.dir.path(&format!("serve-{port}.log"));
        let mut child = reg
            .warden_cmd(&["serve", "--listen", &listen])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(20), "warden serve answers", || {
            if let Ok(Some(st)) = child.try_wait() {
                panic!(
                    "warden serve exited {st}: {}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            port_answers(port).then_some(())
        });
        Server {
            child,
            base: format!("http://{listen}"),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A form POST through curl with `token` in the cookie: the status.
fn post(base: &str, path: &str, token: &str, form: &str, extra: &[&str]) -> u16 {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["-b", &format!("warden_token={token}"), "--data", form])
        .args(extra)
        .arg(format!("{base}{path}"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

// ---- the fleet: a jail, watch, a device with its agent --------------------------

/// A pool range below the ephemeral range, distinct per test process.
fn ports(n: u16) -> (u16, String) {
    let lo = 20000 + (std::process::id() as u16 % 200) * 50 % 12000 + 7;
    (lo, format!("{lo}-{}", lo + n - 1))
}

struct Device {
    dir: TempDir,
    agent: Option<Agent>,
}

impl Device {
    fn enrol(reg: &Registry, id: &str, mac: &str, target_port: u16) -> Device {
        let dir = TempDir::new("device");
        let key = device_key(&dir.path("identity"));
        let target = format!("127.0.0.1:{target_port}");
        reg.ok(&[
            "enroll",
            id,
            "--key",
            &key,
            "--target",
            &target,
            "--mac",
            mac,
            "--label",
            "site=berlin",
        ]);
        let kh = dir.path("known_hosts");
        reg.ok(&[
            "device-config",
            id,
            "--out",
            dir.0.to_str().unwrap(),
            "--known-hosts-path",
            kh.to_str().unwrap(),
        ]);
        Device { dir, agent: None }
    }
    fn start(&mut self) {
        let a = agent_from(&self.dir.0, &self.dir.path("identity"));
        a.wait_log("tunnel up", READY);
        self.agent = Some(a);
    }
    fn stop(&mut self) {
        let mut a = self.agent.take().unwrap();
        a.signal("TERM");
        a.wait_exit(READY);
    }
}

fn online(reg: &Registry, id: &str) -> Value {
    serde_json::from_str::<Value>(&reg.ok(&["show", id, "--json"])).unwrap()["online"].clone()
}

const ID: &str = "234DNJE4";
const MAC: &str = "92:be:bf:83:6e:b3";
/// Hostile text the registry may hold: in labels (as enrolled), a grant's
/// reason (as requested), and audit rows written behind warden's back.
const HOSTILE_LABEL: &str = "<img src=x onerror=alert(1)>";
const HOSTILE_LABEL2: &str = "\"'><script>window.pwned=1</script>";
const HOSTILE_REASON: &str =
    "<script>window.pwned=4</script> \"ticket\" <img src=x onerror=alert(4)>";

#[test]
fn the_web_view_in_a_real_browser() {
    let started = Instant::now();
    require_root();
    let reg = Registry::new(Kind::Sqlite);
    let (_, range) = ports(4);
    reg.pool("p", &range);
    let jail = Jail::start(&reg, "jail-a", "p");
    let target = DeviceSshd::start();
    let mut dev = Device::enrol(&reg, ID, MAC, target.port);
    dev.start();
    let _watch = Killed(
        reg.warden_cmd(&[
            "watch",
            "--jail",
            "jail-a",
            "--interval",
            "1",
            "--sshd-pid-file",
            jail.pid_file().to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .unwrap(),
    );
    let keys = TempDir::new("operator");
    let (op_key, op_pub) = key(&keys);
    reg.ok(&["operator", "add", "alice", "--key", &op_pub]);
    // The hostile rows.
    let (_, evil_key) = key(&reg.dir);
    reg.ok(&[
        "enroll",
        "EVIL",
        "--key",
        &evil_key,
        "--label",
        &format!("note={HOSTILE_LABEL}"),
        "--label",
        &format!("q={HOSTILE_LABEL2}"),
    ]);
    run_ok(Command::new("sqlite3").args(["-cmd", ".timeout 10000"]).arg(reg.sqlite_path()).arg(
        "INSERT INTO audit (at, action, device, operator, actor, origin, reason, detail) VALUES \
         (strftime('%s','now'), 'note<b>', 'EVIL', '<script>window.pwned=2</script>', 'x\"y', 'o''rigin', \
          'line one' || char(10) || '<img src=x onerror=alert(3)>', '\"><script>window.pwned=3</script>')",
    ));
    let token = |name: &str, scope: &str| {
        let mut a = vec!["token", "create", name, "--scope", scope];
        if scope == "operate" {
            a.extend(["--operator", "alice"]);
        }
        reg.ok(&a).lines().next().unwrap().to_string()
    };
    let (op_token, read_token) = (token("web-op", "operate"), token("web-read", "read"));
    wait_until(READY, "watch sees the device online", || {
        (online(&reg, ID) == "jail-a").then_some(())
    });

    let srv = Server::start(&reg);
    let b = Browser::start();
    let base = srv.base.as_str();

    // Not signed in: the sign-in page.
    b.goto(&format!("{base}/"));
    assert!(b.url().ends_with("/signin"), "{}", b.url());
    b.screenshot("signin");
    b.type_in("#token", &op_token);
    b.click_to_load("form[action='/signin'] button");
    assert_eq!(b.url(), format!("{base}/"), "{}", b.text("main"));
    assert!(b.text("header").contains("token web-op (operate)"));
    let counts = b.text("ul.counts");
    assert!(
        counts.contains("pool p: 2 devices, 1 online, 1 offline")
            && counts.contains("jail jail-a: 1 online"),
        "{counts}"
    );
    // The hostile labels are text, and nothing ran.
    let evil_row = b.text("table.devices tbody");
    assert!(
        evil_row.contains(&format!("note={HOSTILE_LABEL}"))
            && evil_row.contains(&format!("q={HOSTILE_LABEL2}")),
        "{evil_row}"
    );
    b.assert_inert();
    let shot = b.screenshot("fleet");

    // Search by the MAC as printed on a label, another form than stored.
    b.type_in("#q", "92-BE-BF-83-6E-B3");
    b.click_to_load("form.filters button");
    assert_eq!(b.all("table.devices tbody tr").len(), 1, "{}", b.url());
    assert_eq!(b.text("table.devices tbody tr td"), ID);
    b.click_to_load(&format!("a[href='/devices/{ID}']"));
    assert!(b.url().ends_with(&format!("/devices/{ID}")));
    assert_eq!(b.text("#state"), "online");
    b.screenshot("device");

    // The agent stops: watch records it offline, and a reload shows it.
    dev.stop();
    wait_until(READY, "watch sees the device offline", || {
        online(&reg, ID).is_null().then_some(())
    });
    b.refresh();
    assert_eq!(b.text("#state"), "offline");

    // Back online, then access for 15 minutes with a reason: the command.
    dev.start();
    wait_until(READY, "watch sees the device online again", || {
        (online(&reg, ID) == "jail-a").then_some(())
    });
    b.refresh();
    assert_eq!(b.text("#state"), "online");
    b.type_in("#reason", HOSTILE_REASON);
    b.click_to_load("form.access button");
    let ssh = b.text("#ssh");
    assert!(
        ssh.starts_with("ssh ")
            && ssh.ends_with(&format!(" {ID}"))
            && ssh.contains("-W localhost:"),
        "{ssh}"
    );
    let grants = b.text("table.grants");
    assert!(
        grants.contains("alice") && grants.contains(HOSTILE_REASON),
        "{grants}"
    );
    b.assert_inert();
    b.screenshot("device-granted");
    // The API's grant answer is the same command.
    let (code, api) = {
        let out = Command::new("curl")
            .args([
                "-sS",
                "-X",
                "POST",
                "-H",
                &format!("Authorization: Bearer {op_token}"),
            ])
            .args(["-H", "Content-Type: application/json", "--data"])
            .arg(json!({"device": ID, "for": "15m", "reason": "api"}).to_string())
            .arg(format!("{base}/api/v1/grants"))
            .output()
            .unwrap();
        (
            out.status.code(),
            serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        )
    };
    assert_eq!((code, api["ssh"].as_str()), (Some(0), Some(ssh.as_str())));
    // The command works: run as printed, with the operator's key and
    // known_hosts in place of root's own (a private mount namespace).
    let out = run_as_operator(&ssh, &op_key, &jail, &target);
    assert_eq!(out.trim(), "reached", "the ssh command failed");

    // The hostile device's page and the audit page: text, nothing ran.
    b.goto(&format!("{base}/devices/EVIL"));
    let trail = b.text("table.audit");
    assert!(
        trail.contains("<script>window.pwned=2</script>")
            && trail.contains("line one\\n<img src=x onerror=alert(3)>")
            && trail.contains("\"><script>window.pwned=3</script>"),
        "{trail}"
    );
    b.assert_inert();
    b.goto(&format!("{base}/audit?action=grant"));
    assert!(b.text("table.audit").contains(HOSTILE_REASON));
    b.assert_inert();
    b.screenshot("audit");
    b.goto(&format!("{base}/jails"));
    let jails = b.text("table.jails");
    assert!(
        jails.contains("jail-a") && jails.contains("SHA256:"),
        "{jails}"
    );
    b.screenshot("jails");

    // A POST without the CSRF field, or with another session's, is refused.
    let grants_before = reg.ok(&["audit", "--device", ID, "--json"]);
    let path = format!("/devices/{ID}/access");
    assert_eq!(post(base, &path, &op_token, "reason=x", &[]), 403);
    let op_csrf = b.eval("return document.querySelector('input[name=csrf]').value");
    let op_csrf = op_csrf.as_str().unwrap();
    assert_eq!(
        post(
            base,
            &path,
            &op_token,
            &format!("csrf={op_csrf}&reason=x"),
            &["-H", "Sec-Fetch-Site: cross-site"]
        ),
        403
    );
    assert_eq!(
        post(
            base,
            &path,
            &op_token,
            &format!("csrf={op_csrf}&reason=x"),
            &["-H", "Origin: http://evil.example"]
        ),
        403
    );

    // Sign out: back at sign-in, and the fleet is out of reach.
    b.click_to_load("form.signout button");
    assert!(b.url().contains("/signin"), "{}", b.url());
    b.goto(&format!("{base}/"));
    assert!(b.url().ends_with("/signin"), "{}", b.url());

    // A read token: no access form; its forged POST (with its own valid
    // CSRF field) is 403, and nothing was granted.
    b.type_in("#token", &read_token);
    b.click_to_load("form[action='/signin'] button");
    b.goto(&format!("{base}/devices/{ID}"));
    assert_eq!(b.text("#state"), "online");
    assert!(
        b.all("form.access").is_empty(),
        "a read token sees the access form"
    );
    let read_csrf = b.eval("return document.querySelector('input[name=csrf]').value");
    assert_eq!(
        post(
            base,
            &path,
            &read_token,
            &format!("csrf={}&reason=x", read_csrf.as_str().unwrap()),
            &[]
        ),
        403
    );
    // The other token's field does not pass for this one either.
    assert_eq!(
        post(
            base,
            &path,
            &read_token,
            &format!("csrf={op_csrf}&reason=x"),
            &[]
        ),
        403
    );
    assert_eq!(reg.ok(&["audit", "--device", ID, "--json"]), grants_before);

    // A revoked token is signed out at its next page.
    reg.ok(&["token", "revoke", "web-read"]);
    b.refresh();
    assert!(b.url().contains("/signin"), "{}", b.url());
    assert!(b.text("main").contains("token web-read is revoked"));

    eprintln!(
        "web view browser test: {:.1} s wall; fleet screenshot {}",
        started.elapsed().as_secs_f64(),
        shot.display()
    );
}

/// Runs the printed ssh command line with `sh`, in a private mount namespace
/// whose root home holds the operator's key, an ssh config naming it and the
/// device's login, and known_hosts with the jail's and the device's real host
/// keys (ssh reads its files from the passwd home, not $HOME). Returns stdout.
fn run_as_operator(line: &str, op_key: &Path, jail: &Jail, target: &DeviceSshd) -> String {
    let home = TempDir::new("ophome");
    let ssh = home.path(".ssh");
    std::fs::create_dir(&ssh).unwrap();
    let device_host_key =
        std::fs::read_to_string(target.dir.path("ssh_host_ed25519_key.pub")).unwrap();
    std::fs::write(
        ssh.join("known_hosts"),
        format!(
            "[127.0.0.1]:{} {}\n{ID} {}",
            jail.port,
            jail.host_key_line.trim(),
            device_host_key.trim()
        ),
    )
    .unwrap();
    std::fs::write(
        ssh.join("config"),
        format!(
            "Host {ID}\n  User {}\n  IdentityFile {}\nHost *\n  BatchMode yes\n  StrictHostKeyChecking yes\n  IdentitiesOnly yes\n  IdentityFile {}\n  LogLevel ERROR\n",
            agent::device_user(),
            target.client_key.display(),
            op_key.display()
        ),
    )
    .unwrap();
    let root_home = "/root";
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg("mount --bind \"$1\" \"$2\" && exec sh -c \"$3 echo reached\"")
        .args(["sh", home.0.to_str().unwrap(), root_home, line])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// ---- the pages over plain HTTP, on both backends --------------------------------

/// A page through curl with `token` in the cookie: (status, body).
fn get(base: &str, path: &str, token: &str) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-w", "\n%{http_code}"])
        .args(["-b", &format!("warden_token={token}")])
        .arg(format!("{base}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap(), body.to_string())
}

/// The ids a fleet page lists, in order.
fn listed(body: &str) -> Vec<String> {
    body.split("<td><a href=\"/devices/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

#[test]
fn fleet_page_search_filters_and_paging_sqlite() {
    fleet_page_search_filters_and_paging(Kind::Sqlite);
}

#[test]
fn fleet_page_search_filters_and_paging_postgres() {
    fleet_page_search_filters_and_paging(Kind::Postgres);
}

fn fleet_page_search_filters_and_paging(kind: Kind) {
    let reg = Registry::new(kind);
    reg.pool("p1", "10000-10199");
    reg.pool("p2", "10200-10299");
    let hostile = "\"><script>alert(1)</script>";
    let enrol = |id: &str, pool: &str, extra: &[&str]| {
        let (_, k) = key(&reg.dir);
        let mut a = vec!["enroll", id, "--key", &k, "--pool", pool];
        a.extend_from_slice(extra);
        reg.ok(&a);
    };
    enrol(
        "A1",
        "p1",
        &["--mac", "02:00:00:00:00:01", "--label", "site=berlin"],
    );
    let note = format!("note={hostile}");
    enrol("a2", "p1", &["--label", "site=hamburg", "--label", &note]);
    enrol("B1", "p2", &["--mac", "02:00:00:00:00:02"]);
    reg.ok(&["revoke", "B1", "--reason", "stolen"]);
    // 150 more in p1: two pages.
    for i in 0..150 {
        enrol(&format!("Z{i:03}"), "p1", &[]);
    }
    let token = reg.ok(&["token", "create", "r", "--scope", "read"]);
    let token = token.lines().next().unwrap();
    let srv = Server::start(&reg);
    let b = srv.base.as_str();
    let page = |path: &str| {
        let (code, body) = get(b, path, token);
        assert_eq!(code, 200, "{path}: {body}");
        body
    };
    let first = page("/");
    assert!(first.contains("153 of 153 devices; page 1 of 2"), "{first}");
    assert_eq!(listed(&first).len(), 100);
    assert!(
        first.contains(
            "pool <a href=\"/?pool=p1&amp;page=1\">p1</a>: 152 devices, 0 online, 152 offline"
        ),
        "{first}"
    );
    assert!(first.contains("1 revoked"), "{first}");
    let second = page("/?page=2");
    assert_eq!(listed(&second).len(), 53);
    assert_eq!(
        listed(&page("/?page=9")),
        listed(&second),
        "past the last page: the last"
    );
    // A MAC in each common form, an id fragment (any case), a label.
    for q in [
        "02:00:00:00:00:02",
        "02-00-00-00-00-02",
        "0200.0000.0002",
        "020000000002",
    ] {
        assert_eq!(listed(&page(&format!("/?q={q}"))), ["B1"], "{q}");
    }
    assert_eq!(listed(&page("/?q=A")), ["A1", "a2"]);
    assert_eq!(listed(&page("/?q=site%3Dberlin")), ["A1"]);
    let by_note = format!(
        "/?{}",
        serde_urlencoded_pair("q", &format!("note={hostile}"))
    );
    assert_eq!(listed(&page(&by_note)), ["a2"]);
    // Filters: pool, state (offline leaves out the revoked), unknown pool.
    assert_eq!(listed(&page("/?pool=p2")), ["B1"]);
    let want: Vec<String> = (140..150).map(|i| format!("Z{i}")).collect();
    assert_eq!(listed(&page("/?state=offline&q=z14")), want);
    assert!(
        listed(&page("/?state=offline&q=B")).is_empty(),
        "a revoked device counted offline"
    );
    assert_eq!(listed(&page("/?q=B")), ["B1"]);
    assert!(listed(&page("/?state=online")).is_empty());
    assert_eq!(get(b, "/?pool=nope", token).0, 400);
    assert_eq!(get(b, "/?state=maybe", token).0, 400);
    // The hostile label is text on every page that shows it.
    for body in [page("/?q=a2"), page("/devices/a2")] {
        assert!(!body.contains("<script>alert(1)"), "{body}");
        assert!(
            body.contains("note=&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{body}"
        );
    }
    // Every page carries the CSP; no token: to sign-in.
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null"])
        .arg(format!("{b}/"))
        .output()
        .unwrap();
    let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 303") && head.contains("location: /signin"),
        "{head}"
    );
    assert!(
        head.contains("content-security-policy: default-src 'none'; style-src 'self'"),
        "{head}"
    );
}

fn serde_urlencoded_pair(k: &str, v: &str) -> String {
    let enc: String = v
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("{k}={enc}")
}
