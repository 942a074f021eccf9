//! The registry on both real backends: enrolment semantics, ports unique
//! under 40 concurrent `enroll` processes, all-or-nothing import, and bad
//! input that gets one line, the right exit status and an unchanged registry.

mod common;
use common::*;
use std::process::Stdio;

both_backends!(
    enroll_is_idempotent_and_refuses_conflicts,
    forty_concurrent_enrolls_get_unique_ports,
    bad_input_is_one_line_and_changes_nothing,
    import_is_all_or_nothing,
    revoke_and_replace_are_audited,
    a_full_range_is_a_runtime_error,
    audit_lists_every_change_filtered,
    operators_and_grants_refuse_bad_input,
);

fn enroll_is_idempotent_and_refuses_conflicts(kind: Kind) {
    let reg = Registry::new(kind);
    let dir = TempDir::new("keys");
    let (_, k1) = key(&dir);
    let (_, k2) = key(&dir);
    reg.pool("default", "10000-10099");
    let out = reg.ok(&[
        "enroll",
        "234DNJE4",
        "--key",
        &k1,
        "--mac",
        "92-BE-BF-83-6E-B3",
    ]);
    assert_eq!(out.trim(), "234DNJE4 enrolled pool=default port=10000");
    // Same id and key: same port back, nothing new in the registry.
    let before = reg.dump();
    let out = reg.ok(&["enroll", "234DNJE4", "--key", &k1]);
    assert_eq!(
        out.trim(),
        "234DNJE4 already-enrolled pool=default port=10000"
    );
    assert_eq!(before, reg.dump());
    // Same id, other key; same key, other id: refused, exit 2, one line.
    let (code, _, err) = reg.warden(&["enroll", "234DNJE4", "--key", &k2]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("another key") && err.contains("--replace"),
        "{err}"
    );
    let (code, _, err) = reg.warden(&["enroll", "OTHER", "--key", &k1]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("already belongs to device 234DNJE4"), "{err}");
    assert_eq!(before, reg.dump());
    // The MAC was normalised; show finds the device by any form of it.
    let json = reg.ok(&["show", "--mac", "92BE.BF83.6EB3", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["id"], "234DNJE4");
    assert_eq!(v["mac"], "92:be:bf:83:6e:b3");
    assert_eq!(v["port"], 10000);
    assert_eq!(v["target"], "127.0.0.1:22");
    assert_eq!(v["revoked"], false);
    assert!(v["online"].is_null() && v["last_seen"].is_null());
    // The fingerprint is the one ssh-keygen prints (what sshd's %f passes).
    let pubfile = dir.path("k.pub");
    std::fs::write(&pubfile, format!("{k1}\n")).unwrap();
    let lf = run_ok(
        std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&pubfile),
    );
    assert_eq!(v["fingerprint"], lf.split_whitespace().nth(1).unwrap());
    // Second device: next port; ls --json lists both.
    reg.ok(&["enroll", "B", "--key", &k2, "--label", "site=berlin"]);
    let ls: serde_json::Value = serde_json::from_str(&reg.ok(&["ls", "--json"])).unwrap();
    let ports: Vec<i64> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports, vec![10000, 10001]);
    let berlin = reg.ok(&["ls", "--label", "site=berlin"]);
    assert!(
        berlin.contains("B ") && !berlin.contains("234DNJE4"),
        "{berlin}"
    );
}

fn forty_concurrent_enrolls_get_unique_ports(kind: Kind) {
    let reg = Registry::new(kind);
    reg.pool("default", "20000-20999");
    let dir = TempDir::new("keys");
    let keys: Vec<String> = (0..40).map(|_| key(&dir).1).collect();
    // 40 processes at once, each its own connection and transaction.
    let children: Vec<_> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            reg.warden_cmd(&["enroll", &format!("dev-{i:02}"), "--key", k])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let (code, out, err) = split(c.wait_with_output().unwrap());
        assert_eq!(code, 0, "{out} {err}");
    }
    let ls: serde_json::Value = serde_json::from_str(&reg.ok(&["ls", "--json"])).unwrap();
    let mut ports: Vec<i64> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["port"].as_i64().unwrap())
        .collect();
    assert_eq!(ports.len(), 40);
    ports.sort();
    ports.dedup();
    assert_eq!(ports.len(), 40, "duplicate ports: {ls}");
    assert_eq!(
        ports,
        (20000..20040).collect::<Vec<i64>>(),
        "ports not the lowest free ones"
    );
}

