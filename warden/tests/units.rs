//! The jail host's files under `board/jail-host/`, checked with the tools that
//! consume them: `systemd-analyze verify` and `security` on an instance of
//! `warden-watch@.service`, its directives read as systemd reads them (watch
//! runs `warden watch --jail %i` and its sandbox still shows it the host's
//! sockets and every process: no PrivateNetwork=, no hidden /proc, the three
//! capabilities it needs), shellcheck on `setup.sh`, setup.sh and the unit
//! naming the same paths and account, and `warden.env` handed to the real
//! binary. setup.sh itself is not run: it creates system accounts.
//!
//! A missing tool fails the test with the package to install (CI installs
//! them: shellcheck, systemd).

mod common;
use common::TempDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_warden");
const UNIT: &str = "board/jail-host/warden-watch@.service";
const SETUP: &str = "board/jail-host/setup.sh";
const ENV: &str = "board/jail-host/warden.env";
/// Where setup.sh installs the binary and the unit runs it from.
const INSTALLED: &str = "/usr/local/bin/warden";

/// The repository root (this package is `warden/` in it).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Fails with what to install when `tool` is not on PATH.
fn need(tool: &str, package: &str) {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "`{tool}` is not installed: apt-get install {package} (.ci/run installs it)"
    );
}

fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"))
}

fn said(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}",
        out.status,
        said(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every `Key=value` assignment of `section` (`[Service]`), in order, as
/// systemd parses them: comments (`#`, `;`) skipped, spaces around `=` and
/// at the ends trimmed. (The unit uses no line continuations.)
fn directives(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        assert!(
            !line.ends_with('\\'),
            "continuation line in the unit: {line:?}"
        );
        if line.starts_with('[') {
            current = line.to_string();
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("not Key=value: {line:?}"));
        if current == section {
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

/// The values of `key`, in order (a repeated key adds to or resets a list).
fn values<'a>(d: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    d.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// The last value of a single-valued `key` (the one systemd keeps).
fn last<'a>(d: &'a [(String, String)], key: &str) -> Option<&'a str> {
    values(d, key).pop()
}

fn truthy(v: &str) -> bool {
    matches!(v, "1" | "yes" | "y" | "true" | "t" | "on")
}

/// The unit as an instance for jail `jail-a`, in a temp dir, with ExecStart
/// pointing at this build (verify insists the executable exists).
fn instance(t: &TempDir) -> String {
    let unit = read(UNIT);
    assert!(unit.contains(INSTALLED), "unit does not run {INSTALLED}");
    let name = "warden-watch@jail-a.service";
    std::fs::write(t.0.join(name), unit.replace(INSTALLED, BIN)).unwrap();
    format!("./{name}")
}

#[test]
fn watch_unit_verifies() {
    need("systemd-analyze", "systemd");
    let t = TempDir::new("verify");
    let unit = instance(&t);
    let out = output(
        Command::new("systemd-analyze")
            .current_dir(&t.0)
            .args(["verify", "--man=no", &unit]),
    );
    let said = said(&out);
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    // An unknown key or a bad value is only a warning, naming the file.
    assert!(
        !said.contains("warden-watch@"),
        "systemd-analyze verify: {said}"
    );
}

#[test]
fn watch_unit_exposure_stays_low() {
    need("systemd-analyze", "systemd");
    let t = TempDir::new("security");
    let unit = instance(&t);
    // 2.1 "OK" today (the three capabilities, no IP allow list, UMask 0027);
    // fail if a change takes it past 2.5.
    ok(Command::new("systemd-analyze").current_dir(&t.0).args([
        "security",
        "--offline=yes",
        "--threshold=25",
        &unit,
    ]));
}

#[test]
fn watch_unit_runs_watch_and_keeps_sockets_and_processes_visible() {
    let unit = read(UNIT);
    let d = directives(&unit, "[Service]");
    let u = directives(&unit, "[Unit]");

    assert_eq!(
        values(&d, "ExecStart"),
        vec![format!("{INSTALLED} watch --jail %i")],
        "ExecStart"
    );
    assert_eq!(last(&d, "EnvironmentFile"), Some("-/etc/warden/warden.env"));
    assert_eq!(last(&d, "Restart"), Some("always"));
    assert_eq!(last(&d, "RestartSec"), Some("2s"));
    assert!(
        values(&u, "Wants").contains(&"ssh.service"),
        "Wants=ssh.service"
    );
    assert!(
        values(&u, "After").contains(&"ssh.service"),
        "After=ssh.service"
    );

    // /proc/net/tcp shows the reader's network namespace: a private one
    // would show no device.
    for v in values(&d, "PrivateNetwork") {
        assert!(!truthy(v), "PrivateNetwork={v}: watch would see no socket");
    }
    assert!(
        values(&d, "NetworkNamespacePath").is_empty(),
        "NetworkNamespacePath= moves watch out of sshd's namespace"
    );
    // Every process of the tunnel user, and /proc/net, must stay visible.
    for v in values(&d, "ProtectProc") {
        assert_eq!(v, "default", "ProtectProc={v} hides sshd's processes");
    }
    for v in values(&d, "ProcSubset") {
        assert_eq!(v, "all", "ProcSubset={v} hides /proc/net");
    }
    for v in values(&d, "PrivateUsers") {
        assert!(
            !truthy(v),
            "PrivateUsers={v}: capabilities stop at its namespace"
        );
    }
    for v in values(&d, "PrivatePIDs") {
        assert!(!truthy(v), "PrivatePIDs={v} hides sshd's processes");
    }
    assert_ne!(
        last(&d, "DynamicUser").map(truthy),
        Some(true),
        "DynamicUser"
    );

    // PostgreSQL over TCP or a unix socket, NSS over AF_UNIX.
    let families: Vec<&str> = values(&d, "RestrictAddressFamilies")
        .into_iter()
        .flat_map(str::split_whitespace)
        .collect();
    assert!(
        !families.iter().any(|f| f.starts_with('~') || *f == "none"),
        "RestrictAddressFamilies= must be an allow list: {families:?}"
    );
    for f in ["AF_UNIX", "AF_INET", "AF_INET6"] {
        assert!(families.contains(&f), "RestrictAddressFamilies lacks {f}");
    }

    // The three capabilities watch needs, and only they; not root, so
    // ambient (the `kill` child keeps them).
    let need = ["CAP_DAC_READ_SEARCH", "CAP_KILL", "CAP_SYS_PTRACE"];
    let set = |key: &str| -> Vec<String> {
        let mut v: Vec<String> = last(&d, key)
            .unwrap_or_else(|| panic!("no {key}="))
            .split_whitespace()
            .map(str::to_string)
            .collect();
        v.sort();
        v
    };
    assert_eq!(set("CapabilityBoundingSet"), need, "CapabilityBoundingSet");
    assert_eq!(set("AmbientCapabilities"), need, "AmbientCapabilities");
    assert_eq!(last(&d, "User"), Some("warden"), "User");
    assert_eq!(last(&d, "Group"), Some("warden"), "Group");

    // The sandbox itself.
    for (k, v) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("StateDirectory", "warden"),
        ("StateDirectoryMode", "0770"),
    ] {
        assert_eq!(last(&d, k), Some(v), "{k}");
    }
}

