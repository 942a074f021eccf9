//! A registry written by an attacker: by direct SQL, every text column of
//! every table gets a newline, a CR-LF, `$(...)`, backticks and a
//! quote-breaking payload (a key column together with the columns that refer
//! to it), and every integer column out-of-range values; then every output
//! command runs. Nothing may inject a line, execute, open a port outside the
//! pool, or panic. The columns are found in the schema itself, so a new
//! column is covered without touching this file.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

both_backends!(no_stored_value_reaches_a_shell_a_config_or_a_port_outside_its_pool);

/// The pool every hostile case checks ports against.
const LO: u16 = 10000;
const HI: u16 = 10099;

/// Which row of each table a case changes, and the columns that refer to a
/// table's key (changed together with it, as a consistent attacker would).
fn row_key(table: &str) -> Option<(&'static str, &'static str)> {
    Some(match table {
        "pools" => ("name", "'p1'"),
        "jails" => ("name", "'j1'"),
        "devices" => ("id", "'d1'"),
        "operators" => ("name", "'op1'"),
        "operator_keys" => ("operator", "'op1'"),
        "grants" => ("device", "'d1'"),
        "revoked_keys" => ("device", "'d2'"),
        "audit" => ("seq", "(SELECT max(seq) FROM audit)"),
        "tokens" => ("name", "'t1'"),
        "claims" => ("id", "(SELECT min(id) FROM claims)"),
        "claim_uses" => ("device", "'d3'"),
        "claim_refusals" => ("source", "'192.0.2.1'"),
        "device_host_keys" => ("device", "'d1'"),
        "hooks" => ("id", "(SELECT max(id) FROM hooks)"),
        "outbox" => ("seq", "(SELECT max(seq) FROM outbox)"),
        "warden_schema" => return None,
        t if t.starts_with("sqlite_") => return None,
        // A new table must be named here, or its columns would go untested.
        other => panic!("table {other} has no row in hostile_rows.rs's row_key: add one"),
    })
}

fn refs(table: &str, col: &str) -> &'static [(&'static str, &'static str)] {
    match (table, col) {
        ("pools", "name") => &[("jails", "pool"), ("devices", "pool"), ("claims", "pool")],
        ("jails", "name") => &[("devices", "online_jail")],
        ("devices", "id") => &[
            ("grants", "device"),
            ("revoked_keys", "device"),
            ("device_host_keys", "device"),
            ("claim_uses", "device"),
        ],
        ("claims", "id") => &[("claim_uses", "claim")],
        ("operators", "name") => &[
            ("operator_keys", "operator"),
            ("grants", "operator"),
            ("tokens", "operator"),
        ],
        _ => &[],
    }
}

enum Db {
    Sqlite(rusqlite::Connection),
    Pg(::postgres::Client),
}

impl Db {
    fn exec(&mut self, sql: &str, v: &Val) {
        match (self, v) {
            (Db::Sqlite(c), Val::Text(t)) => c.execute(&sql.replace('$', "?"), [t]).map(drop),
            (Db::Sqlite(c), Val::Int(i)) => c.execute(&sql.replace('$', "?"), [i]).map(drop),
            (Db::Pg(c), Val::Text(t)) => {
                return c.execute(sql, &[t]).map(drop).unwrap_or_else(|e| {
                    panic!("{sql}: {e:?}");
                });
            }
            (Db::Pg(c), Val::Int(i)) => {
                return c.execute(sql, &[i]).map(drop).unwrap_or_else(|e| {
                    panic!("{sql}: {e:?}");
                });
            }
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// (table, column, is_text) for every column of warden's tables.
    fn columns(&mut self) -> Vec<(String, String, bool)> {
        match self {
            Db::Sqlite(c) => {
                let mut st = c
                    .prepare(
                        "SELECT m.name, p.name, p.type FROM sqlite_master m, pragma_table_info(m.name) p
                         WHERE m.type = 'table' ORDER BY m.name, p.cid",
                    )
                    .unwrap();
                st.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)? == "TEXT"))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect()
            }
            Db::Pg(c) => c
                .query(
                    "SELECT table_name::text, column_name::text, data_type::text FROM information_schema.columns
                     WHERE table_schema = 'public' ORDER BY table_name, ordinal_position",
                    &[],
                )
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get::<_, String>(2) == "text"))
                .collect(),
        }
    }
}

