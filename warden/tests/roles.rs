//! Least privilege on PostgreSQL: `warden db-grants --for jail` gives a jail
//! host's role what `authorized-keys`, `watch` and `sshd-config` need and
//! nothing else; `--for admin` gives the admin host everything warden does.
//! Each is tested as that role against the throw-away cluster, through the
//! real binary.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

const JAIL_ROLE: &str = "warden_jailrole";
const ADMIN_ROLE: &str = "warden_adminrole";

/// `warden --db URL ARGS` as some role: (exit code, stdout, stderr).
fn warden_as(url: &str, args: &[&str]) -> (i32, String, String) {
    split(
        Command::new(warden_bin())
            .env_remove("WARDEN_DB")
            .env_remove("PGPASSWORD")
            .arg("--db")
            .arg(url)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    )
}

fn fingerprint(dir: &TempDir, public: &str) -> String {
    let f = dir.path("fp.pub");
    std::fs::write(&f, format!("{public}\n")).unwrap();
    run_ok(Command::new("ssh-keygen").arg("-lf").arg(&f))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string()
}

/// A LOGIN role (the cluster trusts loopback) holding exactly the GRANTs
/// `warden db-grants --role ROLE --for USE` printed, applied by the owner.
fn role_with_grants(reg: &Registry, owner: &mut ::postgres::Client, role: &str, used: &str) {
    let sql = reg.ok(&["db-grants", "--role", role, "--for", used]);
    owner
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
        ))
        .unwrap();
    owner.batch_execute(&sql).unwrap();
}

/// The SQL the owner sees for one value (`SELECT ...` -> first column, text).
fn owner_value(owner: &mut ::postgres::Client, sql: &str) -> Option<String> {
    let rows = owner.query(sql, &[]).unwrap();
    rows.first().and_then(|r| r.get::<_, Option<String>>(0))
}