#[test]
fn setup_script_passes_shellcheck() {
    need("shellcheck", "shellcheck");
    let script = read(SETUP);
    assert_eq!(
        script.lines().next(),
        Some("#!/bin/sh"),
        "setup.sh's #! line"
    );
    // Every severity, including style; POSIX sh (dash on Debian).
    ok(Command::new("shellcheck").current_dir(root()).args([
        "--severity=style",
        "--shell=sh",
        SETUP,
    ]));
    ok(Command::new("sh").current_dir(root()).args(["-n", SETUP]));
}

#[test]
fn setup_script_and_unit_name_the_same_things() {
    let script = read(SETUP);
    let unit = read(UNIT);
    let d = directives(&unit, "[Service]");
    for line in [
        "BIN=/usr/local/bin/warden",
        "STATE=/var/lib/warden",
        "ENV_DIR=/etc/warden",
        "ENV_FILE=$ENV_DIR/warden.env",
        "UNIT=/etc/systemd/system/warden-watch@.service",
        "install -d -o warden -g warden -m 0770 \"$STATE\"",
        "install -o root -g root -m 0755 \"$src\" \"$BIN.new\"",
        "account warden \"$STATE\" /usr/sbin/nologin --user-group",
        "for name in tunuser operator; do",
        "usermod -p '*' \"$name\"",
    ] {
        assert!(
            script.lines().any(|l| l.trim() == line),
            "setup.sh lacks {line:?}"
        );
    }
    assert!(values(&d, "ExecStart")[0].starts_with("/usr/local/bin/warden "));
    assert_eq!(last(&d, "EnvironmentFile"), Some("-/etc/warden/warden.env"));
    assert_eq!(last(&d, "User"), Some("warden"));
    assert_eq!(last(&d, "StateDirectory"), Some("warden")); // /var/lib/warden
    // The default registry lives where both put it.
    assert!(read(ENV).contains("\nWARDEN_DB=sqlite:///var/lib/warden/registry.db\n"));
}

