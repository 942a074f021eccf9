//! warden's test harness: a registry on either real backend (a SQLite file in
//! a directory owned by the command user; a throw-away PostgreSQL cluster per
//! test binary, a fresh database per test), the warden binary installed the
//! way sshd insists (root-owned path, not writable by others), and jail sshds
//! made of a plain sshd_config plus `warden sshd-config`'s drop-in.
//! The agent's own harness (real sshd, agent process, echo, waits with
//! deadlines) is shared, not copied.
#![allow(dead_code)]

pub use jailbird_test_support as agent;

#[allow(unused_imports)]
pub use agent::{
    Agent, DeviceSshd, READY, TempDir, free_port, keygen, kill_group, port_answers, run_ok,
    wait_until,
};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The account sshd runs `authorized-keys` as (scripts/test-setup.sh makes it).
pub const COMMAND_USER: &str = "warden";
/// The jail account operators log in as (scripts/test-setup.sh makes it).
pub const OPERATOR_USER: &str = "jbop";
/// The jail account devices claim through (scripts/test-setup.sh makes it).
pub const CLAIM_USER: &str = "jbclaim";

static N: AtomicUsize = AtomicUsize::new(0);
fn next() -> usize {
    N.fetch_add(1, Ordering::SeqCst)
}

pub fn require_root() {
    assert!(
        agent::is_root(),
        "warden's tests run sshd and PostgreSQL under their own accounts: run them as root (scripts/test.sh)"
    );
    for u in [COMMAND_USER, OPERATOR_USER] {
        assert!(
            Command::new("id").arg(u).output().unwrap().status.success(),
            "user {u} missing: run scripts/test-setup.sh"
        );
    }
}

/// The tunnel account devices log in as.
pub fn tunnel_user() -> String {
    agent::jail_user()
}

/// The warden binary, copied once per test binary to a root-owned 0755
/// directory under /run (sshd refuses an AuthorizedKeysCommand whose path
/// has a component writable by others, like /tmp).
pub fn warden_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = PathBuf::from(format!("/run/warden-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        run_ok(Command::new("chmod").arg("0755").arg(&dir));
        let bin = dir.join("warden");
        std::fs::copy(env!("CARGO_BIN_EXE_warden"), &bin).unwrap();
        run_ok(Command::new("chmod").arg("0755").arg(&bin));
        reap_when_gone(&format!("rm -rf {}", dir.display()));
        bin
    })
    .clone()
}

/// Runs `cleanup` (a shell command) once this test process has exited, even
/// if it panicked or was killed.
#[allow(clippy::zombie_processes)] // detached on purpose: it outlives this process
pub fn reap_when_gone(cleanup: &str) {
    let me = std::process::id();
    Command::new("setsid")
        .args([
            "sh",
            "-c",
            &format!("while kill -0 {me} 2>/dev/null; do sleep 1; done; {cleanup}"),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn reaper");
}

// ---- PostgreSQL -------------------------------------------------------------

pub struct PgCluster {
    pub dir: PathBuf,
    pub port: u16,
    pub bin: PathBuf,
}

pub fn pg_bin() -> PathBuf {
    if let Ok(p) = std::env::var("WARDEN_TEST_PG_BIN") {
        return p.into();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .expect("no PostgreSQL server: run scripts/test-setup.sh (installs postgresql)")
}

pub fn as_postgres(bin: &Path, tool: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
    c
}

/// One throw-away cluster per test binary: initdb in a temp dir, pg_ctl on a
/// free loopback port and a private socket directory; stopped and removed
/// when the test process is gone.
pub fn pg() -> &'static PgCluster {
    static PG: OnceLock<PgCluster> = OnceLock::new();
    PG.get_or_init(|| {
        require_root();
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!("warden-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        run_ok(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir),
        );
        pg_initdb(&bin, &dir);
        // One role must give a password (PGPASSWORD / .pgpass tests); the
        // rest of the cluster trusts loopback.
        std::fs::write(
            dir.join("data/pg_hba.conf"),
            "host all warden_pw 127.0.0.1/32 scram-sha-256\n\
             local all all trust\n\
             host all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let port = pg_start(&bin, &dir, "-c max_connections=200");
        PgCluster { dir, port, bin }
    })
}

/// `initdb` of a cluster in `dir/data` (trust, UTF8, no fsync), as postgres.
pub fn pg_initdb(bin: &Path, dir: &Path) {
    run_ok(
        as_postgres(bin, "initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(dir.join("data")),
    );
}

/// Starts the cluster initdb made in `dir` on a free loopback port (its
/// socket in `dir/sock`, `extra` server options), removed when this test
/// process is gone; returns the port. Tries a few ports in case one is
/// taken meanwhile.
pub fn pg_start(bin: &Path, dir: &Path, extra: &str) -> u16 {
    reap_when_gone(&format!(
        "runuser -u postgres -- {} -D {} -m immediate stop; rm -rf {}",
        bin.join("pg_ctl").display(),
        dir.join("data").display(),
        dir.display()
    ));
    let mut last = String::new();
    for _ in 0..10 {
        let port = free_port();
        let out = as_postgres(bin, "pg_ctl")
            .arg("-D")
            .arg(dir.join("data"))
            .arg("-l")
            .arg(dir.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off {extra}",
                dir.join("sock").display()
            ))
            .args(["-w", "-t", "30", "start"])
            .output()
            .unwrap();
        if out.status.success() {
            return port;
        }
        last = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
    }
    panic!("PostgreSQL did not start: {last}");
}

impl PgCluster {
    pub fn client(&self, db: &str) -> postgres::Client {
        postgres::Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname={db}",
                self.port
            ),
            postgres::NoTls,
        )
        .unwrap()
    }
    pub fn stop(&self) {
        run_ok(
            as_postgres(&self.bin, "pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-m", "fast", "-w", "stop"]),
        );
    }
}