#[test]
fn a_jail_role_serves_logins_and_watch_and_can_change_nothing_else() {
    let reg = Registry::new(Kind::Postgres);
    let c = pg();
    let db = reg.url.rsplit('/').next().unwrap().to_string();
    let keys = TempDir::new("roles");
    // The schema and the fleet, made as the owner.
    let lo = 20000 + (std::process::id() as u16 % 600) * 20;
    reg.pool("p", &format!("{lo}-{}", lo + 9));
    let (_, d1) = key(&keys);
    let (_, d3) = key(&keys);
    let (_, op) = key(&keys);
    let (_, host) = key(&keys);
    reg.ok(&["enroll", "D1", "--key", &d1]);
    reg.ok(&["enroll", "D3", "--key", &d3]);
    reg.ok(&["revoke", "D3"]);
    reg.ok(&["operator", "add", "carol", "--key", &op]);
    reg.ok(&["grant", "D1", "--operator", "carol", "--for", "1h"]);
    let tunnel = tunnel_user();
    reg.ok(&[
        "jail",
        "add",
        "j1",
        "--address",
        "127.0.0.1:2222",
        "--host-key",
        &host,
        "--pool",
        "p",
        "--user",
        &tunnel,
        "--operator-user",
        OPERATOR_USER,
    ]);
    // A webhook: watch's presence changes queue its events as the jail role.
    let secret = keys.path("hook-secret");
    std::fs::write(&secret, "0123456789abcdef0123\n").unwrap();
    reg.ok(&[
        "hook",
        "add",
        "http://127.0.0.1:9/hook",
        "--events",
        "device.online,device.offline",
        "--secret-file",
        &secret.display().to_string(),
    ]);
    let mut owner = c.client(&db);
    role_with_grants(&reg, &mut owner, JAIL_ROLE, "jail");
    let url = format!("postgres://{JAIL_ROLE}@127.0.0.1:{}/{db}", c.port);

    // What only the admin host may do: refused by the server, one line each,
    // and nothing changed.
    let before = reg.dump();
    let (_, d2) = key(&keys);
    let (_, dave) = key(&keys);
    for args in [
        vec!["enroll", "D2", "--key", &d2],
        vec!["enroll", "D3", "--key", &d3, "--replace"],
        vec!["revoke", "D1"],
        vec!["grant", "D1", "--operator", "carol", "--for", "2h"],
        vec!["operator", "add", "dave", "--key", &dave],
        vec!["operator", "disable", "carol"],
        vec![
            "jail",
            "add",
            "j2",
            "--address",
            "127.0.0.1:2223",
            "--host-key",
            &host,
            "--pool",
            "p",
            "--user",
            &tunnel,
            "--operator-user",
            OPERATOR_USER,
        ],
        vec!["pool", "add", "q", "--ports", "30000-30009"],
        vec!["pool", "host-ca", "p", "--key", &host],
        vec!["hook", "ls"],
        vec!["hook", "rm", "1"],
    ] {
        let (code, out, err) = warden_as(&url, &args);
        assert_ne!(code, 0, "{args:?} as the jail role succeeded: {out}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains("permission denied"), "{args:?}: {err}");
    }
    assert_eq!(before, reg.dump(), "a refused command changed the registry");

    // Nor by hand: un-revoking, moving a device, rewriting a jail's host key,
    // granting, reading the revoked keys, touching the audit trail.
    let mut jail_sql = ::postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user={JAIL_ROLE} dbname={db}",
            c.port
        ),
        ::postgres::NoTls,
    )
    .unwrap();
    for stmt in [
        "UPDATE devices SET revoked = NULL WHERE id = 'D3'",
        "UPDATE devices SET port = port + 1 WHERE id = 'D1'",
        "UPDATE devices SET key_base64 = 'x' WHERE id = 'D1'",
        "DELETE FROM devices WHERE id = 'D3'",
        "INSERT INTO devices (id, key_type, key_base64, fingerprint, pool, port, target, labels, enrolled) VALUES ('X', 'a', 'b', 'c', 'p', 1, 't', '{}', 0)",
        "UPDATE jails SET host_key = 'ssh-ed25519 AAAA' WHERE name = 'j1'",
        "UPDATE pools SET port_hi = 65535",
        "INSERT INTO grants (operator, device, granted, expires) VALUES ('carol', 'D3', 0, 9999999999)",
        "UPDATE operators SET disabled = NULL",
        "INSERT INTO operator_keys (fingerprint, operator, key_type, key_base64, added) VALUES ('f', 'carol', 'a', 'b', 0)",
        "SELECT * FROM revoked_keys",
        "DELETE FROM revoked_keys",
        "SELECT hash FROM tokens",
        "SELECT name FROM tokens",
        "UPDATE tokens SET revoked = NULL",
        "INSERT INTO tokens (name, hash, scope, created) VALUES ('x', 'y', 'admin', 0)",
        "SELECT actor, origin, reason FROM audit",
        "UPDATE audit SET action = 'x'",
        "DELETE FROM audit",
        "CREATE TABLE devices2 (x int)",
    ] {
        let err = format!("{:?}", jail_sql.batch_execute(stmt).expect_err(stmt));
        assert!(err.contains("permission denied"), "{stmt}: {err}");
    }
    assert_eq!(before, reg.dump(), "refused SQL changed the registry");

    // Everything a jail host runs works as that role. A device's login: its
    // line, and its last-seen time written.
    let fp1 = fingerprint(&keys, &d1);
    let (code, out, err) = warden_as(&url, &["authorized-keys", "--jail", "j1", &tunnel, &fp1]);
    assert_eq!((code, out.lines().count()), (0, 1), "{err}");
    assert!(
        out.contains("warden:D1") && out.contains(&format!("localhost:{lo}")),
        "{out}"
    );
    assert!(
        owner_value(
            &mut owner,
            "SELECT last_seen::text FROM devices WHERE id = 'D1'"
        )
        .is_some(),
        "authorized-keys as the jail role did not record the login"
    );
    // A revoked device is still refused (the role reads the revocation).
    let (_, out, err) = warden_as(
        &url,
        &[
            "authorized-keys",
            "--jail",
            "j1",
            &tunnel,
            &fingerprint(&keys, &d3),
        ],
    );
    assert!(out.is_empty() && err.contains("revoked"), "{err}");
    // An operator's key offered: the granted port, and no audit entry (a key
    // offered is not a login; watch audits the session).
    let (code, out, err) = warden_as(
        &url,
        &[
            "authorized-keys",
            "--jail",
            "j1",
            OPERATOR_USER,
            &fingerprint(&keys, &op),
        ],
    );
    assert_eq!((code, out.lines().count()), (0, 1), "{err}");
    assert!(out.contains("warden-operator:carol"), "{out} {err}");
    assert_eq!(
        owner_value(
            &mut owner,
            "SELECT count(*)::text FROM audit WHERE action = 'operator-login'"
        )
        .as_deref(),
        Some("0")
    );
    // The drop-in.
    let (code, out, err) = warden_as(
        &url,
        &[
            "sshd-config",
            "--jail",
            "j1",
            "--binary",
            "/usr/local/bin/warden",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("AuthorizedKeysCommand "), "{out}");
    // watch: D1 comes online (its port held by the tunnel account) ...
    let mut holder = Command::new("setsid")
        .args(["runuser", "-u", &tunnel, "--", "perl", "-MIO::Socket::INET", "-e"])
        .arg(format!(
            "my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1:{lo}', Listen => 1, ReuseAddr => 1) or die $!; sleep 60"
        ))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(Duration::from_secs(10), "the held port", || {
        port_answers(lo).then_some(())
    });
    let watch = |url: &str| warden_as(url, &["watch", "--jail", "j1", "--ticks", "1"]);
    let (code, _, err) = watch(&url);
    kill_group(holder.id());
    let _ = holder.wait();
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("watch:"), "watch as the jail role: {err}");
    assert!(err.contains("online: D1 at jail j1"), "{err}");
    assert_eq!(
        owner_value(
            &mut owner,
            "SELECT online_jail FROM devices WHERE id = 'D1'"
        )
        .as_deref(),
        Some("j1")
    );
    // ... and offline again once it is not.
    let (code, _, err) = watch(&url);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("offline: D1 at jail j1"), "{err}");
    assert_eq!(
        owner_value(
            &mut owner,
            "SELECT online_jail FROM devices WHERE id = 'D1'"
        ),
        None
    );
    assert!(
        owner_value(
            &mut owner,
            "SELECT offline_since::text FROM devices WHERE id = 'D1'"
        )
        .is_some()
    );

    assert_eq!(
        owner_value(
            &mut owner,
            "SELECT string_agg(event, ',' ORDER BY seq) FROM outbox WHERE device = 'D1'"
        )
        .as_deref(),
        Some("device.online,device.offline")
    );

    // The admin role, from the same server, does what the jail role may not.
    role_with_grants(&reg, &mut owner, ADMIN_ROLE, "admin");
    let admin = format!("postgres://{ADMIN_ROLE}@127.0.0.1:{}/{db}", c.port);
    for args in [
        vec!["enroll", "D2", "--key", &d2],
        vec!["operator", "add", "dave", "--key", &dave],
        vec!["grant", "D2", "--operator", "dave", "--for", "1h"],
        vec!["pool", "add", "q", "--ports", "30000-30009"],
        vec!["revoke", "D2"],
    ] {
        let (code, _, err) = warden_as(&admin, &args);
        assert_eq!(code, 0, "{args:?} as the admin role: {err}");
    }
    // Moving a role from admin to jail takes its admin privileges away.
    role_with_grants(&reg, &mut owner, ADMIN_ROLE, "jail");
    let (_, d4) = key(&keys);
    let (code, _, err) = warden_as(&admin, &["enroll", "D4", "--key", &d4, "--pool", "p"]);
    assert!(code != 0 && err.contains("permission denied"), "{err}");
}