/// `KEY=value` lines of the env file; with `commented`, also `#KEY=value`.
fn env_lines(text: &str, commented: bool) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| match l.strip_prefix('#') {
            Some(c) if commented => Some(c),
            Some(_) => None,
            None => Some(l),
        })
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn env_file_names_a_registry_warden_opens() {
    let text = read(ENV);
    let set = env_lines(&text, false);
    assert_eq!(
        set.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["WARDEN_DB"],
        "warden.env sets exactly WARDEN_DB"
    );
    let db = &set[0].1;
    // It is warden's own default: the file only makes it explicit.
    let help = ok(Command::new(BIN).args(["--help"]));
    assert!(
        help.contains(db.as_str()),
        "default registry is not {db}:\n{help}"
    );

    // Through the environment alone (as the unit passes it), the file's URL
    // with its directory moved to a temp dir makes and opens the registry.
    let t = TempDir::new("env");
    let moved = db.replace("/var/lib/warden", t.0.to_str().unwrap());
    assert_ne!(&moved, db, "{db} is not under /var/lib/warden");
    let warden = |args: &[&str], db: &str| {
        let mut c = Command::new(BIN);
        c.args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("WARDEN_DB", db);
        c
    };
    ok(&mut warden(
        &["pool", "add", "fleet", "--ports", "10000-10009"],
        &moved,
    ));
    assert!(
        t.0.join("registry.db").is_file(),
        "WARDEN_DB={moved} made no registry.db"
    );
    let pools = ok(&mut warden(&["pool", "ls"], &moved));
    assert!(pools.contains("fleet"), "pool ls: {pools}");

    // The commented PostgreSQL example is a URL warden takes (no password in
    // it): pointed at a closed local port it fails as unreachable, or (TLS)
    // for want of its CA file (runtime, exit 1), not as a malformed URL (exit 2).
    let pg: Vec<String> = env_lines(&text, true)
        .into_iter()
        .filter(|(k, v)| k == "WARDEN_DB" && v.starts_with("postgres://"))
        .map(|(_, v)| v)
        .collect();
    assert_eq!(pg.len(), 1, "one commented postgres:// example: {pg:?}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port(); // dropped at once: nothing listens there
    let local = pg[0].replace("db.example", &format!("127.0.0.1:{port}"));
    assert_ne!(local, pg[0], "the example's host is not db.example");
    let out = output(&mut warden(&["pool", "ls"], &local));
    assert_eq!(out.status.code(), Some(1), "{local}: {}", said(&out));
    assert!(
        said(&out).contains("unreachable") || said(&out).contains("sslrootcert"),
        "{local}: {}",
        said(&out)
    );
}

const SSH_LIMITS: &str = "board/jail-host/ssh-fleet.conf";
const SYSCTL: &str = "board/jail-host/sysctl-fleet.conf";

/// The jail sshd's limits for a fleet: a drop-in systemd reads without a
/// warning (checked beside a stand-in ssh.service), with room for 10,000
/// devices (two sshd processes each), MaxStartups' pipes and pid_max; and
/// setup.sh installs both files where their comments say.
#[test]
fn fleet_limits_load_and_fit_ten_thousand_devices() {
    need("systemd-analyze", "systemd");
    let t = TempDir::new("limits");
    std::fs::create_dir_all(t.0.join("ssh.service.d")).unwrap();
    std::fs::write(t.0.join("ssh.service"), "[Service]\nExecStart=/bin/true\n").unwrap();
    let limits = read(SSH_LIMITS);
    std::fs::write(t.0.join("ssh.service.d/50-warden-fleet.conf"), &limits).unwrap();
    let out = output(Command::new("systemd-analyze").current_dir(&t.0).args([
        "verify",
        "--man=no",
        "./ssh.service",
    ]));
    let said = said(&out);
    assert!(
        out.status.success() && !said.contains("50-warden-fleet"),
        "{said}"
    );
    let d = directives(&limits, "[Service]");
    assert_eq!(last(&d, "TasksMax"), Some("infinity"));
    assert_eq!(last(&d, "LimitNPROC"), Some("infinity"));
    let nofile: u64 = last(&d, "LimitNOFILE").unwrap().parse().unwrap();
    // MaxStartups admits up to the whole pool (warden/src/sshd.rs), a pipe
    // each, plus the listener's own descriptors.
    assert!(nofile >= 10_000 + 64, "LimitNOFILE={nofile}");
    let pid_max: u64 = read(SYSCTL)
        .lines()
        .find_map(|l| l.strip_prefix("kernel.pid_max = "))
        .expect("sysctl-fleet.conf sets kernel.pid_max")
        .parse()
        .unwrap();
    assert!(pid_max >= 2 * 10_000 * 4, "pid_max {pid_max}");
    let script = read(SETUP);
    for line in [
        "SSH_LIMITS=/etc/systemd/system/ssh.service.d/50-warden-fleet.conf",
        "SYSCTL=/etc/sysctl.d/50-warden-fleet.conf",
        "place ssh-fleet.conf \"$SSH_LIMITS\"",
        "place sysctl-fleet.conf \"$SYSCTL\"",
        "place warden-watch@.service \"$UNIT\"",
    ] {
        assert!(
            script.lines().any(|l| l.trim() == line),
            "setup.sh lacks {line:?}"
        );
    }
    assert!(limits.starts_with("# /etc/systemd/system/ssh.service.d/50-warden-fleet.conf"));
    assert!(read(SYSCTL).starts_with("# /etc/sysctl.d/50-warden-fleet.conf"));
}