// ---- a registry on either backend -------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh registry for one test.
pub struct Registry {
    pub kind: Kind,
    pub url: String,
    /// SQLite: the directory (owned by the command user) holding the file.
    pub dir: TempDir,
    pg_db: Option<String>,
}

impl Registry {
    pub fn new(kind: Kind) -> Registry {
        require_root();
        let dir = TempDir::new("registry");
        match kind {
            Kind::Sqlite => {
                let reg = dir.path("reg");
                std::fs::create_dir(&reg).unwrap();
                run_ok(
                    Command::new("chown")
                        .arg(format!("{COMMAND_USER}:{COMMAND_USER}"))
                        .arg(&reg),
                );
                run_ok(Command::new("chmod").arg("0750").arg(&reg));
                let url = format!("sqlite://{}/registry.db", reg.display());
                Registry {
                    kind,
                    url,
                    dir,
                    pg_db: None,
                }
            }
            Kind::Postgres => {
                let cluster = pg();
                let name = format!("t_{}_{}", std::process::id(), next());
                cluster
                    .client("postgres")
                    .batch_execute(&format!("CREATE DATABASE {name}"))
                    .unwrap();
                Registry {
                    kind,
                    url: format!("postgres://postgres@127.0.0.1:{}/{name}", cluster.port),
                    dir,
                    pg_db: Some(name),
                }
            }
        }
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.dir.path("reg").join("registry.db")
    }

    /// `warden ARGS` against this registry: (exit code, stdout, stderr).
    pub fn warden(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.warden_cmd(args).output().expect("run warden");
        split(out)
    }