#[test]
fn db_grants_needs_a_use_and_a_postgres_registry() {
    let reg = Registry::new(Kind::Sqlite);
    let (code, _, err) = reg.warden(&["db-grants", "--role", "r", "--for", "jail"]);
    assert_eq!((code, err.lines().count()), (2, 1), "{err}");
    let pg_url = "postgres://u@127.0.0.1:1/db";
    let (code, _, err) = warden_as(pg_url, &["db-grants", "--role", "r"]);
    assert_eq!((code, err.lines().count()), (2, 1), "{err}");
    let (code, out, err) = warden_as(pg_url, &["db-grants", "--role", "r", "--for", "jail"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM r;"),
        "{out}"
    );
    assert!(!out.contains("revoked_keys"), "{out}");
    assert!(
        out.contains(
            "GRANT UPDATE (last_seen, online_jail, online_since, offline_since) ON devices TO r;"
        ),
        "{out}"
    );
}

const CLAIM_ROLE: &str = "warden_claimrole";

/// `warden claim-serve --jail j1` as `url`'s role, as sshd runs it for the
/// claim account: the offered key in $SSH_USER_AUTH, the request on stdin.
fn claim_serve_as(url: &str, dir: &TempDir, key: &str, request: &str) -> (i32, String, String) {
    use std::io::Write;
    let auth = dir.path("user_auth");
    std::fs::write(&auth, format!("publickey {key}\n")).unwrap();
    let mut child = Command::new(warden_bin())
        .env_remove("WARDEN_DB")
        .env_remove("PGPASSWORD")
        .env("SSH_USER_AUTH", &auth)
        .env("SSH_CONNECTION", "192.0.2.7 50000 127.0.0.1 22")
        .args(["--db", url, "claim-serve", "--jail", "j1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.as_bytes())
        .unwrap();
    split(child.wait_with_output().unwrap())
}

#[test]
fn a_claim_role_spends_claims_and_adds_devices_and_nothing_else() {
    let reg = Registry::new(Kind::Postgres);
    let c = pg();
    let db = reg.url.rsplit('/').next().unwrap().to_string();
    let keys = TempDir::new("claimrole");
    let lo = 20000 + (std::process::id() as u16 % 600) * 20 + 10;
    reg.pool("p", &format!("{lo}-{}", lo + 9));
    let (_, host) = key(&keys);
    reg.ok(&[
        "jail",
        "add",
        "j1",
        "--address",
        "127.0.0.1:2222",
        "--host-key",
        &host,
        "--pool",
        "p",
    ]);
    let (_, d1) = key(&keys);
    reg.ok(&["enroll", "D1", "--key", &d1]);
    let out = reg.ok(&["claim", "create", "--pool", "p", "--uses", "1"]);
    let token = out.lines().next().unwrap().to_string();
    let mut owner = c.client(&db);
    role_with_grants(&reg, &mut owner, CLAIM_ROLE, "claim");
    let url = format!("postgres://{CLAIM_ROLE}@127.0.0.1:{}/{db}", c.port);

    // Its one job: a claim spends the token and adds the device with its host key.
    let (_, dev) = key(&keys);
    let (_, dev_host) = key(&keys);
    let request =
        format!("jailbird-claim 1\ntoken {token}\nmac 02:00:00:00:00:42\nhost-key {dev_host}\n");
    let (code, out, err) = claim_serve_as(&url, &keys, &dev, &request);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("\nok\ndevice 020000000042\n"), "{out}");
    // A second device on the used-up token: refused, and the refusal recorded.
    let (_, dev2) = key(&keys);
    let (code, out, _) = claim_serve_as(
        &url,
        &keys,
        &dev2,
        &format!("jailbird-claim 1\ntoken {token}\nmac 02:00:00:00:00:43\n"),
    );
    assert_eq!(
        (code, out.lines().nth(1)),
        (1, Some("refused used-up")),
        "{out}"
    );
    let shown = reg.ok(&["--json", "show", "020000000042"]);
    assert!(shown.contains("02:00:00:00:00:42"), "{shown}");

    // Nothing else, through warden or by hand.
    let before = reg.dump();
    for args in [
        vec!["revoke", "D1"],
        vec!["enroll", "D1", "--key", &dev2, "--replace"],
        vec!["pool", "add", "q", "--ports", "30000-30009"],
        vec!["claim", "create", "--pool", "p"],
        vec!["operator", "add", "eve", "--key", &dev2],
        vec!["token", "create", "t", "--scope", "admin"],
    ] {
        let (code, out, err) = warden_as(&url, &args);
        assert_ne!(code, 0, "{args:?} as the claim role succeeded: {out}");
        assert!(err.contains("permission denied"), "{args:?}: {err}");
    }
    let mut claim_sql = ::postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user={CLAIM_ROLE} dbname={db}",
            c.port
        ),
        ::postgres::NoTls,
    )
    .unwrap();
    for stmt in [
        "UPDATE devices SET revoked = NULL",
        "UPDATE devices SET port = port + 1 WHERE id = 'D1'",
        "DELETE FROM devices WHERE id = 'D1'",
        "UPDATE claims SET uses_left = uses_total, revoked = NULL",
        "UPDATE claims SET expires = 9999999999",
        "UPDATE pools SET port_hi = 65535",
        "UPDATE jails SET host_key = 'ssh-ed25519 AAAA'",
        "SELECT hash FROM tokens",
        "INSERT INTO grants (operator, device, granted, expires) VALUES ('carol', 'D1', 0, 9999999999)",
        "SELECT * FROM operator_keys",
        "SELECT actor, detail FROM audit",
        "DELETE FROM audit",
        "SELECT url, secret FROM hooks",
    ] {
        let err = format!("{:?}", claim_sql.batch_execute(stmt).expect_err(stmt));
        assert!(err.contains("permission denied"), "{stmt}: {err}");
    }
    assert_eq!(before, reg.dump(), "refused SQL changed the registry");
}
