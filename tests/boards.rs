//! The board files and packaging under `board/`, checked with the tools that
//! consume them: shellcheck on every shell script, `systemd-analyze` on the
//! Pi unit, `ar`/`tar`/`dpkg-deb` on the `.ipk` that `build-ipk.sh` makes, the
//! OpenWrt init script run under `sh` and busybox `sh` with stubbed UCI and
//! procd functions (its command lines compared exactly, then handed to the real
//! binary), the env-file and container examples run through the real binary,
//! and a build with `JAILBIRD_DEFAULT_*` set whose `jailbird info` and flag-less
//! `jailbird run` show the compiled-in values (and a malformed value failing
//! the build with a message naming it).
//!
//! A missing tool fails the test with the package to install (CI installs
//! them: shellcheck, systemd, busybox, dpkg, binutils).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_jailbird");
const VERSION: &str = env!("CARGO_PKG_VERSION");
/// A valid ed25519 public key (any will do: nothing connects with it).
const HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGGTHA80O3oLeIMHxZHP4FvVkgK3PrfS5brb1Tv0DHJx";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
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

fn ok(cmd: &mut Command) -> String {
    let out = output(cmd);
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A temporary directory, removed on drop.
struct Temp(PathBuf);

impl Temp {
    fn new(tag: &str) -> Temp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "jailbird-boards-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Temp(p)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn str(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A loopback port nothing listens on (connections to it are refused).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An agent process whose stderr is collected as it runs; killed on drop.
struct Agent {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Agent {
    fn start(cmd: &mut Command) -> Agent {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        let log = Arc::new(Mutex::new(String::new()));
        let (stderr, sink) = (child.stderr.take().unwrap(), log.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Agent { child, log }
    }

    /// Waits for `needle` in the log; panics (with the log) if the agent
    /// exits first or the deadline passes.
    fn wait_log(&mut self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.log.lock().unwrap().contains(needle) {
                return;
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "agent exited ({status}) before logging {needle:?}:\n{}",
                    self.log.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within 30 s:\n{}",
                self.log.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then exit status 0 within a few seconds.
    fn stop(mut self) {
        ok(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "exit after SIGTERM: {status}\n{}",
                    self.log.lock().unwrap()
                );
                return;
            }
            assert!(Instant::now() < deadline, "still running 5 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `jailbird ARGS` with exactly `env` (plus PATH) and proves the whole
/// configuration was accepted: instead of exiting 2 it tries the jail at
/// `jail` (a refused port), logs the failure and keeps retrying; SIGTERM then
/// ends it with 0.
fn accepted_and_retrying(bin: &str, args: &[String], env: &[(String, String)], jail: &str) {
    let mut cmd = Command::new(bin);
    cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let mut agent = Agent::start(&mut cmd);
    agent.wait_log(&format!("cannot connect to jail {jail}"));
    agent.wait_log("retrying in");
    agent.stop();
}

/// Every tracked or new (not ignored) file that is a shell script: `*.sh`, or a
/// `#!` line naming sh/bash (also `#!/bin/sh /etc/rc.common`), outside vendor/.
fn shell_scripts() -> Vec<String> {
    let list = ok(Command::new("git").current_dir(root()).args([
        "ls-files",
        "--cached",
        "--others",
        "--exclude-standard",
    ]));
    let mut out: Vec<String> = list
        .lines()
        .filter(|f| !f.starts_with("vendor/"))
        .filter(|f| root().join(f).is_file())
        .filter(|f| {
            let head = std::fs::read(root().join(f)).unwrap_or_default();
            let first = head.split(|b| *b == b'\n').next().unwrap_or_default();
            let first = String::from_utf8_lossy(first);
            f.ends_with(".sh")
                || (first.starts_with("#!")
                    && (first.contains("sh ") || first.ends_with("sh") || first.contains("bash")))
        })
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn every_shell_script_passes_shellcheck() {
    need("shellcheck", "shellcheck");
    let scripts = shell_scripts();
    for must in [
        "board/build.sh",
        "board/openwrt/build-ipk.sh",
        "board/openwrt/build.sh",
        "board/openwrt/files/jailbird.init",
        "board/openwrt/control/postinst",
        "board/rpi-zero/profile.sh",
        "board/container/build-image.sh",
        "scripts/build-target.sh",
    ] {
        assert!(
            scripts.iter().any(|s| s == must),
            "{must} not found among {scripts:?}"
        );
    }
    // Every severity, including style; each script names its dialect by its #!
    // line or a `# shellcheck shell=` directive.
    ok(Command::new("shellcheck")
        .current_dir(root())
        .args(["--severity=style", "--external-sources"])
        .args(&scripts));
    // The procd init script runs under busybox ash on the router: POSIX sh,
    // nothing bash-only (shellcheck has no busybox dialect; sh is stricter).
    ok(Command::new("shellcheck")
        .current_dir(root())
        .args(["--shell=sh", "board/openwrt/files/jailbird.init"]));
}

#[test]
fn systemd_unit_verifies_and_is_hardened() {
    need("systemd-analyze", "systemd");
    let unit = std::fs::read_to_string(root().join("board/rpi-zero/jailbird.service")).unwrap();
    for line in [
        "Restart=always",
        "RestartSec=5",
        "StartLimitIntervalSec=0",
        "Wants=network-online.target",
        "After=network-online.target",
        "ExecStart=/usr/local/bin/jailbird run",
        "EnvironmentFile=-/etc/jailbird/jailbird.env",
        "StateDirectory=jailbird",
        "RuntimeDirectory=jailbird",
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "LimitCORE=0",
        "MemoryMax=64M",
        "TasksMax=16",
    ] {
        assert!(unit.lines().any(|l| l == line), "unit lacks {line:?}");
    }
    // verify needs the executables to exist: point them at this build.
    let t = Temp::new("unit");
    let path = t.path("jailbird.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/jailbird", BIN)).unwrap();
    let out = output(Command::new("systemd-analyze").current_dir(&t.0).args([
        "verify",
        "--man=no",
        "./jailbird.service",
    ]));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "systemd-analyze verify: {said}");
    assert!(
        !said.contains("jailbird.service"),
        "systemd-analyze verify: {said}"
    );
    // Exposure 1.2 today ("OK"); fail if a change takes it past 1.5.
    ok(Command::new("systemd-analyze").current_dir(&t.0).args([
        "security",
        "--offline=yes",
        "--threshold=15",
        "./jailbird.service",
    ]));
}

/// `ar` members of an archive, in order.
fn ar_members(ipk: &Path) -> Vec<String> {
    ok(Command::new("ar").arg("t").arg(ipk))
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn ipk_is_well_formed() {
    for (tool, pkg) in [
        ("ar", "binutils"),
        ("strip", "binutils"),
        ("tar", "tar"),
        ("dpkg-deb", "dpkg"),
    ] {
        need(tool, pkg);
    }
    let t = Temp::new("ipk");
    // Stripped, as a release binary is (gzip -9 of debug info takes a minute).
    let bin = t.str("jailbird");
    ok(Command::new("strip").args(["-o", &bin, BIN]));
    let build = |out: &str| {
        ok(Command::new(root().join("board/openwrt/build-ipk.sh"))
            .args([bin.as_str(), "x86_64", &t.str(out)])
            .env("SOURCE_DATE_EPOCH", "1700000000"));
        t.path(out).join(format!("jailbird_{VERSION}-1_x86_64.ipk"))
    };
    let ipk = build("a");
    assert_eq!(
        ar_members(&ipk),
        ["debian-binary", "control.tar.gz", "data.tar.gz"]
    );
    let x = t.path("x");
    std::fs::create_dir_all(&x).unwrap();
    ok(Command::new("ar").current_dir(&x).arg("x").arg(&ipk));
    assert_eq!(
        std::fs::read_to_string(x.join("debian-binary")).unwrap(),
        "2.0\n"
    );

    let listing = |tarball: &str| -> Vec<String> {
        ok(Command::new("tar").current_dir(&x).args(["tzf", tarball]))
            .lines()
            .map(str::to_string)
            .collect()
    };
    let data = listing("data.tar.gz");
    for f in [
        "./usr/sbin/jailbird",
        "./etc/init.d/jailbird",
        "./etc/config/jailbird",
        "./etc/jailbird/",
        "./lib/upgrade/keep.d/jailbird",
    ] {
        assert!(
            data.iter().any(|d| d == f),
            "data.tar.gz lacks {f}: {data:?}"
        );
    }
    // Whatever the feed Makefile installs, the .ipk holds too.
    let makefile = std::fs::read_to_string(root().join("board/openwrt/Makefile")).unwrap();
    for dest in makefile
        .lines()
        .filter(|l| {
            l.contains("$(INSTALL_BIN)")
                || l.contains("$(INSTALL_CONF)")
                || l.contains("$(INSTALL_DATA)")
        })
        .filter_map(|l| l.split_whitespace().last())
    {
        let f = format!(".{}", dest.trim_start_matches("$(1)"));
        assert!(
            data.contains(&f),
            "Makefile installs {f}, the .ipk does not"
        );
    }
    assert!(makefile.contains(&format!("PKG_VERSION:={VERSION}\n")));
    let verbose = ok(Command::new("tar")
        .current_dir(&x)
        .args(["tzvf", "data.tar.gz"]));
    for (mode, f) in [
        ("-rwxr-xr-x", "./usr/sbin/jailbird"),
        ("-rwxr-xr-x", "./etc/init.d/jailbird"),
        ("drwx------", "./etc/jailbird/"),
    ] {
        assert!(
            verbose
                .lines()
                .any(|l| l.starts_with(mode) && l.ends_with(f) && l.contains(" 0/0 ")),
            "{f} not {mode} root:root:\n{verbose}"
        );
    }
    let packed = output(Command::new("tar").current_dir(&x).args([
        "xzOf",
        "data.tar.gz",
        "./usr/sbin/jailbird",
    ]))
    .stdout;
    assert!(
        packed == std::fs::read(&bin).unwrap(),
        "packed binary differs"
    );

    let control = listing("control.tar.gz");
    for f in ["./control", "./conffiles", "./postinst", "./prerm"] {
        assert!(
            control.iter().any(|c| c == f),
            "control.tar.gz lacks {f}: {control:?}"
        );
    }
    let text =
        ok(Command::new("tar")
            .current_dir(&x)
            .args(["xzOf", "control.tar.gz", "./control"]));
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("control lacks {name}:\n{text}"))
            .to_string()
    };
    assert_eq!(field("Package"), "jailbird");
    assert_eq!(field("Version"), format!("{VERSION}-1"));
    assert_eq!(field("Architecture"), "x86_64");
    assert_eq!(field("Depends"), "libc");
    // The postinst's default_postinst makes the service user and group from
    // this field (add_group_and_user in OpenWrt's /lib/functions.sh); an SDK
    // build writes it from the feed Makefile's USERID.
    assert_eq!(field("Require-User"), "jailbird:jailbird");
    assert!(
        makefile.contains("\n  USERID:=jailbird:jailbird\n"),
        "the feed Makefile's USERID differs"
    );
    assert!(field("Installed-Size").parse::<u64>().unwrap() > 100_000);
    let conffiles =
        ok(Command::new("tar")
            .current_dir(&x)
            .args(["xzOf", "control.tar.gz", "./conffiles"]));
    assert_eq!(conffiles, "/etc/config/jailbird\n");

    // dpkg-deb reads the same format opkg does; and the build is reproducible.
    let info = ok(Command::new("dpkg-deb").arg("--info").arg(&ipk));
    assert!(info.contains("Package: jailbird"), "{info}");
    let again = build("b");
    assert!(
        std::fs::read(&ipk).unwrap() == std::fs::read(&again).unwrap(),
        "two builds of the .ipk differ"
    );
}

/// OpenWrt's UCI and procd shell functions, stubbed: a UCI file is shell
/// syntax (`config TYPE 'NAME'`, `option K 'V'`, `list K 'V'`), loaded the way
/// /lib/functions.sh does, with config_get/config_get_bool/config_foreach
/// following its semantics. procd calls are printed one per line, arguments
/// tab-separated, and so are `logger` calls. `user_exists` (/lib/functions.sh)
/// knows the one user in STUB_USER.
const OPENWRT_STUBS: &str = r#"
CONFIG_SECTIONS=
CONFIG_NUM=0
config() {
	CONFIG_NUM=$((CONFIG_NUM + 1))
	CONFIG_SECTION="${2:-cfg$CONFIG_NUM}"
	CONFIG_SECTIONS="$CONFIG_SECTIONS $CONFIG_SECTION"
	eval "CONFIG_${CONFIG_SECTION}_TYPE=\$1"
}
option() { eval "CONFIG_${CONFIG_SECTION}_$1=\$2"; }
list() {
	eval "stub_old=\${CONFIG_${CONFIG_SECTION}_$1:-}"
	if [ -n "$stub_old" ]; then stub_old="$stub_old $2"; else stub_old="$2"; fi
	eval "CONFIG_${CONFIG_SECTION}_$1=\$stub_old"
}
config_load() { [ "$1" = jailbird ] || exit 9; CONFIG_SECTIONS=; . "$UCI_FILE"; }
config_get() { eval "$1=\${CONFIG_$2_$3:-\${4:-}}"; }
config_get_bool() {
	config_get stub_b "$2" "$3" "${4:-0}"
	case "$stub_b" in
		1|on|true|yes|enabled) stub_b=1 ;;
		0|off|false|no|disabled) stub_b=0 ;;
		*) stub_b="${4:-0}" ;;
	esac
	eval "$1=\$stub_b"
}
config_foreach() {
	for stub_s in $CONFIG_SECTIONS; do
		eval "stub_t=\$CONFIG_${stub_s}_TYPE"
		[ "$stub_t" = "$2" ] && "$1" "$stub_s"
	done
	return 0
}
stub_print() { printf '%s' "$1"; shift; for a in "$@"; do printf '\t%s' "$a"; done; printf '\n'; }
procd_open_instance() { stub_print open "$@"; }
procd_close_instance() { stub_print close; }
procd_set_param() { stub_print set "$@"; }
procd_append_param() { stub_print append "$@"; }
procd_add_reload_trigger() { stub_print reload_trigger "$@"; }
procd_add_interface_trigger() { stub_print interface_trigger "$@"; }
procd_add_jail() { stub_print jail "$@"; }
procd_add_jail_mount() { stub_print jail_mount "$@"; }
procd_add_jail_mount_rw() { stub_print jail_mount_rw "$@"; }
user_exists() { [ -n "${STUB_USER:-}" ] && [ "$1" = "$STUB_USER" ]; }
logger() { stub_print logger "$@"; }
"#;

/// The router an init script test runs on: a temporary root holding the state
/// and status directories (and /sbin/ujail when the image has it), and the
/// service user and group when the package's postinst made them.
struct Image {
    root: Temp,
    user: Option<(String, String)>,
}

impl Image {
    /// An image whose service user is whoever runs the tests (a chown to
    /// oneself needs no privilege).
    fn new(ujail: bool) -> Image {
        let user = ok(Command::new("id").arg("-un")).trim().to_string();
        let group = ok(Command::new("id").arg("-gn")).trim().to_string();
        Image::with(ujail, Some((user, group)))
    }

    fn with(ujail: bool, user: Option<(String, String)>) -> Image {
        use std::os::unix::fs::PermissionsExt;
        let root = Temp::new("image");
        if ujail {
            std::fs::create_dir_all(root.path("sbin")).unwrap();
            std::fs::write(root.path("sbin/ujail"), "#!/bin/sh\nexit 1\n").unwrap();
            std::fs::set_permissions(
                root.path("sbin/ujail"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
        }
        Image { root, user }
    }

    fn state_dir(&self) -> String {
        self.root.str("etc/jailbird")
    }

    fn run_dir(&self) -> String {
        self.root.str("var/run/jailbird")
    }

    /// Shell lines, run after the init script is sourced, that point it at
    /// this image instead of the machine's /etc, /var/run and /sbin.
    fn setup(&self) -> String {
        let (user, group, known) = match &self.user {
            Some((u, g)) => (u.as_str(), g.as_str(), u.as_str()),
            None => ("jailbird", "jailbird", ""),
        };
        format!(
            "STATE_DEFAULT='{}/identity'\nRUN_DIR='{}'\nUJAIL='{}'\n\
             RUN_USER='{user}'\nRUN_GROUP='{group}'\nSTUB_USER='{known}'\n",
            self.state_dir(),
            self.run_dir(),
            self.root.str("sbin/ujail"),
        )
    }
}

/// What the init script registered with procd.
#[derive(Debug, Default)]
struct Procd {
    /// (instance name, command line, other params as "name\targs"; the jail
    /// as "jail\t...", "jail_mount\t...", "jail_mount_rw\t...").
    instances: Vec<(String, Vec<String>, Vec<String>)>,
    triggers: Vec<String>,
    /// What it told syslog (`logger` arguments, tab-separated).
    logs: Vec<String>,
}

impl Procd {
    /// The params of instance `name`.
    fn params(&self, name: &str) -> &[String] {
        &self
            .instances
            .iter()
            .find(|i| i.0 == name)
            .unwrap_or_else(|| panic!("no instance {name}: {self:?}"))
            .2
    }
}

/// The jail params among an instance's params, in order.
fn jail(params: &[String]) -> Vec<&str> {
    params
        .iter()
        .map(String::as_str)
        .filter(|p| p.starts_with("jail"))
        .collect()
}

/// Runs the init script's start_service and service_triggers over `uci`
/// under `shell`, with the stubs, on `image`.
fn procd_for(shell: &[&str], uci: &str, image: &Image) -> Procd {
    let t = Temp::new("uci");
    std::fs::write(t.path("jailbird"), uci).unwrap();
    let init = root().join("board/openwrt/files/jailbird.init");
    let script = format!(
        "set -u\n{OPENWRT_STUBS}\n. '{}'\n{}start_service\nservice_triggers\n",
        init.display(),
        image.setup()
    );
    let out = ok(Command::new(shell[0])
        .args(&shell[1..])
        .args(["-c", &script])
        .env("UCI_FILE", t.path("jailbird")));
    let mut p = Procd::default();
    for line in out.lines() {
        let mut f = line.split('\t').map(str::to_string);
        match f.next().as_deref() {
            Some("open") => p.instances.push((f.next().unwrap(), vec![], vec![])),
            Some(kind @ ("jail" | "jail_mount" | "jail_mount_rw")) => {
                let inst = p.instances.last_mut().expect("jail outside an instance");
                inst.2
                    .push(format!("{kind}\t{}", f.collect::<Vec<_>>().join("\t")));
            }
            Some("logger") => p.logs.push(f.collect::<Vec<_>>().join("\t")),
            Some("set" | "append") => {
                let inst = p.instances.last_mut().expect("param outside an instance");
                match f.next().as_deref() {
                    Some("command") => inst.1.extend(f),
                    Some(other) => inst.2.push(
                        [other.to_string()]
                            .into_iter()
                            .chain(f)
                            .collect::<Vec<_>>()
                            .join("\t"),
                    ),
                    None => panic!("empty procd param"),
                }
            }
            Some("close") => {}
            Some(_) => p.triggers.push(line.to_string()),
            None => {}
        }
    }
    p
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn openwrt_init_maps_uci_onto_the_cli() {
    need("busybox", "busybox");
    let t = Temp::new("init");
    let (p1, p2) = (closed_port(), closed_port());
    let kh = t.str("known_hosts");
    std::fs::write(&kh, format!("other.example {HOST_KEY}\n")).unwrap();
    let state = t.str("identity");
    let uci = format!(
        "config jailbird 'main'
	option enabled '1'
	option destination 'tunuser@127.0.0.1:{p1}'
	option remote_forward '2022:127.0.0.1:22'
	option known_hosts '{kh}'
	option host_key '{HOST_KEY}'
	option state '{state}'
	option server_alive_interval '7'
	option server_alive_count_max '4'
	option connect_timeout '5'
	option strict_host_key_checking 'yes'
	option stream_local_bind_unlink '1'
	option ciphers 'chacha20-poly1305@openssh.com'
	option log_level 'debug'

config jailbird 'off'
	option enabled '0'
	option destination 'x@y'
	option interface 'lan2'

config jailbird 'lan'
	option enabled 'yes'
	list destination 'tunuser@127.0.0.1:{p2}'
	list destination 'localhost:{p2}'
	option port '8022'
	option local_forward '127.0.0.1:0:db.internal:5432'
	option state '{state}'
	option strict_host_key_checking 'accept-new'
	option status_file '{status}'
	option interface 'lan'
",
        status = t.str("lan.status")
    );
    let image = Image::new(true);
    let main_status = format!("{}/main.status", image.run_dir());
    let want_main = strings(&[
        "/usr/sbin/jailbird",
        "run",
        "-R",
        "2022:127.0.0.1:22",
        "--state",
        &state,
        "--known-hosts",
        &kh,
        "--host-key",
        HOST_KEY,
        "-o",
        "ServerAliveInterval=7",
        "-o",
        "ServerAliveCountMax=4",
        "-o",
        "ConnectTimeout=5",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "Ciphers=chacha20-poly1305@openssh.com",
        "-o",
        "StreamLocalBindUnlink=yes",
        "--status-file",
        &main_status,
        &format!("tunuser@127.0.0.1:{p1}"),
    ]);
    let want_lan = strings(&[
        "/usr/sbin/jailbird",
        "run",
        "-p",
        "8022",
        "-L",
        "127.0.0.1:0:db.internal:5432",
        "--state",
        &state,
        "-o",
        "StrictHostKeyChecking=accept-new",
        "--status-file",
        &t.str("lan.status"),
        &format!("tunuser@127.0.0.1:{p2},localhost:{p2}"),
    ]);
    for shell in [&["sh"][..], &["busybox", "sh"][..]] {
        let p = procd_for(shell, &uci, &image);
        let names: Vec<&str> = p.instances.iter().map(|i| i.0.as_str()).collect();
        assert_eq!(names, ["main", "lan"], "{shell:?}: enabled sections only");
        assert_eq!(p.instances[0].1, want_main, "{shell:?}");
        assert_eq!(p.instances[1].1, want_lan, "{shell:?}");
        for params in [&p.instances[0].2, &p.instances[1].2] {
            for want in [
                "respawn\t3600\t5\t0",
                "stdout\t1",
                "stderr\t1",
                "no_new_privs\t1",
            ] {
                assert!(
                    params.iter().any(|x| x == want),
                    "{shell:?}: no {want:?} in {params:?}"
                );
            }
        }
        assert!(
            p.instances[0]
                .2
                .iter()
                .any(|x| x == "env\tJAILBIRD_LOG=debug")
        );
        assert!(
            p.instances[1]
                .2
                .iter()
                .any(|x| x == "env\tJAILBIRD_LOG=info")
        );
        assert_eq!(
            p.triggers,
            [
                "reload_trigger\tjailbird",
                "interface_trigger\tinterface.*.up\twan\t/etc/init.d/jailbird\trestart",
                "interface_trigger\tinterface.*.up\tlan\t/etc/init.d/jailbird\trestart",
            ],
            "{shell:?}"
        );
    }

    // The real binary accepts both command lines: no exit 2, it tries the jail.
    let swap = |cmd: &[String], status: &str| -> Vec<String> {
        let mut args: Vec<String> = cmd[1..].to_vec();
        if let Some(i) = args.iter().position(|a| a == "--status-file") {
            args[i + 1] = status.to_string();
        }
        args
    };
    let log = vec![("JAILBIRD_LOG".to_string(), "info".to_string())];
    accepted_and_retrying(
        BIN,
        &swap(&want_main, &t.str("main.status")),
        &log,
        &format!("127.0.0.1:{p1}"),
    );
    accepted_and_retrying(
        BIN,
        &swap(&want_lan, &t.str("lan.status")),
        &log,
        &format!("127.0.0.1:{p2}"),
    );

    // The shipped /etc/config/jailbird: disabled, so nothing runs; enabled, the
    // example tunnel with its WAN trigger.
    let shipped =
        std::fs::read_to_string(root().join("board/openwrt/files/jailbird.config")).unwrap();
    let p = procd_for(&["busybox", "sh"], &shipped, &image);
    assert!(p.instances.is_empty(), "{p:?}");
    assert_eq!(p.triggers, ["reload_trigger\tjailbird"]);
    let p = procd_for(
        &["sh"],
        &shipped.replace("option enabled '0'", "option enabled '1'"),
        &image,
    );
    assert_eq!(
        p.instances[0].1,
        strings(&[
            "/usr/sbin/jailbird",
            "run",
            "-R",
            "2022:127.0.0.1:22",
            "--known-hosts",
            "/etc/jailbird/known_hosts",
            "--status-file",
            &main_status,
            "tunuser@jail.example:8022",
        ])
    );
    assert!(
        p.triggers
            .iter()
            .any(|t| t.contains("interface.*.up\twan\t"))
    );
}

/// The value of a `NAME=value` line of the OpenWrt init script.
#[test]
fn openwrt_init_passes_the_claim_token_in_the_environment_only() {
    need("busybox", "busybox");
    let t = Temp::new("claim-init");
    let dhk = t.str("device_host_key.pub");
    let uci = format!(
        "config jailbird 'main'
	option enabled '1'
	option destination 'jail.example:8022'
	option known_hosts '/etc/jailbird/known_hosts'
	option claim 'jbc1-s3cret'
	option claim_user 'enrol'
	option device_id 'router-17'
	option device_host_key '{dhk}'
"
    );
    let image = Image::new(true);
    for shell in [&["sh"][..], &["busybox", "sh"][..]] {
        let p = procd_for(shell, &uci, &image);
        let (_, cmd, params) = &p.instances[0];
        assert_eq!(
            cmd,
            &strings(&[
                "/usr/sbin/jailbird",
                "run",
                "--known-hosts",
                "/etc/jailbird/known_hosts",
                "--status-file",
                &format!("{}/main.status", image.run_dir()),
                "--claim-user",
                "enrol",
                "--device-id",
                "router-17",
                "--device-host-key",
                &dhk,
                "jail.example:8022",
            ]),
            "{shell:?}"
        );
        assert!(
            params
                .iter()
                .any(|x| x == "env\tJAILBIRD_LOG=info\tJAILBIRD_CLAIM=jbc1-s3cret"),
            "{shell:?}: {params:?}"
        );
        // In ujail: sysfs for the MAC, the host key file mounted.
        let jail = jail(params);
        assert!(
            jail.iter()
                .any(|x| x.starts_with("jail\tjailbird\tprocfs\tsysfs")),
            "{jail:?}"
        );
        assert!(
            jail.contains(&format!("jail_mount\t{dhk}").as_str()),
            "{jail:?}"
        );
    }
}

fn init_value(name: &str) -> String {
    let text = std::fs::read_to_string(root().join("board/openwrt/files/jailbird.init")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("jailbird.init sets no {name}"))
        .to_string()
}

/// The uid the tests run as.
fn my_uid() -> u32 {
    ok(Command::new("id").arg("-u")).trim().parse().unwrap()
}

/// Owner and permission bits of `path` (not following a symlink).
fn owner_mode(path: &str) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    (m.uid(), m.mode() & 0o7777)
}

#[test]
fn openwrt_init_runs_as_jailbird_and_in_ujail_where_the_image_has_it() {
    need("busybox", "busybox");
    // What the script takes for granted, against the package and the build.
    assert_eq!(init_value("RUN_USER"), "jailbird", "Require-User's user");
    assert_eq!(init_value("RUN_GROUP"), "jailbird", "Require-User's group");
    let profile = std::fs::read_to_string(root().join("board/openwrt/profile.sh")).unwrap();
    assert!(
        profile.contains(&format!(
            ": \"${{JAILBIRD_DEFAULT_STATE:={}}}\"",
            init_value("STATE_DEFAULT")
        )),
        "the init script's STATE_DEFAULT is not the OpenWrt build's JAILBIRD_DEFAULT_STATE"
    );
    assert_eq!(init_value("RUN_DIR"), "/var/run/jailbird");
    assert_eq!(init_value("UJAIL"), "/sbin/ujail");

    let t = Temp::new("priv");
    let (kh, idf) = (t.str("known_hosts"), t.str("id_ed25519"));
    let uci = format!(
        "config jailbird 'main'
	option enabled '1'
	option destination 'tunuser@jail.example'
	option known_hosts '{kh}'

config jailbird 'lan'
	option enabled '1'
	option destination 'tunuser@jail.example'
	option jail '0'

config jailbird 'other'
	option enabled '1'
	option destination 'tunuser@jail.example'
	option identity_file '{idf}'
	option state '{state}'
	option status_file '{status}'
",
        state = t.str("keys/identity"),
        status = t.str("status/other.status"),
    );
    let names = ["main", "lan", "other"];
    let has = |params: &[String], prefix: &str| params.iter().any(|p| p.starts_with(prefix));
    for shell in [&["sh"][..], &["busybox", "sh"][..]] {
        // ujail and the service user: every instance runs as that user, each
        // jailed unless it says `option jail '0'`, with only what it needs.
        let image = Image::new(true);
        let (user, group) = image.user.clone().unwrap();
        let p = procd_for(shell, &uci, &image);
        for name in names {
            let params = p.params(name);
            for want in [format!("user\t{user}"), format!("group\t{group}")] {
                assert!(
                    params.contains(&want),
                    "{shell:?} {name}: no {want:?} in {params:?}"
                );
            }
        }
        let (hosts, jailed) = (
            "jail_mount\t/etc/hosts\t/etc/resolv.conf",
            "jail\tjailbird\tprocfs\tronly",
        );
        assert_eq!(
            jail(p.params("main")),
            [
                jailed,
                hosts,
                &format!("jail_mount\t{kh}"),
                &format!("jail_mount_rw\t{}\t{}", image.state_dir(), image.run_dir()),
            ],
            "{shell:?}"
        );
        assert!(
            jail(p.params("lan")).is_empty(),
            "{shell:?}: option jail '0'"
        );
        assert_eq!(
            jail(p.params("other")),
            [
                jailed,
                hosts,
                &format!("jail_mount\t{idf}"),
                &format!("jail_mount_rw\t{}\t{}", t.str("keys"), t.str("status")),
            ],
            "{shell:?}"
        );
        assert!(p.logs.is_empty(), "{shell:?}: {:?}", p.logs);
        // The state directory is the service user's alone; the status
        // directory the service user's, readable by all.
        let me = my_uid();
        assert_eq!(owner_mode(&image.state_dir()), (me, 0o700), "{shell:?}");
        assert_eq!(owner_mode(&image.run_dir()), (me, 0o755), "{shell:?}");

        // No ujail on the image: the same user, no jail.
        let image = Image::new(false);
        let p = procd_for(shell, &uci, &image);
        for name in names {
            let params = p.params(name);
            assert!(
                params.contains(&format!("user\t{user}"))
                    && params.contains(&format!("group\t{group}")),
                "{shell:?} {name}: {params:?}"
            );
            assert!(jail(params).is_empty(), "{shell:?} {name}: {params:?}");
        }

        // No service user (the package unpacked without its postinst): the
        // tunnels run as root, still jailed, and the log says why.
        let image = Image::with(true, None);
        let p = procd_for(shell, &uci, &image);
        for name in names {
            let params = p.params(name);
            assert!(
                !has(params, "user\t") && !has(params, "group\t"),
                "{shell:?} {name}: {params:?}"
            );
        }
        assert_eq!(jail(p.params("main"))[0], jailed, "{shell:?}");
        assert!(
            p.logs
                .iter()
                .any(|l| l.contains("daemon.warn") && l.contains("no user jailbird")),
            "{shell:?}: {:?}",
            p.logs
        );
    }
}

#[test]
fn openwrt_init_hands_a_root_key_to_the_service_user() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    assert_eq!(
        my_uid(),
        0,
        "this test hands files to the user nobody: run it as root (.ci/run does)"
    );
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let nobody: Vec<u32> = passwd
        .lines()
        .find_map(|l| l.strip_prefix("nobody:"))
        .expect("no user nobody in /etc/passwd")
        .split(':')
        .skip(1)
        .take(2)
        .map(|n| n.parse().unwrap())
        .collect();
    let (uid, gid) = (nobody[0], nobody[1]);
    let image = Image::with(false, Some(("nobody".into(), gid.to_string())));

    // An install from before the service dropped root: /etc/jailbird and its
    // key are root's (as `jailbird authorize` run as root also leaves them).
    let dir = image.state_dir();
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    let identity = format!("{dir}/identity");
    let key = ok(Command::new(BIN).args(["key", "--state", &identity]));
    let lock = format!("{identity}.lock");
    std::fs::write(&lock, "").unwrap();
    std::fs::set_permissions(&lock, std::fs::Permissions::from_mode(0o600)).unwrap();
    let as_nobody = || {
        output(
            Command::new(BIN)
                .args(["key", "--state", &identity])
                .uid(uid)
                .gid(gid),
        )
    };
    assert!(
        !as_nobody().status.success(),
        "nobody read root's key before the handover"
    );

    // What a service user gone bad could plant where its key should be: a
    // hard link and a symlink to a file of root's.
    let victim = image.root.str("victim");
    std::fs::write(&victim, "root's\n").unwrap();
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::create_dir_all(image.root.path("linked")).unwrap();
    std::fs::hard_link(&victim, image.root.path("linked/identity")).unwrap();
    std::fs::create_dir_all(image.root.path("symlinked")).unwrap();
    std::os::unix::fs::symlink(&victim, image.root.path("symlinked/identity")).unwrap();
    let uci = format!(
        "config jailbird 'main'
	option enabled '1'
	option destination 'tunuser@jail.example'

config jailbird 'linked'
	option enabled '1'
	option destination 'tunuser@jail.example'
	option state '{}'

config jailbird 'symlinked'
	option enabled '1'
	option destination 'tunuser@jail.example'
	option state '{}'
",
        image.root.str("linked/identity"),
        image.root.str("symlinked/identity"),
    );
    let p = procd_for(&["busybox", "sh"], &uci, &image);
    assert!(
        p.params("main").contains(&"user\tnobody".to_string()),
        "{p:?}"
    );

    assert_eq!(owner_mode(&dir), (uid, 0o700));
    assert_eq!(owner_mode(&image.run_dir()), (uid, 0o755));
    assert_eq!(
        owner_mode(&identity),
        (uid, 0o600),
        "the key was not handed over"
    );
    assert_eq!(
        owner_mode(&lock),
        (uid, 0o600),
        "the pin lock was not handed over"
    );
    for f in [&identity, &lock] {
        assert!(
            p.logs
                .iter()
                .any(|l| l.ends_with(&format!("{f} now belongs to nobody, who runs the tunnel"))),
            "{f}: {:?}",
            p.logs
        );
    }
    assert_eq!(
        owner_mode(&victim),
        (0, 0o600),
        "a hard link handed root's file over"
    );
    assert_eq!(owner_mode(&image.root.str("symlinked/identity")).0, 0);
    assert_eq!(p.logs.len(), 2, "{:?}", p.logs);

    // The service user now reads the same identity: the device keeps its key.
    let out = as_nobody();
    assert!(
        out.status.success(),
        "nobody cannot read the handed-over key: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), key);
}

/// `KEY=VALUE` lines of an EnvironmentFile; `commented` takes `#KEY=VALUE` ones instead.
fn env_lines(text: &str, commented: bool, prefix: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            if commented {
                l.strip_prefix('#')
            } else {
                Some(l)
            }
        })
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn set(env: &mut Vec<(String, String)>, key: &str, value: &str) {
    env.retain(|(k, _)| k != key);
    env.push((key.into(), value.into()));
}

#[test]
fn env_file_examples_are_accepted() {
    let text = std::fs::read_to_string(root().join("board/rpi-zero/jailbird.env")).unwrap();
    let t = Temp::new("envfile");
    let kh = t.str("known_hosts");
    std::fs::write(&kh, format!("other.example {HOST_KEY}\n")).unwrap();

    // The active JAILBIRD_* settings, as `jailbird run` under the unit sees them.
    let mut env = env_lines(&text, false, "JAILBIRD_");
    for k in [
        "JAILBIRD_DESTINATION",
        "JAILBIRD_REMOTE_FORWARD",
        "JAILBIRD_KNOWN_HOSTS",
    ] {
        assert!(env.iter().any(|(n, _)| n == k), "jailbird.env sets no {k}");
    }
    let port = closed_port();
    set(
        &mut env,
        "JAILBIRD_DESTINATION",
        &format!("tunuser@127.0.0.1:{port}"),
    );
    set(&mut env, "JAILBIRD_KNOWN_HOSTS", &kh);
    set(&mut env, "JAILBIRD_STATE", &t.str("identity"));
    set(&mut env, "JAILBIRD_STATUS_FILE", &t.str("status"));
    accepted_and_retrying(BIN, &strings(&["run"]), &env, &format!("127.0.0.1:{port}"));

    // The commented autossh-container block, uncommented, on its own.
    let mut env = env_lines(&text, true, "SSH_");
    assert!(env.len() >= 8, "{env:?}");
    let port = closed_port();
    set(&mut env, "SSH_REMOTE_HOST", "127.0.0.1");
    set(&mut env, "SSH_REMOTE_PORT", &port.to_string());
    set(&mut env, "SSH_KNOWN_HOSTS_FILE", &kh);
    set(&mut env, "JAILBIRD_STATE", &t.str("identity"));
    set(&mut env, "JAILBIRD_STATUS_FILE", &t.str("status"));
    accepted_and_retrying(BIN, &strings(&["run"]), &env, &format!("127.0.0.1:{port}"));
}

#[test]
fn container_takes_the_autossh_environment() {
    let file = std::fs::read_to_string(root().join("board/container/Containerfile")).unwrap();
    assert!(file.lines().any(|l| l == "FROM scratch"));
    let entry = file
        .lines()
        .find_map(|l| l.strip_prefix("ENTRYPOINT "))
        .expect("no ENTRYPOINT");
    let argv: Vec<String> = entry
        .trim_matches(['[', ']'])
        .split(',')
        .map(|a| a.trim().trim_matches('"').to_string())
        .collect();
    assert_eq!(argv, ["/jailbird", "run"]);
    // Not root, and the identity volume belongs to that user.
    let user = file
        .lines()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("no USER");
    assert!(
        !user.starts_with("0") && !user.starts_with("root"),
        "USER {user}"
    );
    assert!(
        file.lines()
            .any(|l| l == format!("COPY --chown={user} state/ /var/lib/jailbird/")),
        "the identity volume is not owned by USER {user}"
    );
    let t = Temp::new("container");
    let kh = t.str("known_hosts");
    std::fs::write(&kh, format!("other.example {HOST_KEY}\n")).unwrap();
    // The seed's docker-compose services, -R and -L (bound on loopback, port 0,
    // instead of 0.0.0.0:1234 so the test needs no free fixed port).
    for mode in ["-R", "-L"] {
        let port = closed_port();
        let mut env = strings(&[
            "SSH_REMOTE_USER=sshuser",
            "SSH_REMOTE_HOST=127.0.0.1",
            "SSH_TARGET_HOST=198.168.123.45",
            "SSH_TARGET_PORT=22",
            "SSH_TUNNEL_PORT=0",
            "SSH_BIND_IP=127.0.0.1",
            "SSH_SERVER_ALIVE_INTERVAL=10",
            "SSH_SERVER_ALIVE_COUNT_MAX=3",
            "SSH_OPTIONS=-o StreamLocalBindUnlink=yes",
        ])
        .iter()
        .map(|kv| kv.split_once('=').unwrap())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>();
        set(&mut env, "SSH_REMOTE_PORT", &port.to_string());
        set(&mut env, "SSH_MODE", mode);
        set(&mut env, "SSH_KNOWN_HOSTS_FILE", &kh);
        set(&mut env, "JAILBIRD_STATE", &t.str("identity"));
        set(&mut env, "JAILBIRD_STATUS_FILE", &t.str("status"));
        accepted_and_retrying(BIN, &argv[1..], &env, &format!("127.0.0.1:{port}"));
    }
}

/// `cargo build` of the binary with `vars` set, into target/defaults-test
/// (kept across runs, so only the first run compiles the dependencies).
fn build_with(vars: &[(&str, &str)]) -> Output {
    let cargo = std::env::var("CARGO")
        .ok()
        .or(option_env!("CARGO").map(String::from))
        .unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new("nice");
    cmd.args([
        "-n",
        "10",
        &cargo,
        "build",
        "--locked",
        "--bin",
        "jailbird",
        "--target-dir",
    ])
    .arg(root().join("target/defaults-test"))
    .current_dir(root());
    for (k, _) in std::env::vars() {
        if k.starts_with("JAILBIRD_") || k == "CARGO_BUILD_TARGET" {
            cmd.env_remove(k);
        }
    }
    // No debug info, no incremental cache: a third of the disk and time.
    cmd.env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("CARGO_INCREMENTAL", "0");
    cmd.envs(vars.iter().copied());
    output(&mut cmd)
}

#[test]
fn build_time_defaults_change_the_binary() {
    let t = Temp::new("defaults");
    // A malformed value and a misspelt name fail the build, each named.
    let out = build_with(&[
        ("JAILBIRD_DEFAULT_PORT", "99999"),
        ("JAILBIRD_DEFAULT_DESTINATON", "typo@jail"),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a bad JAILBIRD_DEFAULT_PORT built:\n{err}"
    );
    assert!(
        err.contains("JAILBIRD_DEFAULT_PORT=\"99999\"") && err.contains("1..=65535"),
        "{err}"
    );
    assert!(
        err.contains("JAILBIRD_DEFAULT_DESTINATON: unknown build-time variable"),
        "{err}"
    );

    // Port 1 on loopback refuses; jail.test (RFC 2606) never resolves.
    let state = root().join("target/defaults-test/identity");
    let vars = [
        (
            "JAILBIRD_DEFAULT_DESTINATION",
            "tunuser@127.0.0.1:1,backup@jail.test:2222",
        ),
        ("JAILBIRD_DEFAULT_PORT", "2200"),
        ("JAILBIRD_DEFAULT_USER", "jbuser"),
        ("JAILBIRD_DEFAULT_REMOTE_FORWARD", "2022:127.0.0.1:22"),
        ("JAILBIRD_DEFAULT_HOST_KEY", HOST_KEY),
        ("JAILBIRD_DEFAULT_STATE", state.to_str().unwrap()),
        ("JAILBIRD_DEFAULT_SERVER_ALIVE_INTERVAL", "7"),
        ("JAILBIRD_DEFAULT_CONNECT_TIMEOUT", "5"),
        ("JAILBIRD_MAX_CHANNELS", "8"),
    ];
    let out = build_with(&vars);
    assert!(
        out.status.success(),
        "build with defaults failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = root().join("target/defaults-test/debug/jailbird");
    let bin = bin.to_str().unwrap();
    let info = ok(Command::new(bin).arg("info"));
    for (k, v) in &vars[..vars.len() - 1] {
        assert!(
            info.contains(&format!("\n  {k}={v}\n")),
            "info lacks {k}={v}:\n{info}"
        );
    }
    assert!(info.contains(" MAX_CHANNELS=8 "), "{info}");
    assert_eq!(ok(Command::new(bin).arg("--version")), info);
    // The host build's defaults are the stock ones.
    let stock = ok(Command::new(BIN).arg("info"));
    assert!(
        stock.contains("\n  JAILBIRD_DEFAULT_DESTINATION=\n"),
        "{stock}"
    );
    assert!(stock.contains("\n  JAILBIRD_DEFAULT_PORT=22\n"), "{stock}");

    // No flags and no JAILBIRD_*/SSH_* jail settings: the compiled-in jail,
    // forward and host key are used (only the status file is moved off /tmp).
    let env = vec![("JAILBIRD_STATUS_FILE".to_string(), t.str("status"))];
    accepted_and_retrying(bin, &strings(&["run"]), &env, "127.0.0.1:1");
    // ... and flags still win.
    let port = closed_port();
    accepted_and_retrying(
        bin,
        &strings(&["run", &format!("127.0.0.1:{port}")]),
        &env,
        &format!("127.0.0.1:{port}"),
    );
}

/// Users of cross-rs get every build-time variable build.rs reads (a value
/// left out of Cross.toml's passthrough would silently not be baked in) and
/// every target scripts/build-target.sh builds.
#[test]
fn cross_toml_passes_every_build_time_variable_and_names_every_target() {
    let read = |f: &str| std::fs::read_to_string(root().join(f)).unwrap();
    let quoted = |text: &str, prefix: &str| -> Vec<String> {
        text.split('"')
            .skip(1)
            .step_by(2)
            .filter(|w| w.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    };
    let cross = read("Cross.toml");
    let passed = quoted(&cross, "JAILBIRD_");
    // build.rs's table of variables: one `("NAME", check),` a line.
    let read_by_build: Vec<String> = read("build.rs")
        .lines()
        .filter(|l| l.trim_start().starts_with("(\"JAILBIRD_"))
        .flat_map(|l| quoted(l, "JAILBIRD_").into_iter().take(1))
        .collect();
    assert!(read_by_build.len() >= 15, "{read_by_build:?}");
    for name in &read_by_build {
        assert!(
            passed.contains(name),
            "Cross.toml does not pass {name} through"
        );
    }
    let script = read("scripts/build-target.sh");
    let case = script
        .lines()
        .find(|l| l.contains("arm-unknown-linux-musleabihf|"))
        .expect("build-target.sh's target list");
    let targets: Vec<&str> = case.trim().trim_end_matches(") ;;").split('|').collect();
    assert!(targets.len() >= 6, "{targets:?}");
    for t in targets {
        assert!(
            cross.contains(&format!("[target.{t}]")),
            "Cross.toml has no [target.{t}]"
        );
    }
}
