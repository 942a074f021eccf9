//! Jails made of stock OpenSSH plus `warden sshd-config`'s drop-in, with
//! `warden authorized-keys` run by sshd as the unprivileged `warden` account:
//! the real agent as the device (from the files `device-config` wrote), real
//! `ssh` clients as attackers with enrolled and unenrolled keys.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A pool range of `n` ports below the ephemeral range (so no other test's
/// free_port() lands in it), distinct per test process and per call.
fn ports(n: u16) -> (u16, String) {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let slot = (std::process::id() as u16 % 200) * 50 + NEXT.fetch_add(n, Ordering::SeqCst);
    let lo = 20000 + slot % 12000;
    (lo, format!("{lo}-{}", lo + n - 1))
}

fn json(reg: &Registry, args: &[&str]) -> serde_json::Value {
    serde_json::from_str(&reg.ok(args)).unwrap()
}

/// An enrolled device with its own identity, its config written by
/// `device-config`, and the real agent running from those files.
struct Device {
    dir: TempDir,
    port: u16,
    agent: Option<Agent>,
}

fn enrol_device(reg: &Registry, id: &str, target_port: u16) -> Device {
    enrol_device_with(reg, id, target_port, &[])
}

fn enrol_device_with(reg: &Registry, id: &str, target_port: u16, extra: &[&str]) -> Device {
    let dir = TempDir::new("device");
    let state = dir.path("identity");
    let key = device_key(&state);
    let target = format!("127.0.0.1:{target_port}");
    let mut args = vec!["enroll", id, "--key", &key, "--target", &target];
    args.extend_from_slice(extra);
    reg.ok(&args);
    let kh = dir.path("known_hosts");
    reg.ok(&[
        "device-config",
        id,
        "--out",
        dir.0.to_str().unwrap(),
        "--known-hosts-path",
        kh.to_str().unwrap(),
    ]);
    let port = json(reg, &["show", id, "--json"])["port"].as_u64().unwrap() as u16;
    Device {
        dir,
        port,
        agent: None,
    }
}

impl Device {
    fn start(&mut self) -> &Agent {
        let a = agent_from(&self.dir.0, &self.dir.path("identity"));
        a.wait_log("tunnel up", READY);
        self.agent = Some(a);
        self.agent.as_ref().unwrap()
    }
}