fn bad_input_is_one_line_and_changes_nothing(kind: Kind) {
    let reg = Registry::new(kind);
    let dir = TempDir::new("keys");
    let (_, k1) = key(&dir);
    let (_, k2) = key(&dir);
    reg.pool("default", "10000-10099");
    reg.ok(&["enroll", "A", "--key", &k1, "--mac", "92:be:bf:83:6e:b3"]);
    let csv = dir.path("bad.csv");
    std::fs::write(&csv, format!("id,mac,key\nok1,,{k2}\nbad/id,,{k2}\n")).unwrap();
    let before = reg.dump();
    let cases: Vec<(Vec<String>, i32, &str)> = vec![
        (
            args(&["enroll", "B", "--key", "ssh-ed25519 AAAA!!"]),
            2,
            "--key",
        ),
        (
            vec![
                "enroll".into(),
                "B".into(),
                "--key".into(),
                "ssh-ed25519".into(),
            ],
            2,
            "--key",
        ),
        (
            vec!["enroll".into(), "a/b".into(), "--key".into(), k2.clone()],
            2,
            "device id \"a/b\"",
        ),
        (
            vec!["enroll".into(), "a b".into(), "--key".into(), k2.clone()],
            2,
            "device id \"a b\"",
        ),
        (
            vec!["enroll".into(), "a\nb".into(), "--key".into(), k2.clone()],
            2,
            "device id \"a\\nb\"",
        ),
        (
            vec![
                "enroll".into(),
                "B".into(),
                "--key".into(),
                k2.clone(),
                "--mac".into(),
                "92:be:bf:83:6e".into(),
            ],
            2,
            "MAC",
        ),
        (
            vec![
                "enroll".into(),
                "B".into(),
                "--key".into(),
                k2.clone(),
                "--mac".into(),
                "zz:be:bf:83:6e:b3".into(),
            ],
            2,
            "MAC",
        ),
        (
            vec![
                "enroll".into(),
                "B".into(),
                "--key".into(),
                k2.clone(),
                "--mac".into(),
                "92:BE:BF:83:6E:B3".into(),
            ],
            2,
            "already belongs to device A",
        ),
        (
            vec!["enroll".into(), "B".into(), "--key".into(), k1.clone()],
            2,
            "already belongs to device A",
        ),
        (
            vec![
                "enroll".into(),
                "B".into(),
                "--key".into(),
                k2.clone(),
                "--pool".into(),
                "nope".into(),
            ],
            2,
            "unknown pool nope",
        ),
        (
            vec![
                "enroll".into(),
                "B".into(),
                "--key".into(),
                k2.clone(),
                "--target".into(),
                "host".into(),
            ],
            2,
            "--target",
        ),
        (
            args(&["pool", "add", "p2", "--ports", "20000-19000"]),
            2,
            "LO is above HI",
        ),
        (
            args(&["pool", "add", "p2", "--ports", "10050-10150"]),
            2,
            "overlap pool default",
        ),
        (args(&["pool", "add", "p/2"]), 2, "pool name"),
        (
            args(&[
                "jail",
                "add",
                "j",
                "--address",
                "h:99999",
                "--host-key",
                &k1,
            ]),
            2,
            "--address",
        ),
        (
            args(&[
                "jail",
                "add",
                "j",
                "--address",
                "h",
                "--host-key",
                "ssh-ed25519 x",
            ]),
            2,
            "--host-key",
        ),
        (
            args(&[
                "jail",
                "add",
                "j",
                "--address",
                "h",
                "--host-key",
                &k1,
                "--pool",
                "nope",
            ]),
            2,
            "unknown pool",
        ),
        (args(&["show", "NOPE"]), 2, "unknown device NOPE"),
        (
            args(&["show", "--mac", "92:be:bf:83:6e:b4"]),
            2,
            "unknown device with MAC",
        ),
        (args(&["revoke", "NOPE"]), 2, "unknown device NOPE"),
        (
            args(&["device-config", "NOPE", "--out", "/tmp"]),
            2,
            "unknown device NOPE",
        ),
        (
            args(&["device-config", "A", "--out", "/tmp"]),
            2,
            "has no jail",
        ),
        (args(&["ls", "--pool", "nope"]), 2, "unknown pool"),
        (args(&["sshd-config", "--jail", "nope"]), 2, "unknown jail"),
        (
            vec!["import".into(), csv.display().to_string()],
            2,
            "bad.csv:3:",
        ),
        (args(&["enroll", "--bogus"]), 2, "--bogus"),
    ];
    for (args, want_code, needle) in &cases {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = reg.warden(&a);
        assert_eq!(code, *want_code, "{args:?}: exit {code}, stderr {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: not one line: {err:?}");
        assert!(
            err.contains(needle),
            "{args:?}: {err:?} does not name {needle:?}"
        );
        assert!(out.is_empty(), "{args:?}: printed {out:?}");
        assert_eq!(before, reg.dump(), "{args:?} changed the registry");
    }
    // A database that cannot be reached: runtime failure, exit 1, one line.
    let mut c = std::process::Command::new(warden_bin());
    let port = free_port();
    c.args([
        "--db",
        &format!("postgres://postgres@127.0.0.1:{port}/x"),
        "ls",
    ]);
    let (code, _, err) = split(c.output().unwrap());
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("unreachable"), "{err}");
    let (code, _, err) = split(
        std::process::Command::new(warden_bin())
            .args(["--db", "postgres://u:secret@127.0.0.1/x", "ls"])
            .output()
            .unwrap(),
    );
    assert_eq!(code, 2);
    assert!(
        err.contains("PGPASSWORD") && !err.contains("secret"),
        "{err}"
    );
}