#[derive(Clone, Debug)]
enum Val {
    Text(String),
    Int(i64),
}

/// What a claim needs: its token, the claiming device's key line, the
/// `$SSH_USER_AUTH` file naming it.
struct ClaimSeed {
    token: String,
    auth: PathBuf,
    host_key: String,
}

/// Runs `warden claim-serve --jail j1` as sshd would, `input` on stdin.
fn claim_serve(url: &str, c: &ClaimSeed, source: &str, input: &str) -> (i32, String, String) {
    use std::io::Write;
    let mut child = Command::new(warden_bin())
        .env_remove("WARDEN_DB")
        .env_remove("PGPASSWORD")
        .env("SSH_USER_AUTH", &c.auth)
        .env("SSH_CONNECTION", format!("{source} 50000 127.0.0.1 22"))
        .args(["--db", url, "claim-serve", "--jail", "j1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run warden");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    split(child.wait_with_output().unwrap())
}

fn claim_request(c: &ClaimSeed) -> String {
    format!(
        "jailbird-claim 1\ntoken {}\nmac 02:00:00:00:00:03\nid d3\nhost-key {}\n",
        c.token, c.host_key
    )
}

/// A registry to copy from: two pools, a jail with a host CA on its pool, a
/// device with a MAC, a label and a host key, a revoked device, an operator
/// and a grant, a claim, a device (d3) that claimed with it, a refused claim.
fn seed(reg: &Registry, dir: &TempDir) -> ClaimSeed {
    let (_, hk) = key(dir);
    let (_, ca) = key(dir);
    let (_, k1) = key(dir);
    let (_, k2) = key(dir);
    let (_, ok) = key(dir);
    reg.ok(&["pool", "add", "p1", "--ports", &format!("{LO}-{HI}")]);
    reg.ok(&["pool", "add", "p2", "--ports", "20000-20099"]);
    reg.ok(&["pool", "host-ca", "p1", "--key", &ca]);
    reg.ok(&[
        "jail",
        "add",
        "j1",
        "--address",
        "127.0.0.1:8022",
        "--host-key",
        &hk,
        "--pool",
        "p1",
    ]);
    let (_, dev_host) = key(dir);
    reg.ok(&[
        "enroll",
        "d1",
        "--key",
        &k1,
        "--mac",
        "92:be:bf:83:6e:b3",
        "--pool",
        "p1",
        "--label",
        "site=x",
        "--host-key",
        &dev_host,
    ]);
    reg.ok(&["enroll", "d2", "--key", &k2, "--pool", "p1"]);
    let secret = dir.path("hook-secret");
    std::fs::write(&secret, "0123456789abcdef0123\n").unwrap();
    reg.ok(&[
        "hook",
        "add",
        "http://127.0.0.1:9/hook",
        "--events",
        "device.revoked,grant.created",
        "--secret-file",
        &secret.display().to_string(),
    ]);
    reg.ok(&["revoke", "d2", "--reason", "lost"]);
    reg.ok(&["operator", "add", "op1", "--key", &ok]);
    reg.ok(&["grant", "d1", "--operator", "op1", "--reason", "ticket 1"]);
    reg.ok(&[
        "token",
        "create",
        "t1",
        "--scope",
        "operate",
        "--operator",
        "op1",
    ]);
    let out = reg.ok(&[
        "claim",
        "create",
        "--pool",
        "p1",
        "--uses",
        "5",
        "--label",
        "site=y",
        "--mac-prefix",
        "02:00",
    ]);
    let (_, k3) = key(dir);
    let auth = dir.path("claim_auth");
    std::fs::write(&auth, format!("publickey {k3}\n")).unwrap();
    let (_, host_key) = key(dir);
    let c = ClaimSeed {
        token: out.lines().next().unwrap().to_string(),
        auth,
        host_key,
    };
    let (code, answer, err) = claim_serve(&reg.url, &c, "192.0.2.2", &claim_request(&c));
    assert_eq!(code, 0, "seed claim: {answer} {err}");
    let (code, _, _) = claim_serve(&reg.url, &c, "192.0.2.1", "nonsense\n");
    assert_eq!(code, 1, "seed refusal");
    c
}

/// The fingerprints sshd would ask about: (device d1's, operator op1's).
fn fingerprints(reg: &Registry) -> (String, String) {
    let show = reg.ok(&["show", "d1", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    let d = v["fingerprint"].as_str().unwrap().to_string();
    let ops = reg.ok(&["operator", "ls", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&ops).unwrap();
    let o = v[0]["keys"][0].as_str().unwrap().to_string();
    (d, o)
}

fn no_stored_value_reaches_a_shell_a_config_or_a_port_outside_its_pool(kind: Kind) {
    let dir = TempDir::new("hostile");
    let base = Registry::new(kind);
    let claim = seed(&base, &dir);
    let (dev_fp, op_fp) = fingerprints(&base);
    let marker = dir.path("EXECUTED");
    let m = marker.display().to_string();
    let texts = [
        format!("x\nPWNED {m}"),
        format!("x\r\nPWNED {m}"),
        format!("$(touch {m})"),
        format!("`touch {m}`"),
        format!("x'\"; touch {m}; PWNED=\"'"),
    ];
    let ints = [65536 + 6379, 6379, 20005, -1, 0, i64::MAX, i64::MIN];
    let mut base_db = open(&base);
    let columns = base_db.columns();
    drop(base_db);
    let mut cases = 0;
    for (table, col, is_text) in &columns {
        let Some((key_col, key_val)) = row_key(table) else {
            continue;
        };
        let vals: Vec<Val> = if *is_text {
            texts.iter().cloned().map(Val::Text).collect()
        } else {
            ints.iter().copied().map(Val::Int).collect()
        };
        for v in vals {
            let copy = Copy::of(&base, &dir, cases);
            let mut db = copy.open();
            for (rt, rc) in refs(table, col) {
                db.exec(
                    &format!("UPDATE {rt} SET {rc} = $1 WHERE {rc} = (SELECT {col} FROM {table} WHERE {key_col} = {key_val})"),
                    &v,
                );
            }
            db.exec(
                &format!("UPDATE {table} SET {col} = $1 WHERE {key_col} = {key_val}"),
                &v,
            );
            drop(db);
            let what = format!("{table}.{col} = {v:?}");
            check_outputs(&copy, &dir, &what, &dev_fp, &op_fp, &marker);
            check_claim(&copy, &claim, &what, &marker);
            cases += 1;
        }
    }
    assert!(cases > 100, "only {cases} cases: the schema was not read");
    eprintln!("{cases} hostile values, every output command run against each");
}

/// Every command whose output reaches a shell, sshd, ssh or a person.
fn check_outputs(reg: &Copy, dir: &TempDir, what: &str, dev_fp: &str, op_fp: &str, marker: &Path) {
    let out = dir.path(&format!("out{}", reg.n));
    std::fs::create_dir_all(&out).unwrap();
    let outs = out.display().to_string();
    let kh = out.join("known_hosts_ssh_config").display().to_string();
    // Any key the claim account is offered.
    let (claim_fp, claim_b64) = claim_key();
    let runs: Vec<Vec<&str>> = vec![
        vec![
            "sshd-config",
            "--jail",
            "j1",
            "--binary",
            "/usr/sbin/warden",
        ],
        vec!["device-config", "d1", "--out", &outs],
        vec!["ls"],
        vec!["ls", "--json"],
        vec!["show", "d1"],
        vec!["show", "--mac", "92:be:bf:83:6e:b3"],
        vec!["audit"],
        vec!["audit", "--json"],
        vec!["jail", "ls"],
        vec!["pool", "ls"],
        vec!["operator", "ls"],
        vec!["authorized-keys", "--jail", "j1", "tunuser", dev_fp],
        vec!["authorized-keys", "--jail", "j1", "operator", op_fp],
        vec![
            "connect",
            "d1",
            "--operator",
            "op1",
            "--reason",
            "r",
            "--print",
        ],
        vec!["ssh-config", "--operator", "op1"],
        vec!["token", "ls"],
        vec!["token", "ls", "--json"],
        vec!["claim", "ls"],
        vec!["claim", "ls", "--json"],
        vec!["ssh-config", "--known-hosts", &kh],
        vec![
            "authorized-keys",
            "--jail",
            "j1",
            "claim",
            &claim_fp,
            "ssh-ed25519",
            &claim_b64,
        ],
        vec!["hook", "ls"],
        vec!["hook", "ls", "--json"],
    ];
    for args in runs {
        let (code, stdout, stderr) = reg.warden(&args);
        let ctx = format!("{what}: warden {args:?} (exit {code})\n{stdout}\n{stderr}");
        assert!(
            code == 0 || code == 1 || code == 2,
            "{ctx}: exit code {code}"
        );
        assert!(!stderr.contains("panicked"), "{ctx}");
        for text in [&stdout, &stderr] {
            no_injected_line(text, &ctx);
        }
        if args[0] == "authorized-keys" || args[0] == "sshd-config" {
            ports_in_pool(&stdout, &ctx);
        }
        if args[0] == "authorized-keys" {
            assert!(stdout.lines().count() <= 1, "{ctx}: more than one key line");
        }
        if args[0] == "connect" && code == 0 {
            // The printed command line, run with `ssh` as a no-op function:
            // any expansion in it would run.
            run_sh(&format!("ssh() {{ :; }}; {}", stdout.trim()), &ctx);
        }
    }
    let env = out.join("jailbird.env");
    if env.exists() {
        let text = std::fs::read_to_string(&env).unwrap();
        no_injected_line(&text, what);
        ports_in_pool(&text, what);
        let vars = run_sh(&format!("set -a; . {}; env", env.display()), what);
        no_injected_line(&vars, what);
        let kh = std::fs::read_to_string(out.join("known_hosts")).unwrap();
        no_injected_line(&kh, what);
        for l in kh.lines().filter(|l| l.starts_with('@')) {
            assert_eq!(l.split_whitespace().count(), 4, "{what}: {l}");
        }
    }
    assert!(!marker.exists(), "{what}: a stored value was executed");
}

/// A claim answered from hostile rows (the seeded device's retry, and a new
/// device): an answer within the wire format, a port inside pool p1.
fn check_claim(reg: &Copy, c: &ClaimSeed, what: &str, marker: &Path) {
    let requests = [
        claim_request(c),
        claim_request(c).replace("02:00:00:00:00:03\nid d3", "02:00:00:00:00:04\nid d4"),
    ];
    for (i, req) in requests.iter().enumerate() {
        let (code, stdout, stderr) = claim_serve(&reg.url, c, "192.0.2.3", req);
        let ctx = format!("{what}: claim-serve #{i} (exit {code})\n{stdout}\n{stderr}");
        assert!(code == 0 || code == 1, "{ctx}");
        assert!(!stderr.contains("panicked"), "{ctx}");
        no_injected_line(&stdout, &ctx);
        no_injected_line(&stderr, &ctx);
        assert!(stdout.starts_with("jailbird-claim 1\n"), "{ctx}");
        assert!(
            stdout.len() <= 8192 && stdout.lines().count() <= 24,
            "{ctx}"
        );
        assert!(
            stdout
                .bytes()
                .all(|b| b == b'\n' || (b' '..=b'~').contains(&b)),
            "{ctx}"
        );
        if code == 0 {
            let port: u64 = stdout
                .lines()
                .find_map(|l| l.strip_prefix("port "))
                .and_then(|p| p.parse().ok())
                .unwrap_or(0);
            assert!((u64::from(LO)..=u64::from(HI)).contains(&port), "{ctx}");
        } else {
            assert_eq!(stdout.lines().count(), 2, "{ctx}");
        }
    }
    assert!(!marker.exists(), "{what}: a stored value was executed");
}

/// A key offered to the claim account: (its fingerprint, its base64).
fn claim_key() -> (String, String) {
    const B64: &str = "AAAAC3NzaC1lZDI1NTE5AAAAINwBRt0Qxuq56ihKXUbgbbFcD2ZEH/yqNpNyWsKYU9sk";
    static FP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let fp = FP.get_or_init(|| {
        let dir = TempDir::new("claimkey");
        let p = dir.path("k.pub");
        std::fs::write(&p, format!("ssh-ed25519 {B64}\n")).unwrap();
        let out = run_ok(Command::new("ssh-keygen").arg("-lf").arg(&p));
        out.split(' ').nth(1).unwrap().to_string()
    });
    (fp.clone(), B64.to_string())
}

/// No line of `text` begins with what a payload put after its line break.
fn no_injected_line(text: &str, ctx: &str) {
    for l in text.split(['\n', '\r']) {
        assert!(
            !l.trim_start().starts_with("PWNED"),
            "{ctx}: injected line {l:?}"
        );
    }
}

/// Every port a key line or env file opens lies in pool p1.
fn ports_in_pool(text: &str, ctx: &str) {
    for pat in [
        "permitlisten=\"localhost:",
        "permitlisten=\"127.0.0.1:",
        "permitopen=\"localhost:",
        "permitopen=\"127.0.0.1:",
        "JAILBIRD_REMOTE_FORWARD=",
    ] {
        for (i, _) in text.match_indices(pat) {
            let rest = &text[i + pat.len()..];
            let n: String = rest
                .trim_start_matches('\'')
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let p: u64 = n.parse().unwrap_or(0);
            assert!(
                (u64::from(LO)..=u64::from(HI)).contains(&p),
                "{ctx}: {pat}{n} is outside pool p1"
            );
        }
    }
}

fn run_sh(script: &str, ctx: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .output()
        .unwrap();
    let (_, stdout, stderr) = split(out);
    no_injected_line(&stderr, ctx);
    stdout
}

fn open(reg: &Registry) -> Db {
    match reg.kind {
        Kind::Sqlite => Db::Sqlite(rusqlite::Connection::open(reg.sqlite_path()).unwrap()),
        Kind::Postgres => {
            let db = reg.url.rsplit('/').next().unwrap().to_string();
            Db::Pg(pg().client(&db))
        }
    }
}

/// A throw-away copy of the seeded registry for one case.
struct Copy {
    kind: Kind,
    url: String,
    path: PathBuf,
    pg_db: Option<String>,
    n: usize,
}

impl Copy {
    fn of(base: &Registry, dir: &TempDir, n: usize) -> Copy {
        match base.kind {
            Kind::Sqlite => {
                let d = dir.path(&format!("reg{n}"));
                std::fs::create_dir_all(&d).unwrap();
                let path = d.join("registry.db");
                // VACUUM INTO: a consistent copy whatever is in the WAL.
                let c = rusqlite::Connection::open(base.sqlite_path()).unwrap();
                c.execute("VACUUM INTO ?1", [path.display().to_string()])
                    .unwrap();
                Copy {
                    kind: Kind::Sqlite,
                    url: format!("sqlite://{}", path.display()),
                    path,
                    pg_db: None,
                    n,
                }
            }
            Kind::Postgres => {
                let src = base.url.rsplit('/').next().unwrap().to_string();
                let name = format!("{src}_c{n}");
                pg().client("postgres")
                    .batch_execute(&format!("CREATE DATABASE {name} TEMPLATE {src}"))
                    .unwrap();
                Copy {
                    kind: Kind::Postgres,
                    url: format!("postgres://postgres@127.0.0.1:{}/{name}", pg().port),
                    path: PathBuf::new(),
                    pg_db: Some(name),
                    n,
                }
            }
        }
    }

    /// A connection that may write what warden itself never would: no
    /// foreign keys, no CHECK constraints, no append-only trigger.
    fn open(&self) -> Db {
        match self.kind {
            Kind::Sqlite => {
                let c = rusqlite::Connection::open(&self.path).unwrap();
                c.execute_batch(
                    "PRAGMA foreign_keys = OFF; PRAGMA ignore_check_constraints = ON; DROP TRIGGER IF EXISTS audit_no_update;",
                )
                .unwrap();
                Db::Sqlite(c)
            }
            Kind::Postgres => {
                let mut c = pg().client(self.pg_db.as_deref().unwrap());
                c.batch_execute(
                    "SET session_replication_role = replica;
                     ALTER TABLE claims DROP CONSTRAINT IF EXISTS claims_check;",
                )
                .unwrap();
                Db::Pg(c)
            }
        }
    }

    fn warden(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(warden_bin())
            .env_remove("WARDEN_DB")
            .env_remove("PGPASSWORD")
            .env("HOME", "/nonexistent")
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .arg("--db")
            .arg(&self.url)
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run warden");
        split(out)
    }
}

impl Drop for Copy {
    fn drop(&mut self) {
        if let Some(db) = &self.pg_db {
            let _ = pg()
                .client("postgres")
                .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
        }
    }
}
