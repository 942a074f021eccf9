//! `warden serve` against the real binary on both backends, through curl:
//! every route with each token scope, no token, a revoked or expired token,
//! bad input answered with one line naming the field and nothing changed,
//! TLS with a test CA (and a certificate reloaded on SIGHUP), plain HTTP off
//! loopback refused, and the OpenAPI document checked by an independent
//! validator (openapi-spec-validator, installed by scripts/test-setup.sh).

mod common;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A running `warden serve`, stopped (SIGTERM) when dropped.
struct Server {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Server {
    fn start(reg: &Registry, tls: Option<(&Path, &Path)>) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let log = reg.dir.path(&format!("serve-{port}.log"));
        let mut args = vec!["serve", "--listen", &listen];
        let (cert, key);
        if let Some((c, k)) = tls {
            (cert, key) = (c.display().to_string(), k.display().to_string());
            args.extend(["--tls-cert", &cert, "--tls-key", &key]);
        }
        let child = reg
            .warden_cmd(&args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut s = Server {
            child,
            base: match tls {
                Some(_) => format!("https://localhost:{port}"),
                None => format!("http://{listen}"),
            },
            log,
        };
        wait_until(Duration::from_secs(20), "warden serve answers", || {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("warden serve exited {st}: {}", s.log());
            }
            port_answers(port).then_some(())
        });
        s
    }
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
    /// SIGTERM; returns the exit code.
    fn stop(&mut self) -> i32 {
        run_ok(Command::new("kill").arg(self.child.id().to_string()));
        self.child.wait().unwrap().code().unwrap_or(-1)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One request through curl: (status, body). `extra`: more curl arguments.
fn curl(
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
    extra: &[&str],
) -> (u16, String) {
    let mut c = Command::new("curl");
    c.args([
        "-sS",
        "--max-time",
        "20",
        "-o",
        "-",
        "-w",
        "\n%{http_code}",
        "-X",
        method,
    ]);
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    if body.is_some() {
        c.args([
            "-H",
            "Content-Type: application/json",
            "--data-binary",
            "@-",
        ]);
    }
    c.args(extra).arg(format!("{base}{path}"));
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("curl");
    {
        let mut stdin = child.stdin.take().unwrap();
        if let Some(b) = body {
            let _ = stdin.write_all(b);
        }
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// An error answer: `{"error": "one line"}`; returns the line.
fn error_line(body: &str) -> String {
    let v = json(body);
    let e = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {body}"));
    assert!(!e.is_empty() && !e.contains('\n'), "{body}");
    assert_eq!(v.as_object().unwrap().len(), 1, "{body}");
    e.to_string()
}

/// A pool, a jail (no sshd needed), operator alice, device D1, and a token
/// of each scope (operate and admin act for alice): the tokens by scope.
fn fleet(reg: &Registry) -> [(String, String); 4] {
    reg.pool("p1", "10000-10099");
    let (_, jail_key) = key(&reg.dir);
    reg.ok(&[
        "jail",
        "add",
        "j1",
        "--address",
        "127.0.0.1:2222",
        "--host-key",
        &jail_key,
    ]);
    let (_, op_key) = key(&reg.dir);
    reg.ok(&["operator", "add", "alice", "--key", &op_key]);
    let (_, dev_key) = key(&reg.dir);
    reg.ok(&[
        "enroll",
        "D1",
        "--key",
        &dev_key,
        "--mac",
        "02:00:00:00:00:01",
        "--label",
        "site=berlin",
    ]);
    ["read", "enrol", "operate", "admin"].map(|scope| {
        let mut args = vec!["token", "create", scope, "--scope", scope];
        if matches!(scope, "operate" | "admin") {
            args.extend(["--operator", "alice"]);
        }
        let out = reg.ok(&args);
        let t = out.lines().next().unwrap().to_string();
        assert!(t.starts_with("wdn_") && !t.contains(' '), "{out}");
        (scope.to_string(), t)
    })
}

fn enrol_body(reg: &Registry, id: &str) -> Vec<u8> {
    let (_, k) = key(&reg.dir);
    serde_json::json!({"id": id, "key": k, "labels": {"site": "hamburg"}})
        .to_string()
        .into_bytes()
}

fn every_route_with_each_scope(kind: Kind) {
    let reg = Registry::new(kind);
    let tokens = fleet(&reg);
    let s = Server::start(&reg, None);
    let b = s.base.as_str();
    reads(&reg, &tokens, b);
    refused_writes(&reg, &tokens, b);
    allowed_writes(&reg, &tokens, b);
}

/// Every read route with each scope; a device as `--json show` prints it.
fn reads(reg: &Registry, tokens: &[(String, String)], b: &str) {
    assert_eq!(curl(b, "GET", "/healthz", None, None, &[]).0, 200);
    assert_eq!(
        curl(b, "GET", "/api/v1/openapi.json", None, None, &[]).0,
        200
    );
    let reads = [
        "/api/v1/devices",
        "/api/v1/devices/D1",
        "/api/v1/devices/02:00:00:00:00:01",
        "/api/v1/audit",
        "/api/v1/pools",
        "/api/v1/jails",
    ];
    for path in reads {
        let (code, body) = curl(b, "GET", path, None, None, &[]);
        assert_eq!(code, 401, "{path} without a token: {body}");
        error_line(&body);
        for (scope, t) in tokens {
            let (code, body) = curl(b, "GET", path, Some(t), None, &[]);
            assert_eq!(code, 200, "{path} as {scope}: {body}");
        }
    }
    // A device as `--json show` prints it; the list with its total.
    let shown = json(&reg.ok(&["--json", "show", "D1"]));
    let (_, one) = curl(
        b,
        "GET",
        "/api/v1/devices/D1",
        Some(&tokens[0].1),
        None,
        &[],
    );
    assert_eq!(json(&one), shown);
    let (_, list) = curl(
        b,
        "GET",
        "/api/v1/devices?label=site=berlin",
        Some(&tokens[0].1),
        None,
        &[],
    );
    assert_eq!(
        json(&list),
        serde_json::json!({"devices": [shown], "total": 1})
    );
    let (code, body) = curl(
        b,
        "GET",
        "/api/v1/devices/NOPE",
        Some(&tokens[0].1),
        None,
        &[],
    );
    assert_eq!(code, 404, "{body}");
    assert!(error_line(&body).contains("NOPE"), "{body}");
}

/// Writes a scope does not allow, or without a token: 403/401, nothing changed.
fn refused_writes(reg: &Registry, tokens: &[(String, String)], b: &str) {
    let before = reg.dump();
    for (scope, t) in &tokens[..4] {
        if !matches!(scope.as_str(), "enrol" | "admin") {
            let (code, body) = curl(
                b,
                "POST",
                "/api/v1/devices",
                Some(t),
                Some(&enrol_body(reg, "DX")),
                &[],
            );
            assert_eq!(code, 403, "enrol as {scope}: {body}");
            error_line(&body);
        }
        if !matches!(scope.as_str(), "operate" | "admin") {
            let (code, body) = curl(
                b,
                "POST",
                "/api/v1/grants",
                Some(t),
                Some(br#"{"device":"D1"}"#),
                &[],
            );
            assert_eq!(code, 403, "grant as {scope}: {body}");
        }
        if scope != "admin" {
            let (code, body) = curl(
                b,
                "POST",
                "/api/v1/devices/D1/revoke",
                Some(t),
                Some(br#"{"reason":"x"}"#),
                &[],
            );
            assert_eq!(code, 403, "revoke as {scope}: {body}");
        }
    }
    for path in [
        "/api/v1/devices",
        "/api/v1/grants",
        "/api/v1/devices/D1/revoke",
    ] {
        assert_eq!(
            curl(b, "POST", path, None, Some(b"{}"), &[]).0,
            401,
            "{path}"
        );
    }
    assert_eq!(before, reg.dump(), "a refused request changed the registry");
}

/// Writes a scope allows: 201/200, done, and audited as the token from the client.
fn allowed_writes(reg: &Registry, tokens: &[(String, String)], b: &str) {
    for (i, (scope, t)) in tokens
        .iter()
        .enumerate()
        .filter(|(_, (s, _))| s == "enrol" || s == "admin")
    {
        let id = format!("E{i}");
        let (code, body) = curl(
            b,
            "POST",
            "/api/v1/devices",
            Some(t),
            Some(&enrol_body(reg, &id)),
            &[],
        );
        assert_eq!(code, 201, "enrol as {scope}: {body}");
        let d = json(&body);
        assert_eq!(d["id"], id.as_str());
        assert!(
            d["port"]
                .as_u64()
                .is_some_and(|p| (10000..10100).contains(&p)),
            "{body}"
        );
        assert_eq!(d["labels"]["site"], "hamburg");
        assert!(reg.ok(&["ls"]).contains(&id));
    }
    for (scope, t) in tokens
        .iter()
        .filter(|(s, _)| s == "operate" || s == "admin")
    {
        let (code, body) = curl(
            b,
            "POST",
            "/api/v1/grants",
            Some(t),
            Some(br#"{"device":"D1","for":"1h","reason":"ticket 7"}"#),
            &[],
        );
        assert_eq!(code, 201, "grant as {scope}: {body}");
        let g = json(&body);
        assert!(
            g["grant"].as_i64().is_some() && g["expires"].as_str().is_some(),
            "{body}"
        );
        let ssh = g["ssh"].as_str().unwrap();
        assert!(
            ssh.starts_with("ssh ") && ssh.contains("-W localhost:") && ssh.ends_with(" D1"),
            "{ssh}"
        );
    }
    let (code, body) = curl(
        b,
        "POST",
        "/api/v1/devices/D1/revoke",
        Some(&tokens[3].1),
        Some(br#"{"reason":"stolen"}"#),
        &[],
    );
    assert_eq!(code, 200, "{body}");
    assert_eq!(json(&body)["revoked"], true);
    assert!(reg.ok(&["show", "D1"]).contains("revoked"));

    // Every write is audited as its token, from the client's address.
    let (_, audit) = curl(
        b,
        "GET",
        "/api/v1/audit?device=D1",
        Some(&tokens[0].1),
        None,
        &[],
    );
    let es = json(&audit)["entries"].as_array().unwrap().clone();
    let by = |action: &str| {
        es.iter()
            .filter(|e| e["action"] == action)
            .map(|e| {
                (
                    e["actor"].as_str().unwrap().to_string(),
                    e["origin"].as_str().unwrap().to_string(),
                )
            })
            .collect::<Vec<_>>()
    };
    let grants = by("grant");
    assert_eq!(grants.len(), 2, "{audit}");
    assert!(
        grants
            .iter()
            .all(|(a, o)| a.contains("token ") && o.contains("127.0.0.1")),
        "{grants:?}"
    );
    assert!(
        grants[0].0.contains("token operate") && grants[1].0.contains("token admin"),
        "{grants:?}"
    );
    assert!(by("revoke")[0].0.contains("token admin"), "{audit}");
    let (_, audit_e0) = curl(
        b,
        "GET",
        "/api/v1/audit?device=E1",
        Some(&tokens[0].1),
        None,
        &[],
    );
    assert!(audit_e0.contains("token enrol"), "{audit_e0}");
}

fn revoked_or_expired_tokens_are_refused(kind: Kind) {
    let reg = Registry::new(kind);
    reg.pool("p1", "10000-10099");
    let t = reg
        .ok(&["token", "create", "ci", "--scope", "read"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let short = reg
        .ok(&[
            "token",
            "create",
            "short",
            "--scope",
            "read",
            "--expires",
            "2s",
        ])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let s = Server::start(&reg, None);
    let b = s.base.as_str();
    assert_eq!(curl(b, "GET", "/api/v1/pools", Some(&t), None, &[]).0, 200);
    reg.ok(&["token", "revoke", "ci"]);
    let (code, body) = curl(b, "GET", "/api/v1/pools", Some(&t), None, &[]);
    assert_eq!(code, 401, "{body}");
    assert!(error_line(&body).contains("revoked"), "{body}");
    // An unknown token of the right shape, and a malformed one.
    let unknown = format!("wdn_{}", "0".repeat(64));
    for bad in [unknown.as_str(), "nonsense"] {
        let (code, body) = curl(b, "GET", "/api/v1/pools", Some(bad), None, &[]);
        assert_eq!(code, 401, "{body}");
    }
    let (code, body) = wait_until(Duration::from_secs(10), "the short token expires", || {
        let r = curl(b, "GET", "/api/v1/pools", Some(&short), None, &[]);
        (r.0 != 200).then_some(r)
    });
    assert_eq!(code, 401, "{body}");
    assert!(error_line(&body).contains("expired"), "{body}");
    // The secret is nowhere in the registry, the log or the listing.
    let listing = reg.ok(&["--json", "token", "ls"]);
    assert!(
        listing.contains("\"revoked\"") && !listing.contains(&t),
        "{listing}"
    );
    assert!(!reg.dump().contains(&t) && !s.log().contains(&t));
}

fn bad_input_is_refused_and_changes_nothing(kind: Kind) {
    let reg = Registry::new(kind);
    let tokens = fleet(&reg);
    let admin = tokens[3].1.as_str();
    let s = Server::start(&reg, None);
    let b = s.base.as_str();
    let before = reg.dump();
    let (_, k) = key(&reg.dir);
    let posts: Vec<(&str, String, &str)> = vec![
        (
            "/api/v1/devices",
            format!(r#"{{"id":"N1","key":"{k}","colour":"red"}}"#),
            "colour",
        ),
        (
            "/api/v1/devices",
            format!(r#"{{"id":5,"key":"{k}"}}"#),
            "invalid type",
        ),
        ("/api/v1/devices", r#"{"id":"N1"}"#.into(), "key"),
        (
            "/api/v1/devices",
            format!(r#"{{"id":"bad id","key":"{k}"}}"#),
            "device id",
        ),
        (
            "/api/v1/devices",
            format!(r#"{{"id":"N1","key":"{k}","mac":"zz"}}"#),
            "MAC",
        ),
        ("/api/v1/devices", "{not json".into(), "body"),
        (
            "/api/v1/grants",
            r#"{"device":"D1","for":"forever"}"#.into(),
            "for",
        ),
        (
            "/api/v1/grants",
            r#"{"device":"D1","operator":"mallory"}"#.into(),
            "operator",
        ),
        (
            "/api/v1/devices/D1/revoke",
            r#"{"reason":"x","force":true}"#.into(),
            "force",
        ),
    ];
    for (path, body, names) in &posts {
        let (code, answer) = curl(b, "POST", path, Some(admin), Some(body.as_bytes()), &[]);
        assert_eq!(code, 400, "{path} {body}: {answer}");
        let e = error_line(&answer);
        assert!(
            e.contains(names),
            "{path} {body}: {e} does not name {names}"
        );
    }
    bad_queries(admin, b);
    let big = format!(
        r#"{{"id":"N1","key":"{k}","target":"{}"}}"#,
        "a".repeat(70 * 1024)
    );
    let (code, answer) = curl(
        b,
        "POST",
        "/api/v1/devices",
        Some(admin),
        Some(big.as_bytes()),
        &[],
    );
    assert_eq!(code, 413, "{answer}");
    assert!(error_line(&answer).contains("body"), "{answer}");
    assert_eq!(before, reg.dump(), "a refused request changed the registry");
    paging_works(&reg, admin, b);
}

/// Bad paging, filters and parameters: 400 naming each.
fn bad_queries(admin: &str, b: &str) {
    for (q, names) in [
        ("per_page=0", "per_page"),
        ("per_page=100000", "per_page"),
        ("page=0", "page"),
        ("page=x", "page"),
        ("online=maybe", "online"),
        ("colour=red", "colour"),
        ("label=nokey", "label"),
    ] {
        let (code, answer) = curl(
            b,
            "GET",
            &format!("/api/v1/devices?{q}"),
            Some(admin),
            None,
            &[],
        );
        assert_eq!(code, 400, "{q}: {answer}");
        assert!(error_line(&answer).contains(names), "{q}: {answer}");
    }
    let (code, answer) = curl(
        b,
        "GET",
        "/api/v1/audit?since=yesterday-ish",
        Some(admin),
        None,
        &[],
    );
    assert_eq!(code, 400, "{answer}");
    assert!(error_line(&answer).contains("since"), "{answer}");
}

/// Pages of devices after the refusals.
fn paging_works(reg: &Registry, admin: &str, b: &str) {
    for i in 2..=5 {
        let (_, dk) = key(&reg.dir);
        reg.ok(&["enroll", &format!("D{i}"), "--key", &dk]);
    }
    let (code, page) = curl(
        b,
        "GET",
        "/api/v1/devices?per_page=2&page=2",
        Some(admin),
        None,
        &[],
    );
    assert_eq!(code, 200, "{page}");
    let p = json(&page);
    assert_eq!(p["total"], 5);
    let ids: Vec<&str> = p["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["D3", "D4"]);
}

/// Claim tokens over the API: the factory's enrol token creates one (the
/// token shown once, only in that answer), read tokens list them (never a
/// token), bad bodies are 400 naming the field with nothing created, a read
/// token may not create or revoke (403), and a revoked claim says so.
fn claims_over_the_api(kind: Kind) {
    let reg = Registry::new(kind);
    let tokens = fleet(&reg);
    let tok = |scope: &str| tokens.iter().find(|(s, _)| s == scope).unwrap().1.clone();
    let s = Server::start(&reg, None);
    let b = s.base.as_str();
    let body = serde_json::json!({"pool": "p1", "uses": 50, "expires": "8h",
        "labels": {"batch": "2026-12"}, "mac_prefix": "b8:27:eb", "target": "127.0.0.1:2222"})
    .to_string();
    let (code, out) = curl(
        b,
        "POST",
        "/api/v1/claims",
        Some(&tok("read")),
        Some(body.as_bytes()),
        &[],
    );
    assert_eq!(code, 403, "{out}");
    let (code, out) = curl(
        b,
        "POST",
        "/api/v1/claims",
        Some(&tok("enrol")),
        Some(body.as_bytes()),
        &[],
    );
    assert_eq!(code, 201, "{out}");
    let v = json(&out);
    let token = v["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("wdc_"), "{out}");
    let id = v["claim"]["id"].as_str().unwrap().to_string();
    assert_eq!(v["claim"]["uses_left"], 50);
    assert_eq!(v["claim"]["mac_prefix"], "b8:27:eb");
    assert_eq!(v["claim"]["target"], "127.0.0.1:2222");
    assert_eq!(v["claim"]["labels"]["batch"], "2026-12");
    let (code, out) = curl(b, "GET", "/api/v1/claims", Some(&tok("read")), None, &[]);
    assert_eq!(code, 200, "{out}");
    assert!(
        !out.contains(&token) && !out.contains("wdc_"),
        "a listing shows no token: {out}"
    );
    assert_eq!(json(&out)["claims"][0]["id"], id.as_str());
    let before = reg.ok(&["--json", "claim", "ls"]);
    for (bad, field) in [
        (r#"{"pool": "p1", "uses": 0}"#, "uses 0"),
        (r#"{"pool": "p1", "expires": "90d"}"#, "expires"),
        (r#"{"pool": "nope"}"#, "unknown pool nope"),
        (r#"{"pool": "p1", "mac_prefix": "zz"}"#, "zz"),
        (r#"{"pool": "p1", "target": "a b:1"}"#, "target"),
        (
            r#"{"pool": "p1", "colour": "red"}"#,
            "unknown field `colour`",
        ),
        (r#"{"pool": 7}"#, "pool"),
    ] {
        let (code, out) = curl(
            b,
            "POST",
            "/api/v1/claims",
            Some(&tok("enrol")),
            Some(bad.as_bytes()),
            &[],
        );
        assert_eq!(code, 400, "{bad}: {out}");
        let e = error_line(&out);
        assert!(e.contains(field), "{bad}: {e}");
    }
    assert_eq!(
        reg.ok(&["--json", "claim", "ls"]),
        before,
        "a refused request created nothing"
    );
    let path = format!("/api/v1/claims/{id}/revoke");
    assert_eq!(curl(b, "POST", &path, Some(&tok("read")), None, &[]).0, 403);
    let (code, out) = curl(b, "POST", &path, Some(&tok("enrol")), None, &[]);
    assert_eq!(code, 200, "{out}");
    assert!(json(&out)["revoked"].is_string(), "{out}");
    let (code, out) = curl(
        b,
        "POST",
        "/api/v1/claims/c-nope/revoke",
        Some(&tok("enrol")),
        None,
        &[],
    );
    assert_eq!(code, 404, "{out}");
    let audit = reg.ok(&["audit"]);
    assert!(
        audit.contains("claim-create") && audit.contains("token enrol"),
        "{audit}"
    );
}

both_backends!(
    claims_over_the_api,
    every_route_with_each_scope,
    revoked_or_expired_tokens_are_refused,
    bad_input_is_refused_and_changes_nothing,
);

fn openssl(args: &[&str], dir: &Path) {
    run_ok(Command::new("openssl").args(args).current_dir(dir));
}

/// CA `NAME.pem` and a `localhost` certificate it signed: `NAME-server.{crt,key}`.
fn ca_and_server(dir: &Path, name: &str) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let subj = format!("/CN=warden serve test {name}");
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                &key,
                "-out",
                &pem,
                "-days",
                "2",
                "-subj",
                &subj,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        ]
        .concat(),
        dir,
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let (skey, csr, crt) = (
        format!("{name}-server.key"),
        format!("{name}-server.csr"),
        format!("{name}-server.crt"),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &["-keyout", &skey, "-out", &csr, "-subj", "/CN=localhost"],
        ]
        .concat(),
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &pem,
            "-CAkey",
            &key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        dir,
    );
}

#[test]
fn tls_with_a_test_ca_reloaded_on_sighup() {
    let reg = Registry::new(Kind::Sqlite);
    reg.pool("p1", "10000-10099");
    let t = reg
        .ok(&["token", "create", "r", "--scope", "read"])
        .lines()
        .next()
        .unwrap()
        .to_string();
    let dir = reg.dir.path("tls");
    std::fs::create_dir(&dir).unwrap();
    ca_and_server(&dir, "ca1");
    ca_and_server(&dir, "ca2");
    let (cert, key) = (dir.join("live.crt"), dir.join("live.key"));
    std::fs::copy(dir.join("ca1-server.crt"), &cert).unwrap();
    std::fs::copy(dir.join("ca1-server.key"), &key).unwrap();
    let mut s = Server::start(&reg, Some((&cert, &key)));
    let b = s.base.clone();
    let ca1 = dir.join("ca1.pem").display().to_string();
    let ca2 = dir.join("ca2.pem").display().to_string();
    let (code, body) = curl(
        &b,
        "GET",
        "/api/v1/pools",
        Some(&t),
        None,
        &["--cacert", &ca1],
    );
    assert_eq!(code, 200, "{body}");
    // An untrusted CA: curl refuses the handshake (no status).
    assert_eq!(
        curl(&b, "GET", "/healthz", None, None, &["--cacert", &ca2]).0,
        0
    );
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = b.replace("https://localhost", "http://127.0.0.1");
    assert_ne!(curl(&plain, "GET", "/healthz", None, None, &[]).0, 200);
    // SIGHUP: the new certificate (of CA 2) is served from then on.
    std::fs::copy(dir.join("ca2-server.crt"), &cert).unwrap();
    std::fs::copy(dir.join("ca2-server.key"), &key).unwrap();
    run_ok(Command::new("kill").args(["-HUP", &s.child.id().to_string()]));
    wait_until(Duration::from_secs(10), "the reloaded certificate", || {
        (curl(&b, "GET", "/healthz", None, None, &["--cacert", &ca2]).0 == 200).then_some(())
    });
    assert_eq!(s.stop(), 0, "SIGTERM: {}", s.log());
}

#[test]
fn plain_http_off_loopback_is_refused_with_one_line() {
    let reg = Registry::new(Kind::Sqlite);
    for listen in ["0.0.0.0:18080", "192.0.2.1:8080"] {
        let (code, out, err) = reg.warden(&["serve", "--listen", listen]);
        assert_eq!(code, 2, "{out}{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("loopback") && err.contains(listen), "{err}");
    }
    let (code, _, err) = reg.warden(&["serve", "--listen", "localhost"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--listen"), "{err}");
}

#[test]
fn the_openapi_document_validates() {
    let reg = Registry::new(Kind::Sqlite);
    reg.pool("p1", "10000-10099");
    let mut s = Server::start(&reg, None);
    let (code, doc) = curl(&s.base, "GET", "/api/v1/openapi.json", None, None, &[]);
    assert_eq!(code, 200);
    let v = json(&doc);
    assert!(v["openapi"].as_str().unwrap().starts_with("3.1"), "{doc}");
    for path in [
        "/healthz",
        "/api/v1/devices",
        "/api/v1/devices/{id}",
        "/api/v1/devices/{id}/revoke",
        "/api/v1/grants",
        "/api/v1/audit",
        "/api/v1/pools",
        "/api/v1/jails",
    ] {
        assert!(v["paths"][path].is_object(), "{path} missing");
    }
    let file = reg.dir.path("openapi.json");
    std::fs::write(&file, &doc).unwrap();
    let have = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .status();
    if !have.is_ok_and(|s| s.success()) {
        eprintln!(
            "SKIPPED: python3 module openapi_spec_validator missing (scripts/test-setup.sh installs it)"
        );
        return;
    }
    let out = Command::new("python3")
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(s.stop(), 0, "SIGTERM: {}", s.log());
}