fn import_is_all_or_nothing(kind: Kind) {
    let reg = Registry::new(kind);
    let dir = TempDir::new("keys");
    reg.pool("default", "10000-10999");
    reg.pool("eu", "11000-11999");
    let keys: Vec<String> = (0..6).map(|_| key(&dir).1).collect();
    reg.ok(&["enroll", "pre", "--key", &keys[5], "--pool", "eu"]);
    let good = format!(
        "id,mac,key,pool\n234DNJE4,92:BE:BF:83:6E:B3,{},default\nd2,,{},eu\nd3,aa-bb-cc-dd-ee-ff,{},default\npre,,{},eu\n",
        keys[0], keys[1], keys[2], keys[5]
    );
    // One bad row among good ones: nothing imported, each bad row named.
    let bad = format!(
        "{good}d4,not-a-mac,{},default\nd5,,{},mars\nd2,,{},eu\n",
        keys[3], keys[4], keys[4]
    );
    let f = dir.path("bad.csv");
    std::fs::write(&f, &bad).unwrap();
    let before = reg.dump();
    let (code, _, err) = reg.warden(&["import", f.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.csv:6:") && err.contains("MAC"), "{err}");
    assert!(
        err.contains("bad.csv:8:") && err.contains("device id d2 also on line 3"),
        "{err}"
    );
    assert_eq!(before, reg.dump());
    // Row 7 names an unknown pool: caught against the registry, still nothing in.
    let f2 = dir.path("bad2.csv");
    std::fs::write(&f2, format!("{good}d5,,{},mars\n", keys[4])).unwrap();
    let (code, _, err) = reg.warden(&["import", f2.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad2.csv:6: unknown pool mars"), "{err}");
    assert_eq!(before, reg.dump());
    // The good file: all in, the one already enrolled skipped.
    let g = dir.path("good.csv");
    std::fs::write(&g, &good).unwrap();
    let out = reg.ok(&["import", g.to_str().unwrap()]);
    assert_eq!(
        out.trim(),
        format!("{}: 3 enrolled, 1 already enrolled", g.display())
    );
    let d2: serde_json::Value = serde_json::from_str(&reg.ok(&["show", "d2", "--json"])).unwrap();
    assert_eq!(
        (d2["pool"].as_str(), d2["port"].as_i64()),
        (Some("eu"), Some(11001))
    );
    let d3: serde_json::Value = serde_json::from_str(&reg.ok(&["show", "d3", "--json"])).unwrap();
    assert_eq!(d3["mac"], "aa:bb:cc:dd:ee:ff");
    // Running it again changes nothing.
    let after = reg.dump();
    reg.ok(&["import", g.to_str().unwrap()]);
    assert_eq!(after, reg.dump());
}

fn revoke_and_replace_are_audited(kind: Kind) {
    let reg = Registry::new(kind);
    let dir = TempDir::new("keys");
    let (_, k1) = key(&dir);
    let (_, k2) = key(&dir);
    reg.pool("default", "10000-10099");
    reg.ok(&["enroll", "A", "--key", &k1]);
    reg.ok(&["revoke", "A", "--reason", "stolen"]);
    let v: serde_json::Value = serde_json::from_str(&reg.ok(&["show", "A", "--json"])).unwrap();
    assert_eq!(v["revoked"], true);
    // A revoked device comes back only with --replace (a new key), same port.
    let (code, _, err) = reg.warden(&["enroll", "A", "--key", &k1]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("revoked"), "{err}");
    let out = reg.ok(&["enroll", "A", "--key", &k2, "--replace"]);
    assert_eq!(out.trim(), "A replaced pool=default port=10000");
    let v: serde_json::Value = serde_json::from_str(&reg.ok(&["show", "A", "--json"])).unwrap();
    assert_eq!(v["revoked"], false);
    assert!(
        v["key"].as_str().unwrap() == k2.split_whitespace().take(2).collect::<Vec<_>>().join(" ")
    );
    // The audit rows (read back by the operators issue's `warden audit`).
    let dump = reg.dump();
    for action in ["'enroll'", "'revoke'", "'replace'"] {
        assert!(dump.contains(action), "no {action} audit row:\n{dump}");
    }
    assert!(dump.contains("'stolen'"), "revoke reason not audited");
}

fn a_full_range_is_a_runtime_error(kind: Kind) {
    let reg = Registry::new(kind);
    let dir = TempDir::new("keys");
    reg.pool("tiny", "30000-30001");
    reg.ok(&["enroll", "a", "--key", &key(&dir).1]);
    reg.ok(&["enroll", "b", "--key", &key(&dir).1]);
    let before = reg.dump();
    let (code, _, err) = reg.warden(&["enroll", "c", "--key", &key(&dir).1]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("pool tiny is full"), "{err}");
    assert_eq!(before, reg.dump());
}

#[test]
fn postgres_password_comes_from_pgpassword_or_pgpass_never_the_url() {
    let reg = Registry::new(Kind::Postgres);
    let c = pg();
    let db = reg.url.rsplit('/').next().unwrap().to_string();
    let mut admin = c.client(&db);
    admin
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE warden_pw LOGIN PASSWORD 's3cret-pw'; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
             GRANT ALL ON SCHEMA public TO warden_pw;",
        )
        .unwrap();
    let url = format!("postgres://warden_pw@127.0.0.1:{}/{db}", c.port);
    let run = |envs: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(warden_bin());
        cmd.env_remove("PGPASSWORD")
            .env_remove("PGPASSFILE")
            .env("HOME", "/nonexistent");
        cmd.envs(envs.iter().copied()).args([
            "--db",
            &url,
            "pool",
            "add",
            "pw",
            "--ports",
            "40000-40009",
        ]);
        split(cmd.output().unwrap())
    };
    // No password anywhere: refused by the server, one line, exit 1.
    let (code, _, err) = run(&[]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    // A wrong one: same.
    let (code, _, err) = run(&[("PGPASSWORD", "wrong")]);
    assert_eq!(code, 1, "{err}");
    assert!(!err.contains("wrong"), "password echoed: {err}");
    // From PGPASSWORD.
    let (code, _, err) = run(&[("PGPASSWORD", "s3cret-pw")]);
    assert_eq!(code, 0, "{err}");
    // From a .pgpass file (PGPASSFILE), host:port:db:user:password.
    let dir = TempDir::new("pgpass");
    let f = dir.path("pgpass");
    std::fs::write(
        &f,
        format!("# comment\n127.0.0.1:{}:*:warden_pw:s3cret-pw\n", c.port),
    )
    .unwrap();
    let (code, out, err) = {
        let mut cmd = std::process::Command::new(warden_bin());
        cmd.env_remove("PGPASSWORD").env("PGPASSFILE", &f);
        cmd.args(["--db", &url, "pool", "ls"]);
        split(cmd.output().unwrap())
    };
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("pw ") && out.contains("40000-40009"), "{out}");
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

fn audit_lists_every_change_filtered(kind: Kind) {
    let reg = Registry::new(kind);
    let dir = TempDir::new("keys");
    reg.pool("default", "10000-10099");
    reg.ok(&["enroll", "A", "--key", &key(&dir).1]);
    reg.ok(&["enroll", "B", "--key", &key(&dir).1]);
    reg.ok(&["revoke", "A", "--reason", "stolen"]);
    let all: serde_json::Value = serde_json::from_str(&reg.ok(&["audit", "--json"])).unwrap();
    let actions: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["pool-add", "enroll", "enroll", "revoke"]);
    for e in all.as_array().unwrap() {
        for field in ["at", "action", "device", "operator", "reason"] {
            assert!(e.get(field).is_some(), "{field} missing: {e}");
        }
    }
    let a: serde_json::Value =
        serde_json::from_str(&reg.ok(&["audit", "--device", "A", "--json"])).unwrap();
    let a = a.as_array().unwrap();
    assert_eq!(a.len(), 2, "{a:?}");
    assert_eq!(
        (a[1]["action"].as_str(), a[1]["reason"].as_str()),
        (Some("revoke"), Some("stolen"))
    );
    // --since: a day ago keeps everything, a future date nothing.
    let day: serde_json::Value =
        serde_json::from_str(&reg.ok(&["audit", "--since", "1d", "--json"])).unwrap();
    assert_eq!(day.as_array().unwrap().len(), 4);
    let none: serde_json::Value =
        serde_json::from_str(&reg.ok(&["audit", "--since", "2999-01-01", "--json"])).unwrap();
    assert!(none.as_array().unwrap().is_empty());
    let table = reg.ok(&["audit", "--device", "A"]);
    assert!(
        table.starts_with("AT ") && table.contains("revoke") && table.contains("stolen"),
        "{table}"
    );
    // Bad input: one line, exit 2, nothing changed.
    let before = reg.dump();
    for bad in [
        ["audit", "--since", "yesterday"],
        ["audit", "--device", "a/b"],
    ] {
        let (code, out, err) = reg.warden(&bad);
        assert_eq!(
            (code, out.as_str(), err.lines().count()),
            (2, "", 1),
            "{bad:?}: {err}"
        );
    }
    assert_eq!(before, reg.dump());
}

fn operators_and_grants_refuse_bad_input(kind: Kind) {
    let reg = Registry::new(kind);
    let dir = TempDir::new("keys");
    reg.pool("default", "10000-10099");
    let (_, dev) = key(&dir);
    let (_, op1) = key(&dir);
    let (_, op2) = key(&dir);
    reg.ok(&[
        "enroll",
        "234DNJE4",
        "--key",
        &dev,
        "--mac",
        "92:be:bf:83:6e:b3",
    ]);
    reg.ok(&["enroll", "GONE", "--key", &key(&dir).1]);
    reg.ok(&["revoke", "GONE"]);
    reg.ok(&["operator", "add", "alice", "--key", &op1]);
    reg.ok(&["operator", "add", "alice", "--key", &op2]); // a second key
    reg.ok(&["operator", "add", "alice", "--key", &op2]); // idempotent
    let ops: serde_json::Value =
        serde_json::from_str(&reg.ok(&["operator", "ls", "--json"])).unwrap();
    assert_eq!(ops[0]["keys"].as_array().unwrap().len(), 2, "{ops}");
    // By MAC, in any common form.
    let out = reg.ok(&[
        "grant",
        "--mac",
        "92-BE-BF-83-6E-B3",
        "--operator",
        "alice",
        "--for",
        "90s",
    ]);
    assert!(
        out.contains("alice may reach 234DNJE4 (port 10000"),
        "{out}"
    );
    let before = reg.dump();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["operator", "add", "bob", "--key", &dev],
            "device 234DNJE4",
        ),
        (vec!["enroll", "X", "--key", &op1], "operator alice"),
        (
            vec!["enroll", "X", "--key", &op1, "--replace"],
            "operator alice",
        ),
        (
            vec!["operator", "add", "bob", "--key", &op1],
            "operator alice",
        ),
        (
            vec!["operator", "add", "b/ob", "--key", &op1],
            "operator name",
        ),
        (vec!["operator", "disable", "nobody"], "unknown operator"),
        (
            vec!["grant", "234DNJE4", "--operator", "nobody"],
            "unknown operator",
        ),
        (
            vec!["grant", "NOPE", "--operator", "alice"],
            "unknown device",
        ),
        (vec!["grant", "GONE", "--operator", "alice"], "revoked"),
        (
            vec!["grant", "234DNJE4", "--operator", "alice", "--for", "15x"],
            "duration",
        ),
        (
            vec!["grant", "234DNJE4", "--operator", "alice", "--for", "0s"],
            "duration",
        ),
        (
            vec!["grant", "--mac", "92:be:bf", "--operator", "alice"],
            "MAC",
        ),
    ];
    for (args, needle) in &cases {
        let (code, out, err) = reg.warden(args);
        assert_eq!((code, out.as_str()), (2, ""), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err:?} lacks {needle:?}");
        assert_eq!(before, reg.dump(), "{args:?} changed the registry");
    }
}