#[test]
fn a_device_holds_its_own_port_and_nothing_else() {
    let (reg, lo, jail) = registry_and_jail(Kind::Sqlite, 10);
    let target = DeviceSshd::start();
    let mut dev = enrol_device(&reg, "234DNJE4", target.port);
    assert_eq!(dev.port, lo);
    // The registry made by root stays usable by the account sshd runs the command as.
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(reg.sqlite_path()).unwrap().uid();
    let warden_uid: u32 = run_ok(Command::new("id").args(["-u", COMMAND_USER]))
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        owner, warden_uid,
        "registry.db not handed to {COMMAND_USER}"
    );

    // The device, from exactly the files device-config wrote.
    let line = dev.start().wait_log("tunnel up", READY);
    assert!(
        line.contains(&format!("listen=localhost:{lo}")) || line.contains(&format!(":{lo}")),
        "{line}"
    );
    let hello = target.operator_ssh(
        &["-p", &lo.to_string()],
        "127.0.0.1",
        "echo through-the-jail",
    );
    assert_eq!(hello.trim(), "through-the-jail");

    // An attacker holding an enrolled key (a neighbour device's).
    let keys = TempDir::new("attacker");
    let (nkey, npub) = key(&keys);
    reg.ok(&["enroll", "neighbour", "--key", &npub]);
    let nport = lo + 1;
    let tunnel = tunnel_user();
    // Control: the neighbour's own port works (so the refusals below are real).
    let mut own = jail
        .ssh_cmd(
            &nkey,
            &tunnel,
            &[
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-R",
                &format!("{nport}:127.0.0.1:{}", target.port),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(READY, "the neighbour's own forward", || {
        port_answers(nport).then_some(())
    });
    let _ = own.kill();
    let _ = own.wait();
    // ... but not the device's port, nor any other port of the pool.
    for p in [lo, lo + 5] {
        let (code, _, err) = jail.ssh(
            &nkey,
            &tunnel,
            &[
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-R",
                &format!("{p}:127.0.0.1:22"),
            ],
        );
        assert_eq!(code, 255, "-R {p} was not refused: {err}");
        assert!(err.contains("remote port forwarding failed"), "{err}");
    }
    // No direct-tcpip anywhere (`ssh -W`): the Match block's PermitOpen none.
    let (code, _, err) = jail.ssh(
        &nkey,
        &tunnel,
        &["-W", &format!("127.0.0.1:{}", target.port)],
    );
    assert_ne!(code, 0);
    assert!(
        [
            "administratively prohibited",
            "open failed",
            "stdio forwarding failed"
        ]
        .iter()
        .any(|m| err.contains(m)),
        "{err}"
    );
    // No shell, exec or pty.
    let (code, out, err) = jail.ssh(&nkey, &tunnel, &["--", "echo", "pwned"]);
    assert_eq!((code, out.as_str()), (1, ""), "exec ran: {err}");
    let (code, out, err) = jail.ssh(&nkey, &tunnel, &["-tt", "--", "echo", "pwned"]);
    assert!(
        !out.contains("pwned") && code != 0,
        "pty/exec: {code} {out} {err}"
    );
    assert!(err.contains("PTY allocation request failed"), "{err}");
    // A device key cannot log in as the operator account.
    let (code, _, err) = jail.ssh(&nkey, OPERATOR_USER, &["--", "true"]);
    assert_eq!(code, 255, "device key logged in as {OPERATOR_USER}: {err}");
    // An unenrolled key cannot log in.
    let (stranger, _) = key(&keys);
    let (code, _, err) = jail.ssh(&stranger, &tunnel, &["--", "true"]);
    assert_eq!(code, 255, "{err}");
    assert!(err.contains("Permission denied"), "{err}");
    // A revoked key cannot log in (it could a moment ago: exit 1 is /bin/false).
    let (code, _, _) = jail.ssh(&nkey, &tunnel, &["--", "true"]);
    assert_eq!(code, 1);
    reg.ok(&["revoke", "neighbour", "--reason", "test"]);
    let (code, _, err) = jail.ssh(&nkey, &tunnel, &["--", "true"]);
    assert_eq!(code, 255, "revoked key logged in: {err}");
    // sshd ran the command as the unprivileged account.
    let log = jail.log();
    assert!(!log.contains("Unsafe AuthorizedKeysCommand"), "{log}");
}

#[test]
fn openssh_refuses_a_key_line_with_permitopen_none() {
    // Why the drop-in fences direct-tcpip with `PermitOpen none` in the Match
    // block: OpenSSH 9.2 finds `permitopen="none"` in a key line invalid and
    // refuses the key outright.
    require_root();
    let dir = TempDir::new("permitopen");
    let (k, public) = key(&dir);
    let listen = free_port();
    let good = format!("restrict,port-forwarding,permitlisten=\"localhost:{listen}\" {public}");
    let bad = format!(
        "restrict,port-forwarding,permitopen=\"none\",permitlisten=\"localhost:{listen}\" {public}"
    );
    for (line, want) in [(good, 1), (bad, 255)] {
        let jail = agent::Jail::start(agent::JailOpts::new(listen, &line));
        let out = agent::ssh_client(&k)
            .args(["-p", &jail.port.to_string()])
            .arg(format!("{}@127.0.0.1", jail.user))
            .arg("true")
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(want),
            "{line}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn authorized_keys_fails_closed() {
    let (reg, _, jail) = registry_and_jail(Kind::Sqlite, 4);
    let keys = TempDir::new("fc");
    let (k, public) = key(&keys);
    reg.ok(&["enroll", "d1", "--key", &public]);
    let fp = json(&reg, &["show", "d1", "--json"])["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let tunnel = tunnel_user();
    let ak = |db: &str, jail: &str, user: &str, fp: &str| {
        split(
            Command::new(warden_bin())
                .args(["--db", db, "authorized-keys", "--jail", jail, user, fp])
                .output()
                .unwrap(),
        )
    };
    // The verified yes: one line, restricted to the device's own port.
    let (code, out, _) = ak(&reg.url, "jail-a", &tunnel, &fp);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1);
    assert!(
        out.starts_with("restrict,port-forwarding,permitlisten=\"localhost:"),
        "{out}"
    );
    // Every no: exit 0, nothing on stdout, a reason on stderr.
    let gone = free_port();
    let cases = [
        (
            reg.url.clone(),
            "jail-a",
            OPERATOR_USER.to_string(),
            fp.clone(),
            "not",
        ),
        (
            reg.url.clone(),
            "jail-b",
            tunnel.clone(),
            fp.clone(),
            "unknown jail",
        ),
        (
            reg.url.clone(),
            "jail-a",
            tunnel.clone(),
            format!("SHA256:{}", "A".repeat(43)),
            "not enrolled",
        ),
        (
            reg.url.clone(),
            "jail-a",
            tunnel.clone(),
            "SHA256:AAAA".into(),
            "is not SHA256:",
        ),
        (
            reg.url.clone(),
            "jail-a",
            tunnel.clone(),
            "MD5:xx".into(),
            "fingerprint",
        ),
        (
            "sqlite:///nonexistent/registry.db".into(),
            "jail-a",
            tunnel.clone(),
            fp.clone(),
            "does not exist",
        ),
        (
            format!("postgres://postgres@127.0.0.1:{gone}/x"),
            "jail-a",
            tunnel.clone(),
            fp.clone(),
            "unreachable",
        ),
        (
            "bogus://x".into(),
            "jail-a",
            tunnel.clone(),
            fp.clone(),
            "--db",
        ),
    ];
    for (db, j, u, f, why) in &cases {
        let (code, out, err) = ak(db, j, u, f);
        assert_eq!((code, out.as_str()), (0, ""), "{db} {j} {u} {f}: {err}");
        assert!(err.contains(why), "{db} {j} {u} {f}: {err:?} lacks {why:?}");
    }
    // Through sshd: a registry the command cannot read means no login ...
    let (code, _, _) = jail.ssh(&k, &tunnel, &["--", "true"]);
    assert_eq!(
        code,
        1,
        "an enrolled device should authenticate: {}",
        jail.log()
    );
    let regdir = reg.dir.path("reg");
    run_ok(Command::new("chmod").arg("000").arg(&regdir));
    let (code, _, err) = jail.ssh(&k, &tunnel, &["--", "true"]);
    run_ok(Command::new("chmod").arg("0750").arg(&regdir));
    assert_eq!(code, 255, "logged in without a readable registry: {err}");
    // ... and a readable one lets it in again.
    let (code, _, _) = jail.ssh(&k, &tunnel, &["--", "true"]);
    assert_eq!(code, 1);
}

#[test]
fn watch_records_presence_and_ends_a_revoked_session() {
    // On PostgreSQL: sshd's AuthorizedKeysCommand and watch against the server.
    let (reg, lo, jail) = registry_and_jail(Kind::Postgres, 4);
    let target = DeviceSshd::start();
    let mut dev = enrol_device(&reg, "d1", target.port);
    dev.start();
    watch_once(&reg, &jail);
    let v = json(&reg, &["show", "d1", "--json"]);
    assert_eq!(v["online"], "jail-a", "{v}");
    assert!(v["last_seen"].is_string(), "{v}");
    // The agent goes away: offline within a watch interval.
    let mut agent = dev.agent.take().unwrap();
    agent.signal("TERM");
    agent.wait_exit(READY);
    wait_until(READY, "listener released", || {
        (!port_answers(lo)).then_some(())
    });
    watch_once(&reg, &jail);
    let v = json(&reg, &["show", "d1", "--json"]);
    assert!(v["online"].is_null(), "{v}");
    assert!(reg.ok(&["ls", "--offline"]).contains("d1"));
    // Back online; then revoked while connected: watch ends its session.
    dev.start();
    let mut watch = reg
        .warden_cmd(&[
            "watch",
            "--jail",
            "jail-a",
            "--interval",
            "1",
            "--sshd-pid-file",
            jail.pid_file().to_str().unwrap(),
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_until(READY, "watch sees d1 online", || {
        (json(&reg, &["show", "d1", "--json"])["online"] == "jail-a").then_some(())
    });
    assert!(port_answers(lo));
    reg.ok(&["revoke", "d1", "--reason", "stolen"]);
    wait_until(Duration::from_secs(15), "revoked session ended", || {
        (!port_answers(lo)).then_some(())
    });
    let agent = dev.agent.as_ref().unwrap();
    // Its reconnects are refused at authentication: the port stays closed.
    agent.wait_log("refused key", READY);
    assert!(!port_answers(lo));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("ended the session of revoked device d1"),
        "{log}"
    );
    assert!(
        reg.dump().contains("end-session"),
        "no audit row for the ended session"
    );
}

/// Sessions belong to keys: `enroll --replace` with a new key remembers the
/// old one as revoked, and `watch` ends the session the old key still holds;
/// the new key then holds the same port.
#[test]
fn watch_ends_the_session_of_a_replaced_key_sqlite() {
    watch_ends_the_session_of_a_replaced_key(Kind::Sqlite);
}

#[test]
fn watch_ends_the_session_of_a_replaced_key_postgres() {
    watch_ends_the_session_of_a_replaced_key(Kind::Postgres);
}

fn watch_ends_the_session_of_a_replaced_key(kind: Kind) {
    let (reg, lo, jail) = registry_and_jail(kind, 4);
    let target = DeviceSshd::start();
    let mut dev = enrol_device(&reg, "d1", target.port);
    assert_eq!(dev.port, lo);
    dev.start();
    watch_once(&reg, &jail);
    assert!(port_answers(lo));
    let old_key = json(&reg, &["show", "d1", "--json"])["key"].clone();
    let new_state = TempDir::new("rekeyed");
    let k2 = device_key(&new_state.path("identity"));
    reg.ok(&["enroll", "d1", "--key", &k2, "--replace"]);
    // The old key is remembered as revoked: never enrolled again.
    let (code, _, err) = reg.warden(&["enroll", "d9", "--key", old_key.as_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("revoked"), "{err}");
    // The old key's session answers keepalives; watch ends it.
    assert!(port_answers(lo), "the old session ended by itself");
    watch_once(&reg, &jail);
    wait_until(READY, "old key's session ended", || {
        (!port_answers(lo)).then_some(())
    });
    let dump = reg.dump();
    assert!(
        dump.contains("end-session") && dump.contains("session older than the current key"),
        "no audit row for the ended session:\n{dump}"
    );
    // Its reconnects are refused; the new key comes up on the same port.
    dev.agent.as_ref().unwrap().wait_log("refused key", READY);
    drop(dev.agent.take());
    // (The new key counts from the second after the re-key.)
    std::thread::sleep(Duration::from_millis(1100));
    let b = agent_from(&dev.dir.0, &new_state.path("identity"));
    b.wait_log("tunnel up", READY);
    assert!(port_answers(lo));
    // A later tick leaves the new key's session alone.
    watch_once(&reg, &jail);
    std::thread::sleep(Duration::from_millis(500));
    assert!(port_answers(lo), "watch ended the new key's session");
    assert_eq!(b.count("tunnel up"), 1, "{:?}", b.lines());
}

/// A session on a pool port that no device owns (the device moved to another
/// pool) is ended by `watch`, audited.
#[test]
fn watch_ends_a_session_on_a_port_no_device_owns() {
    let (reg, lo, jail) = registry_and_jail(Kind::Sqlite, 4);
    let (_, other) = ports(4);
    reg.pool("q", &other);
    let target = DeviceSshd::start();
    let mut dev = enrol_device_with(&reg, "d1", target.port, &["--pool", "p"]);
    dev.start();
    watch_once(&reg, &jail);
    assert!(port_answers(lo));
    let key = json(&reg, &["show", "d1", "--json"])["key"].clone();
    reg.ok(&[
        "enroll",
        "d1",
        "--key",
        key.as_str().unwrap(),
        "--pool",
        "q",
        "--replace",
    ]);
    assert!(port_answers(lo), "the old session ended by itself");
    watch_once(&reg, &jail);
    wait_until(READY, "the stray session ended", || {
        (!port_answers(lo)).then_some(())
    });
    let dump = reg.dump();
    assert!(
        dump.contains("port owned by no device"),
        "no audit row for the ended session:\n{dump}"
    );
}

/// A port freed by a pool move and handed to another device while the old
/// session still holds it: `watch` ends that session (it started before the
/// new owner was enrolled), and the new owner comes up on the port.
#[test]
fn watch_ends_the_previous_holder_of_a_reassigned_port() {
    let (reg, lo, jail) = registry_and_jail(Kind::Sqlite, 4);
    let (_, other) = ports(4);
    reg.pool("q", &other);
    let target = DeviceSshd::start();
    let mut old = enrol_device_with(&reg, "d1", target.port, &["--pool", "p"]);
    old.start();
    let key = json(&reg, &["show", "d1", "--json"])["key"].clone();
    reg.ok(&[
        "enroll",
        "d1",
        "--key",
        key.as_str().unwrap(),
        "--pool",
        "q",
        "--replace",
    ]);
    // (A session started in the second of an enrolment may be taken for an older one.)
    std::thread::sleep(Duration::from_millis(1100));
    let mut new = enrol_device_with(&reg, "d2", target.port, &["--pool", "p"]);
    assert_eq!(new.port, lo, "the freed port went elsewhere");
    assert!(port_answers(lo), "the old session ended by itself");
    watch_once(&reg, &jail);
    wait_until(READY, "the previous holder's session ended", || {
        (!port_answers(lo)).then_some(())
    });
    let audit = json(&reg, &["audit", "--device", "d2", "--json"]);
    assert!(
        audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "end-session"
                && e["reason"] == "session older than the current key"),
        "{audit:#}"
    );
    drop(old.agent.take());
    std::thread::sleep(Duration::from_millis(1100));
    new.start();
    assert!(port_answers(lo));
}

#[test]
fn failover_to_the_second_jail_at_the_same_port() {
    let (reg, lo, mut a) = registry_and_jail(Kind::Sqlite, 4);
    let b = Jail::start(&reg, "jail-b", "p");
    let target = DeviceSshd::start();
    let mut dev = enrol_device(&reg, "d1", target.port);
    let env = std::fs::read_to_string(dev.dir.path("jailbird.env")).unwrap();
    assert!(
        env.contains(&format!(
            "JAILBIRD_DESTINATION={t}@127.0.0.1:{},{t}@127.0.0.1:{}\n",
            a.port,
            b.port,
            t = tunnel_user()
        )),
        "{env}"
    );
    let kh = std::fs::read_to_string(dev.dir.path("known_hosts")).unwrap();
    let host_key: Vec<&str> = a.host_key_line.split_whitespace().take(2).collect();
    assert!(
        kh.contains(&format!("[127.0.0.1]:{} {}\n", a.port, host_key.join(" "))),
        "{kh}"
    );
    // The first jail is down: the device comes up on the second, same port.
    a.kill();
    let line = dev.start().wait_log("tunnel up", READY);
    assert!(
        line.contains(&format!("jail=127.0.0.1:{}", b.port)),
        "{line}"
    );
    assert!(line.contains(&lo.to_string()), "{line}");
    let hello = target.operator_ssh(&["-p", &lo.to_string()], "127.0.0.1", "echo via-b");
    assert_eq!(hello.trim(), "via-b");
    // An operator's `warden connect` goes through the pool's first jail while
    // no watch has seen the device ...
    let op_pub = std::fs::read_to_string(format!("{}.pub", target.client_key.display())).unwrap();
    reg.ok(&["operator", "add", "ops", "--key", op_pub.trim()]);
    let certs = TempDir::new("certs");
    let connect = || {
        let mut args = vec![
            "connect".to_string(),
            "d1".into(),
            "--identity".into(),
            target.client_key.display().to_string(),
            "--cert-dir".into(),
            certs.0.display().to_string(),
            "--print".into(),
            "--".into(),
        ];
        args.extend(batch());
        args.extend(["-l".into(), agent::device_user(), "echo via-connect".into()]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        reg.ok(&refs)
    };
    let first = connect();
    assert!(first.contains(&format!("-p {} -W", a.port)), "{first}");
    // Each jail's watch counts only its own sshd's listeners.
    watch_once(&reg, &a);
    assert!(json(&reg, &["show", "d1", "--json"])["online"].is_null());
    watch_once(&reg, &b);
    assert_eq!(json(&reg, &["show", "d1", "--json"])["online"], "jail-b");
    let ls = reg.ok(&["ls"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("d1 ") && l.contains("online") && l.contains("jail-b")),
        "{ls}"
    );
    // ... and through the jail watch saw holding it once it has.
    let now = connect();
    assert!(now.contains(&format!("-p {} -W", b.port)), "{now}");
    let (code, out, err) = run_printed(&now);
    assert_eq!((code, out.trim()), (0, "via-connect"), "{err}");
}

#[test]
fn the_drop_in_sets_what_sshd_applies() {
    // sshd -T: the settings sshd would apply to each account, with the
    // drop-in included first as Debian's sshd_config does, followed by
    // global settings that must stay global (the drop-in closes its Match).
    let (reg, _, jail) = registry_and_jail(Kind::Sqlite, 2);
    let main = jail.dir.path("debian_sshd_config");
    std::fs::write(
        &main,
        format!(
            "Include {}\nHostKey {}\nX11Forwarding yes\nAllowTcpForwarding yes\n",
            jail.dir.path("warden.conf").display(),
            jail.dir.path("ssh_host_ed25519_key").display()
        ),
    )
    .unwrap();
    let effective = |user: &str| {
        run_ok(
            Command::new(agent::sshd_path())
                .arg("-T")
                .arg("-f")
                .arg(&main)
                .arg("-C")
                .arg(format!("user={user},host=h,addr=127.0.0.1")),
        )
    };
    let has = |text: &str, line: &str| text.lines().any(|l| l == line);
    let t = effective(&tunnel_user());
    for want in [
        "allowtcpforwarding remote",
        "permitopen none",
        "permittty no",
        "forcecommand /bin/false",
        "authorizedkeysfile none",
        "authorizedkeyscommanduser warden",
        "x11forwarding no",
        "allowagentforwarding no",
        "passwordauthentication no",
    ] {
        assert!(has(&t, want), "tunnel user lacks {want:?}:\n{t}");
    }
    assert!(
        t.contains(&format!(
            "authorizedkeyscommand {} --db {} authorized-keys --jail jail-a %u %f",
            warden_bin().display(),
            reg.url
        )),
        "{t}"
    );
    let o = effective(OPERATOR_USER);
    for want in [
        "allowtcpforwarding local",
        "permitlisten none",
        "permittty no",
        "forcecommand /bin/false",
    ] {
        assert!(has(&o, want), "operator lacks {want:?}:\n{o}");
    }
    let other = effective("someone-else");
    assert!(
        has(&other, "x11forwarding yes") && has(&other, "allowtcpforwarding yes"),
        "the drop-in leaked its Match scope:\n{other}"
    );
}

/// A registry on `kind` with pool "p" of `n` ports and its jail "jail-a":
/// (registry, the pool's first port, the jail).
fn registry_and_jail(kind: Kind, n: u16) -> (Registry, u16, Jail) {
    require_root();
    let reg = Registry::new(kind);
    let (lo, range) = ports(n);
    reg.pool("p", &range);
    let jail = Jail::start(&reg, "jail-a", "p");
    (reg, lo, jail)
}

#[test]
fn an_operator_reaches_exactly_the_devices_granted_while_granted_sqlite() {
    an_operator_reaches_exactly_the_devices_granted_while_granted(Kind::Sqlite);
}

#[test]
fn an_operator_reaches_exactly_the_devices_granted_while_granted_postgres() {
    an_operator_reaches_exactly_the_devices_granted_while_granted(Kind::Postgres);
}

fn an_operator_reaches_exactly_the_devices_granted_while_granted(kind: Kind) {
    let (reg, lo, jail) = registry_and_jail(kind, 4);
    let target = DeviceSshd::start();
    let mut d1 = enrol_device(&reg, "234DNJE4", target.port);
    let mut d2 = enrol_device(&reg, "NEIGHBOUR", target.port);
    d1.start();
    d2.start();
    let keys = TempDir::new("operator");
    let (op_key, op_pub) = key(&keys);
    reg.ok(&["operator", "add", "alice", "--key", &op_pub]);
    // Through the jail to the device's own sshd, as `warden connect` will:
    // ssh -o ProxyCommand='ssh -W localhost:PORT OPUSER@JAIL' ... DEVICE.
    let via = |port: u16| {
        format!(
            "ProxyCommand=ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i {} -p {} -W localhost:{port} {OPERATOR_USER}@127.0.0.1",
            op_key.display(),
            jail.port
        )
    };
    let reach = |port: u16| -> bool {
        let out = agent::ssh_client(&target.client_key)
            .args(["-o", "LogLevel=ERROR", "-o", &via(port)])
            .arg(format!("{}@device", agent::device_user()))
            .arg("echo reached")
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).contains("reached")
    };
    // No grant: the operator key does not log in at all.
    let (code, _, err) = jail.ssh(
        &op_key,
        OPERATOR_USER,
        &["-N", "-o", "ExitOnForwardFailure=yes"],
    );
    assert_eq!(code, 255, "{err}");
    assert!(!reach(lo));
    // A grant for 234DNJE4 (by MAC would do as well): that device, and only it.
    reg.ok(&[
        "grant",
        "234DNJE4",
        "--operator",
        "alice",
        "--for",
        "2h",
        "--reason",
        "ticket 42",
    ]);
    assert!(reach(lo), "granted device not reachable");
    assert!(!reach(d2.port), "the neighbour's port was reachable");
    // A grant that expires: reachable, then not.
    reg.ok(&["grant", "NEIGHBOUR", "--operator", "alice", "--for", "3s"]);
    assert!(reach(d2.port), "freshly granted device not reachable");
    wait_until(Duration::from_secs(20), "the 3 s grant to expire", || {
        (!reach(d2.port)).then_some(())
    });
    assert!(reach(lo), "the other grant ended with it");
    // The operator key is no device key, and a disabled operator is out.
    let (code, _, _) = jail.ssh(&op_key, &tunnel_user(), &["--", "true"]);
    assert_eq!(code, 255, "operator key logged in as the tunnel user");
    reg.ok(&["operator", "disable", "alice"]);
    assert!(!reach(lo), "a disabled operator still got through");
    // Each step left its audit entry.
    let audit: serde_json::Value =
        serde_json::from_str(&reg.ok(&["audit", "--operator", "alice", "--json"])).unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    for want in ["operator-add", "grant", "operator-disable"] {
        assert!(actions.contains(&want), "no {want} entry: {actions:?}");
    }
    let grant = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "grant")
        .unwrap();
    assert_eq!(
        (grant["device"].as_str(), grant["reason"].as_str()),
        (Some("234DNJE4"), Some("ticket 42"))
    );
}

#[test]
fn a_revoked_device_is_out_of_reach_whatever_the_grant_sqlite() {
    a_revoked_device_is_out_of_reach_whatever_the_grant(Kind::Sqlite);
}

#[test]
fn a_revoked_device_is_out_of_reach_whatever_the_grant_postgres() {
    a_revoked_device_is_out_of_reach_whatever_the_grant(Kind::Postgres);
}

fn a_revoked_device_is_out_of_reach_whatever_the_grant(kind: Kind) {
    let (reg, lo, jail) = registry_and_jail(kind, 2);
    let keys = TempDir::new("operator");
    let (op_key, op_pub) = key(&keys);
    let (_, dev_pub) = key(&keys);
    reg.ok(&["enroll", "D1", "--key", &dev_pub]);
    reg.ok(&["operator", "add", "bob", "--key", &op_pub]);
    reg.ok(&["grant", "D1", "--operator", "bob", "--for", "1h"]);
    let fp = |k: &str| {
        let f = keys.path("fp.pub");
        std::fs::write(&f, format!("{k}\n")).unwrap();
        run_ok(Command::new("ssh-keygen").arg("-lf").arg(&f))
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_string()
    };
    let op_fp = fp(&op_pub);
    let ak = || reg.warden(&["authorized-keys", "--jail", "jail-a", OPERATOR_USER, &op_fp]);
    let (code, line, _) = ak();
    assert_eq!(code, 0);
    assert!(
        line.contains(&format!("permitopen=\"localhost:{lo}\"")) && !line.contains("permitlisten"),
        "{line}"
    );
    // The device key may not log in as the operator, nor the operator as the device.
    let (_, out, err) = reg.warden(&[
        "authorized-keys",
        "--jail",
        "jail-a",
        OPERATOR_USER,
        &fp(&dev_pub),
    ]);
    assert!(out.is_empty() && err.contains("not an operator"), "{err}");
    let (_, out, _) = reg.warden(&[
        "authorized-keys",
        "--jail",
        "jail-a",
        &tunnel_user(),
        &op_fp,
    ]);
    assert!(out.is_empty());
    reg.ok(&["revoke", "D1"]);
    let (code, line, err) = ak();
    assert_eq!(
        (code, line.as_str()),
        (0, ""),
        "revoked device still granted"
    );
    assert!(err.contains("no live grant"), "{err}");
    // And through sshd: no login for the operator now.
    let (code, _, _) = jail.ssh(
        &op_key,
        OPERATOR_USER,
        &["-N", "-o", "ExitOnForwardFailure=yes"],
    );
    assert_eq!(code, 255);
}

// ---------------------------------------------------------------------------
// warden connect: a grant, a user certificate for that one device, ssh through
// the jail holding the device now
// ---------------------------------------------------------------------------

const MAC: &str = "92:be:bf:83:6e:b3";

/// Runs a printed `warden connect --print` command line with `sh`.
fn run_printed(line: &str) -> (i32, String, String) {
    split(
        Command::new("sh")
            .arg("-c")
            .arg(line.trim())
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    )
}

/// The ssh options the tests add for the device's own host key (which the
/// operator's known_hosts would hold under the device id) and batch mode.
fn batch() -> Vec<String> {
    [
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs one SQL statement on the registry's own database, as its owner.
fn raw_sql(reg: &Registry, kind: Kind, stmt: &str) -> Result<(), String> {
    match kind {
        Kind::Sqlite => {
            let (code, _, err) = split(
                Command::new("sqlite3")
                    .arg(reg.sqlite_path())
                    .arg(stmt)
                    .output()
                    .unwrap(),
            );
            if code == 0 { Ok(()) } else { Err(err) }
        }
        Kind::Postgres => {
            let db = reg.url.rsplit('/').next().unwrap().to_string();
            pg().client(&db)
                .batch_execute(stmt)
                .map_err(|e| format!("{e:?}"))
        }
    }
}

fn connect_signs_for_one_device_and_the_grant_window(kind: Kind) {
    let (reg, _lo, jail) = registry_and_jail(kind, 4);
    let keys = TempDir::new("operator");
    let ca = keys.path("operator_ca");
    let out = reg.ok(&["ca", "init", "--ca", ca.to_str().unwrap()]);
    assert!(out.contains("SHA256:"), "{out}");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&ca).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "CA key mode");
    }
    // A second init never replaces the CA (every device trusts it).
    let (code, _, err) = reg.warden(&["ca", "init", "--ca", ca.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");

    // The device's own sshd trusts the CA for principal = its id, from the
    // files device-config writes (sshd reads both at each login, so they may
    // come after it starts); the operator's key is in no authorized_keys.
    let trust = TempDir::new("trust");
    let (ca_pub, principals) = (
        trust.path("warden_operator_ca.pub"),
        trust.path("warden_principals"),
    );
    let target = DeviceSshd::start_with(|_| {
        format!(
            "TrustedUserCAKeys {}\nAuthorizedPrincipalsFile {}\n",
            ca_pub.display(),
            principals.display()
        )
    });
    let mut d1 = enrol_device_with(&reg, "234DNJE4", target.port, &["--mac", MAC]);
    let mut d2 = enrol_device(&reg, "NEIGHBOUR", target.port);
    reg.ok(&[
        "device-config",
        "234DNJE4",
        "--out",
        trust.0.to_str().unwrap(),
        "--operator-ca",
        ca.to_str().unwrap(),
    ]);
    let drop_in = std::fs::read_to_string(trust.path("warden-operators.conf")).unwrap();
    assert!(
        drop_in.contains("TrustedUserCAKeys") && drop_in.contains("AuthorizedPrincipalsFile"),
        "{drop_in}"
    );
    assert_eq!(std::fs::read_to_string(&principals).unwrap(), "234DNJE4\n");
    d1.start();
    d2.start();
    let (op_key, op_pub) = key(&keys);
    reg.ok(&["operator", "add", "alice", "--key", &op_pub]);
    let cert_dir = keys.path("certs");
    let user = agent::device_user();
    let connect = |which: &[&str], extra: &[&str], ssh: &[String]| {
        let mut args: Vec<String> = vec!["connect".into()];
        args.extend(which.iter().map(|s| s.to_string()));
        args.extend([
            "--identity".into(),
            op_key.display().to_string(),
            "--ca".into(),
            ca.display().to_string(),
            "--cert-dir".into(),
            cert_dir.display().to_string(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("--".into());
        args.extend(ssh.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        reg.warden(&refs)
    };
    let remote = |cmd: &str| {
        let mut v = batch();
        v.extend(["-l".to_string(), user.clone(), cmd.to_string()]);
        v
    };

    // --print: the command; run, it reaches 234DNJE4's own sshd with the
    // certificate (the key alone is authorized nowhere on the device).
    let (code, line, err) = connect(
        &["234DNJE4"],
        &["--for", "10m", "--reason", "ticket 7", "--print"],
        &remote("echo reached"),
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        line.contains("ProxyCommand=")
            && line.contains(&format!("-W localhost:{}", d1.port))
            && line.contains("HostKeyAlias=234DNJE4")
            && line.contains("CertificateFile="),
        "{line}"
    );
    let (code, out, err) = run_printed(&line);
    assert_eq!((code, out.trim()), (0, "reached"), "{err}");
    // The device's sshd logs whose certificate, for which grant.
    wait_until(
        READY,
        "the certificate's key id in the device's log",
        || target.log().contains("operator=alice").then_some(()),
    );

    // By MAC, run by warden itself; ssh's exit status is passed on.
    let (code, out, err) = connect(&["--mac", MAC], &[], &remote("echo via-mac"));
    assert_eq!((code, out.trim()), (0, "via-mac"), "{err}");
    let (code, _, _) = connect(&["234DNJE4"], &[], &remote("exit 7"));
    assert_eq!(code, 7);

    // ssh-config: `ssh 234DNJE4` (or its MAC) through the jail, the jails'
    // host keys checked from the file it wrote.
    let kh = keys.path("jails_known_hosts");
    let cfg = keys.path("ssh_config");
    let text = reg.ok(&[
        "ssh-config",
        "--identity",
        op_key.to_str().unwrap(),
        "--known-hosts",
        kh.to_str().unwrap(),
    ]);
    assert!(text.contains(&format!("Host 234DNJE4 {MAC}")), "{text}");
    std::fs::write(&cfg, &text).unwrap();
    let cert = cert_dir.join("234DNJE4-cert.pub");
    for host in ["234DNJE4", MAC] {
        let (code, out, err) = split(
            Command::new("ssh")
                .arg("-F")
                .arg(&cfg)
                .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
                .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"])
                .arg("-o")
                .arg(format!("CertificateFile={}", cert.display()))
                .args(["-l", &user, host, "echo", "via-config"])
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        );
        assert_eq!((code, out.trim()), (0, "via-config"), "ssh {host}: {err}");
    }

    // The neighbour: the jail lets alice through (granted), but its sshd
    // (principal 234DNJE4 only) refuses a certificate for NEIGHBOUR ...
    let (code, nline, err) = connect(&["NEIGHBOUR"], &["--print"], &remote("echo neighbour"));
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = run_printed(&nline);
    assert!(
        code != 0 && !out.contains("neighbour"),
        "a NEIGHBOUR certificate got in"
    );
    // ... and takes 234DNJE4's over the very same route: it was the principal.
    let n_cert = cert_dir.join("NEIGHBOUR-cert.pub").display().to_string();
    let swapped = nline.replace(&n_cert, &cert.display().to_string());
    assert_ne!(swapped, nline);
    let (code, out, err) = run_printed(&swapped);
    assert_eq!((code, out.trim()), (0, "neighbour"), "{err}");

    // A certificate of the same CA for the right principal, expired an hour
    // ago (ssh-keygen signs with warden's CA file): refused by the device.
    let expired = keys.path("expired");
    std::fs::copy(
        format!("{}.pub", op_key.display()),
        expired.with_extension("pub"),
    )
    .unwrap();
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(&ca)
            .args(["-I", "expired", "-n", "234DNJE4", "-V", "-2h:-1h"])
            .arg(expired.with_extension("pub")),
    );
    let expired_cert = keys.path("expired-cert.pub");
    let stale = line.replace(
        &cert.display().to_string(),
        &expired_cert.display().to_string(),
    );
    assert_ne!(stale, line);
    let (code, out, _) = run_printed(&stale);
    assert!(
        code != 0 && !out.contains("reached"),
        "an expired certificate got in"
    );

    // The certificate ends with its grant: a 4 s connect works at once, then
    // its certificate is refused (an earlier 10m grant keeps the jail open,
    // so it is the device that refuses).
    let (code, short, err) = connect(
        &["234DNJE4"],
        &["--for", "4s", "--print"],
        &remote("echo short"),
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run_printed(&short);
    assert_eq!((code, out.trim()), (0, "short"), "{err}");
    wait_until(
        Duration::from_secs(20),
        "the 4 s certificate to expire",
        || (run_printed(&short).0 != 0).then_some(()),
    );

    // Paths ssh would split or expand, and a blank reason: refused before
    // anything is recorded.
    let before = reg.dump();
    let (code, _, err) = connect(&["234DNJE4"], &["--print", "--reason", " "], &[]);
    assert_eq!(code, 2, "{err}");
    let spaced = keys.path("my key");
    std::fs::copy(&op_key, &spaced).unwrap();
    std::fs::copy(format!("{}.pub", op_key.display()), keys.path("my key.pub")).unwrap();
    let (code, _, err) = reg.warden(&[
        "connect",
        "234DNJE4",
        "--identity",
        spaced.to_str().unwrap(),
        "--print",
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("without spaces"), "{err}");
    assert_eq!(before, reg.dump(), "a refused connect changed the registry");

    // A pool that wants reasons: none given, nothing recorded.
    reg.ok(&[
        "pool",
        "add",
        "strict",
        "--ports",
        "39990-39999",
        "--require-reason",
    ]);
    let (_, spare) = key(&keys);
    reg.ok(&["enroll", "STRICT1", "--key", &spare, "--pool", "strict"]);
    let before = reg.dump();
    let (code, _, err) = connect(&["STRICT1"], &["--print"], &[]);
    assert_eq!((code, err.lines().count()), (2, 1), "{err}");
    assert!(err.contains("requires a --reason"), "{err}");
    assert_eq!(before, reg.dump(), "a refused connect changed the registry");

    // Every connect is in the audit trail with its certificate serial.
    let audit = json(&reg, &["audit", "--operator", "alice", "--json"]);
    let entries = audit.as_array().unwrap();
    let connects: Vec<&serde_json::Value> = entries
        .iter()
        .filter(|e| e["action"] == "connect")
        .collect();
    assert_eq!(connects.len(), 5, "{audit:#}");
    for e in &connects {
        let d = e["detail"].as_str().unwrap();
        assert!(
            d.contains("jail jail-a") && d.contains("certificate serial"),
            "{d}"
        );
    }
    assert_eq!(connects[0]["reason"], "ticket 7");
    // A key offered is not a login: authorized-keys writes no audit row.
    assert!(!entries.iter().any(|e| e["action"] == "operator-login"));
    // Append-only in the database itself, whoever asks.
    let mut stmts = vec!["UPDATE audit SET action = 'x'", "DELETE FROM audit"];
    if kind == Kind::Sqlite {
        // REPLACE deletes the old row without firing a DELETE trigger.
        stmts.push(
            "INSERT OR REPLACE INTO audit (seq, at, action, actor, origin) VALUES (1, 0, 'x', 'x', 'x')",
        );
    }
    for stmt in stmts {
        let err = raw_sql(&reg, kind, stmt).expect_err(stmt);
        assert!(err.contains("append-only"), "{stmt}: {err}");
    }
    drop(jail);
}

#[test]
fn connect_signs_for_one_device_and_the_grant_window_sqlite() {
    connect_signs_for_one_device_and_the_grant_window(Kind::Sqlite);
}

#[test]
fn connect_signs_for_one_device_and_the_grant_window_postgres() {
    connect_signs_for_one_device_and_the_grant_window(Kind::Postgres);
}

/// Waits until `child` prints `word` on stdout (read in a thread), within READY.
fn wait_stdout(child: &mut std::process::Child, word: &str) {
    use std::io::BufRead;
    let out = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + READY;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(word) => return,
            Ok(_) => continue,
            Err(e) => panic!("no {word:?} on the session's stdout: {e}"),
        }
    }
}

#[test]
fn watch_ends_operator_sessions_no_grant_covers_any_more() {
    let (reg, _lo, jail) = registry_and_jail(Kind::Sqlite, 4);
    let target = DeviceSshd::start();
    let mut d1 = enrol_device(&reg, "D1", target.port);
    d1.start();
    let op_pub_file = format!("{}.pub", target.client_key.display());
    let op_pub = std::fs::read_to_string(&op_pub_file).unwrap();
    reg.ok(&["operator", "add", "ops", "--key", op_pub.trim()]);
    let op_fp = run_ok(Command::new("ssh-keygen").args(["-lf", &op_pub_file]))
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    let certs = TempDir::new("certs");
    let session = |duration: &str| {
        let mut args = vec![
            "connect".to_string(),
            "D1".into(),
            "--identity".into(),
            target.client_key.display().to_string(),
            "--cert-dir".into(),
            certs.0.display().to_string(),
            "--for".into(),
            duration.into(),
            "--".into(),
        ];
        args.extend(batch());
        args.extend([
            "-l".into(),
            agent::device_user(),
            "echo started; sleep 120".into(),
        ]);
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut child = reg
            .warden_cmd(&refs)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_stdout(&mut child, "started");
        child
    };
    let granted = || {
        let (_, line, _) =
            reg.warden(&["authorized-keys", "--jail", "jail-a", OPERATOR_USER, &op_fp]);
        !line.is_empty()
    };
    let ends = |child: &mut std::process::Child, what: &str| {
        watch_once(&reg, &jail);
        wait_until(Duration::from_secs(15), what, || child.try_wait().unwrap());
    };

    // A session that outlives its grant: sshd checked the grant at login only,
    // so it runs on until watch ends it.
    let mut s1 = session("3s");
    wait_until(Duration::from_secs(20), "the 3 s grant to lapse", || {
        (!granted()).then_some(())
    });
    assert!(
        s1.try_wait().unwrap().is_none(),
        "the session ended by itself"
    );
    ends(&mut s1, "watch to end the session of a lapsed grant");

    // A revoked device: watch ends its tunnel's session, and with the tunnel
    // every operator session through it ends.
    let mut s2 = session("1h");
    // The session exists: watch records it, once, with its operator.
    watch_once(&reg, &jail);
    watch_once(&reg, &jail);
    let audit = json(&reg, &["audit", "--device", "D1", "--json"]);
    let seen: Vec<&serde_json::Value> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "operator-session")
        .collect();
    assert_eq!(seen.len(), 1, "{audit:#}");
    assert!(
        seen[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("operator session on jail jail-a"),
        "{audit:#}"
    );
    assert!(seen[0]["operator"].is_string(), "{audit:#}");
    assert!(
        !audit
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "operator-login"),
        "{audit:#}"
    );
    reg.ok(&["revoke", "D1"]);
    ends(&mut s2, "watch to end the session to a revoked device");

    let audit = json(&reg, &["audit", "--device", "D1", "--json"]);
    let ended: Vec<(&str, &str)> = audit
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "end-session")
        .map(|e| (e["reason"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(ended.len(), 2, "{audit:#}");
    assert!(
        ended[0].0 == "no live grant" && ended[0].1.starts_with("operator session on jail jail-a"),
        "{ended:?}"
    );
    assert!(
        ended[1].0 == "device revoked" && !ended[1].1.starts_with("operator session"),
        "{ended:?}"
    );
}

#[test]
fn a_host_ca_pool_takes_a_rebuilt_jail_without_touching_the_device() {
    require_root();
    let reg = Registry::new(Kind::Sqlite);
    reg.pool("p", &ports(4).1);
    let keys = TempDir::new("hostca");
    let ca = keys.path("host_ca");
    reg.ok(&["ca", "init", "--ca", ca.to_str().unwrap()]);
    let ca_pub = std::fs::read_to_string(keys.path("host_ca.pub")).unwrap();
    let ca_key: String = ca_pub
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    // Signing needs the pool to name the CA first: refused, nothing written.
    let (code, _, err) = reg.warden(&["jail", "sign", "nope", "--ca", ca.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    reg.ok(&["pool", "host-ca", "p", "--key", &ca_key]);
    let mut a = Jail::start_with(&reg, "jail-a", "p", None, Some(&ca));
    let mut b = Jail::start_with(&reg, "jail-b", "p", None, Some(&ca));
    assert!(
        std::fs::read_to_string(a.dir.path("warden.conf"))
            .unwrap()
            .contains("HostCertificate "),
        "the drop-in names the certificate"
    );
    let target = DeviceSshd::start();
    let mut dev = enrol_device(&reg, "d1", target.port);
    // The device trusts the CA (and still knows the jails' own keys, for a
    // jail not signed yet).
    let kh = std::fs::read_to_string(dev.dir.path("known_hosts")).unwrap();
    assert!(kh.contains(&format!("@cert-authority * {ca_key}")), "{kh}");
    assert!(
        kh.contains(a.host_key_line.split_whitespace().nth(1).unwrap()),
        "{kh}"
    );
    let up = dev.start().wait_log("tunnel up", READY);
    assert!(up.contains(&format!("jail=127.0.0.1:{}", a.port)), "{up}");
    // Both jails die; jail-a's host is rebuilt with a new host key (a new jail
    // record at the same address), signed by the same CA. The device's files
    // are untouched: it comes back through the rebuilt jail.
    let port_a = a.port;
    a.kill();
    b.kill();
    let c = Jail::start_with(&reg, "jail-c", "p", Some(port_a), Some(&ca));
    assert_ne!(c.host_key_line, a.host_key_line);
    let agent = dev.agent.as_ref().unwrap();
    // The jail closed the link: the agent's first retry comes within DROP_SPREAD.
    let again = agent.wait_log_n("tunnel up", 2, READY + jailbird::limits::DROP_SPREAD);
    assert!(
        again.contains(&format!("jail=127.0.0.1:{port_a}")),
        "{again}"
    );
    assert!(
        agent.count("signed by trusted CA") >= 2,
        "{:#?}",
        agent.lines()
    );
    let hello = target.operator_ssh(&["-p", &dev.port.to_string()], "127.0.0.1", "echo rebuilt");
    assert_eq!(hello.trim(), "rebuilt");
    let audit = reg.ok(&["audit"]);
    assert!(
        audit.contains("pool-host-ca") && audit.contains("jail-sign"),
        "{audit}"
    );
}