    pub fn warden_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(warden_bin());
        c.env_remove("WARDEN_DB")
            .env_remove("PGPASSWORD")
            .arg("--db")
            .arg(&self.url)
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// `warden ARGS` that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.warden(args);
        assert_eq!(code, 0, "warden {args:?} failed: {err}");
        out
    }

    /// Every row of every table, in a stable order.
    pub fn dump(&self) -> String {
        match self.kind {
            Kind::Sqlite => run_ok(Command::new("sqlite3").arg(self.sqlite_path()).arg(".dump")),
            Kind::Postgres => {
                let c = pg();
                // pg_dump's \restrict line carries a random nonce per run.
                run_ok(
                    as_postgres(&c.bin, "pg_dump")
                        .args([
                            "-h",
                            "127.0.0.1",
                            "-p",
                            &c.port.to_string(),
                            "-U",
                            "postgres",
                        ])
                        .args(["--no-owner", "--inserts"])
                        .arg(self.pg_db.as_deref().unwrap()),
                )
                .lines()
                .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
                .collect::<Vec<_>>()
                .join("\n")
            }
        }
    }

    /// A pool, a jail for it, and an enrolled device: the usual start.
    pub fn pool(&self, name: &str, ports: &str) {
        self.ok(&["pool", "add", name, "--ports", ports]);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Some(db) = &self.pg_db {
            let _ = pg()
                .client("postgres")
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}

pub fn split(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A fresh ed25519 key pair: (private key path, public line).
pub fn key(dir: &TempDir) -> (PathBuf, String) {
    keygen(dir, &format!("k{}", next()))
}

// ---- a jail: plain sshd_config + warden's drop-in ---------------------------

pub struct Jail {
    pub name: String,
    pub dir: TempDir,
    pub port: u16,
    pub host_key_line: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Jail {
    /// Registers jail `name` (pool `pool`) in `reg` on a free port, writes the
    /// drop-in `warden sshd-config` prints, and starts sshd with it.
    pub fn start(reg: &Registry, name: &str, pool: &str) -> Jail {
        Self::start_with(reg, name, pool, None, None)
    }

    /// As [`Jail::start`], on `port` if given, and with a host certificate
    /// from `host_ca` (`warden jail sign`, `sshd-config --host-certificate`).
    pub fn start_with(
        reg: &Registry,
        name: &str,
        pool: &str,
        port: Option<u16>,
        host_ca: Option<&Path>,
    ) -> Jail {
        let dir = TempDir::new("wjail");
        let (_, host_key_line) = keygen(&dir, "ssh_host_ed25519_key");
        let port = port.unwrap_or_else(free_port);
        reg.ok(&[
            "jail",
            "add",
            name,
            "--address",
            &format!("127.0.0.1:{port}"),
            "--host-key",
            &host_key_line,
            "--pool",
            pool,
            "--user",
            &tunnel_user(),
            "--operator-user",
            OPERATOR_USER,
            "--claim-user",
            CLAIM_USER,
        ]);
        let bin = warden_bin();
        let cert = dir.path("ssh_host_ed25519_key-cert.pub");
        let mut args = vec![
            "sshd-config".to_string(),
            "--jail".into(),
            name.into(),
            "--binary".into(),
            bin.display().to_string(),
            "--operator-user".into(),
            OPERATOR_USER.into(),
        ];
        if let Some(ca) = host_ca {
            reg.ok(&[
                "jail",
                "sign",
                name,
                "--ca",
                ca.to_str().unwrap(),
                "--out",
                cert.to_str().unwrap(),
            ]);
            args.extend(["--host-certificate".into(), cert.display().to_string()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let dropin = reg.ok(&refs);
        std::fs::write(dir.path("warden.conf"), dropin).unwrap();
        let mut j = Jail {
            name: name.to_string(),
            dir,
            port,
            host_key_line,
            child: None,
            log: PathBuf::new(),
        };
        j.spawn();
        j
    }

    /// (Re)starts sshd on the jail's port: a plain sshd_config that includes
    /// the drop-in, as on a jail host.
    pub fn spawn(&mut self) {
        let cfg = self.dir.path("sshd_config");
        std::fs::write(
            &cfg,
            format!(
                "Include {}\nListenAddress 127.0.0.1:{}\nHostKey {}\nPidFile {}\nUsePAM no\n",
                self.dir.path("warden.conf").display(),
                self.port,
                self.dir.path("ssh_host_ed25519_key").display(),
                self.pid_file().display(),
            ),
        )
        .unwrap();
        let mut last = String::new();
        for _ in 0..20 {
            self.log = self.dir.path(&format!("sshd-{}.log", next()));
            let child = agent::start_sshd(&cfg, &self.log, None);
            match agent::wait_sshd_ready(child, &self.log, self.port, true) {
                Ok(c) => {
                    self.child = Some(c);
                    return;
                }
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("jail sshd did not start: {last}");
    }

    pub fn pid_file(&self) -> PathBuf {
        self.dir.path("sshd.pid")
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            kill_group(c.id());
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A real `ssh` client against this jail: (exit code, stdout, stderr).
    pub fn ssh(&self, key: &Path, user: &str, extra: &[&str]) -> (i32, String, String) {
        split(self.ssh_cmd(key, user, extra).output().unwrap())
    }

    /// `extra`: ssh options, then the remote command (if any) after a `--`.
    pub fn ssh_cmd(&self, key: &Path, user: &str, extra: &[&str]) -> Command {
        let split_at = extra.iter().position(|a| *a == "--").unwrap_or(extra.len());
        let (opts, command) = (&extra[..split_at], extra.get(split_at + 1..).unwrap_or(&[]));
        let mut c = agent::ssh_client(key);
        c.args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
            .args(["-p", &self.port.to_string()])
            .args(opts)
            .arg(format!("{user}@127.0.0.1"))
            .args(command);
        c
    }
}

impl Drop for Jail {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a `KEY=VALUE` env file (as systemd's EnvironmentFile= does).
pub fn env_file(path: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// Starts the real agent from exactly the files `device-config` wrote in
/// `out`, with the device identity at `state`.
pub fn agent_from(out: &Path, state: &Path) -> Agent {
    let env = env_file(&out.join("jailbird.env"));
    let mut all: Vec<(String, String)> = env;
    all.push(("JAILBIRD_STATE".into(), state.display().to_string()));
    let refs: Vec<(&str, &str)> = all.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Agent::spawn(&["run"], &refs)
}

/// The device's public key line (`jailbird key`), creating its identity.
pub fn device_key(state: &Path) -> String {
    let (status, out, err) = agent::jailbird(&["key", "--state", state.to_str().unwrap()]);
    assert!(status.success(), "jailbird key: {err}");
    out.trim().to_string()
}

/// Runs `watch` for one tick.
pub fn watch_once(reg: &Registry, jail: &Jail) {
    reg.ok(&[
        "watch",
        "--jail",
        &jail.name,
        "--ticks",
        "1",
        "--sshd-pid-file",
        jail.pid_file().to_str().unwrap(),
    ]);
}

/// Generates a `#[test]` per backend from `fn NAME(kind: Kind)`.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $name() { super::$name($crate::common::Kind::Sqlite) } )*
        }
        mod postgres {
            $( #[test] fn $name() { super::$name($crate::common::Kind::Postgres) } )*
        }
    };
}