#[test]
fn on_postgres_warden_runs_as_a_role_that_can_only_append_to_the_audit() {
    let reg = Registry::new(Kind::Postgres);
    reg.pool("p", "41000-41009");
    let c = pg();
    let db = reg.url.rsplit('/').next().unwrap().to_string();
    let sql = reg.ok(&["db-grants", "--role", "warden_app", "--for", "admin"]);
    assert!(
        sql.contains("GRANT SELECT, INSERT ON audit TO warden_app;"),
        "{sql}"
    );
    let mut owner = c.client(&db);
    owner
        .batch_execute(
            "DO $$ BEGIN CREATE ROLE warden_app LOGIN PASSWORD 'app-pw'; EXCEPTION WHEN duplicate_object THEN NULL; END $$;",
        )
        .unwrap();
    owner.batch_execute(&sql).unwrap();
    // Everything warden does works as that role ...
    let url = format!("postgres://warden_app@127.0.0.1:{}/{db}", c.port);
    let as_app = |args: &[&str]| {
        let mut cmd = std::process::Command::new(warden_bin());
        cmd.env("PGPASSWORD", "app-pw")
            .arg("--db")
            .arg(&url)
            .args(args);
        split(cmd.output().unwrap())
    };
    let dir = TempDir::new("keys");
    for args in [
        vec!["enroll", "D1", "--key", &key(&dir).1],
        vec!["operator", "add", "carol", "--key", &key(&dir).1],
        vec!["grant", "D1", "--operator", "carol", "--for", "1h"],
        vec!["revoke", "D1"],
        vec!["audit"],
    ] {
        let (code, _, err) = as_app(&args);
        assert_eq!(code, 0, "{args:?} as warden_app: {err}");
    }
    // ... but it cannot change or remove an audit entry.
    let mut app = ::postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=warden_app password=app-pw dbname={db}",
            c.port
        ),
        ::postgres::NoTls,
    )
    .unwrap();
    for stmt in [
        "UPDATE audit SET action = 'x'",
        "DELETE FROM audit",
        "TRUNCATE audit",
    ] {
        let err = format!("{:?}", app.batch_execute(stmt).expect_err(stmt));
        assert!(err.contains("permission denied"), "{stmt}: {err}");
    }
    // The owner is held off by the trigger.
    let err = format!(
        "{:?}",
        owner
            .batch_execute("DELETE FROM audit")
            .expect_err("owner delete")
    );
    assert!(err.contains("append-only"), "{err}");
    // SQLite has no roles: said so, exit 2.
    let lite = Registry::new(Kind::Sqlite);
    let (code, _, err) = lite.warden(&["db-grants", "--role", "warden_app", "--for", "admin"]);
    assert_eq!((code, err.lines().count()), (2, 1), "{err}");
}
