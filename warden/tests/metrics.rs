//! `/metrics` against the real processes on both backends: `warden serve`
//! scraped over HTTP before and after known actions (enrolments and a
//! revocation through the API, a 404, refusals), and `warden watch
//! --metrics-listen` scraped after real `warden authorized-keys` processes
//! (the command sshd runs) reported a refused and an allowed lookup.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

both_backends!(serve_counts_what_it_answers, watch_counts_lookups_and_ticks);

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_waiting(reg: &Registry, args: &[&str], port: u16, log: &std::path::Path) -> Proc {
    let child = reg
        .warden_cmd(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let mut p = Proc(child);
    wait_until(Duration::from_secs(20), "the listener answers", || {
        if let Ok(Some(st)) = p.0.try_wait() {
            panic!(
                "warden {args:?} exited {st}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        port_answers(port).then_some(())
    });
    p
}

/// (status, body) through curl.
fn curl(url: &str, method: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
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
    c.arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(b) = body {
        child.stdin.take().unwrap().write_all(b.as_bytes()).unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (b, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), b.to_string())
}

/// A scrape: every sample line as "name{labels}" -> value.
fn scrape(url: &str) -> BTreeMap<String, f64> {
    let (code, body) = curl(url, "GET", None, None);
    assert_eq!(code, 200, "{body}");
    assert!(body.trim_end().ends_with("# EOF"), "{body}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn get(m: &BTreeMap<String, f64>, k: &str) -> f64 {
    m.get(k).copied().unwrap_or(0.0)
}

fn serve_counts_what_it_answers(kind: Kind) {
    let reg = Registry::new(kind);
    reg.pool("p1", "10000-10099");
    let (_, hk) = key(&reg.dir);
    reg.ok(&[
        "jail",
        "add",
        "j1",
        "--address",
        "127.0.0.1:2222",
        "--host-key",
        &hk,
        "--pool",
        "p1",
    ]);
    let admin = reg.ok(&["token", "create", "a", "--scope", "admin"]);
    let admin = admin.lines().next().unwrap().trim().to_string();
    let read = reg.ok(&["token", "create", "r", "--scope", "read"]);
    let read = read.lines().next().unwrap().trim().to_string();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let _serve = spawn_waiting(
        &reg,
        &["serve", "--listen", &listen],
        port,
        &reg.dir.path("serve.log"),
    );
    let base = format!("http://{listen}");
    let metrics = format!("{base}/metrics");
    let before = scrape(&metrics);

    for i in 0..3 {
        let (_, k) = key(&reg.dir);
        let body = serde_json::json!({"id": format!("m{i}"), "key": k, "pool": "p1"}).to_string();
        let (code, out) = curl(
            &format!("{base}/api/v1/devices"),
            "POST",
            Some(&admin),
            Some(&body),
        );
        assert_eq!(code, 201, "{out}");
    }
    let (code, out) = curl(
        &format!("{base}/api/v1/devices/m0/revoke"),
        "POST",
        Some(&admin),
        Some(r#"{"reason":"test"}"#),
    );
    assert_eq!(code, 200, "{out}");
    let (code, _) = curl(
        &format!("{base}/api/v1/devices/m1"),
        "GET",
        Some(&read),
        None,
    );
    assert_eq!(code, 200);
    assert_eq!(
        curl(&format!("{base}/no/such/route"), "GET", None, None).0,
        404
    );
    assert_eq!(
        curl(&format!("{base}/api/v1/devices"), "GET", None, None).0,
        401
    );
    let (code, _) = curl(
        &format!("{base}/api/v1/devices/m1/revoke"),
        "POST",
        Some(&read),
        Some(r#"{"reason":"x"}"#),
    );
    assert_eq!(code, 403);
    reg.ok(&["token", "revoke", "r"]);
    assert_eq!(
        curl(&format!("{base}/api/v1/devices"), "GET", Some(&read), None).0,
        401
    );

    let after = scrape(&metrics);
    let moved = |k: &str| get(&after, k) - get(&before, k);
    assert_eq!(moved("warden_enrolments_total"), 3.0, "{after:#?}");
    assert_eq!(moved("warden_revocations_total"), 1.0);
    assert_eq!(get(&after, "warden_devices_enrolled{pool=\"p1\"}"), 2.0);
    assert_eq!(get(&after, "warden_devices_revoked{pool=\"p1\"}"), 1.0);
    assert_eq!(
        get(&after, "warden_devices_online{pool=\"p1\",jail=\"j1\"}"),
        0.0
    );
    assert_eq!(
        moved(
            "warden_api_requests_total{method=\"POST\",route=\"/api/v1/devices\",status=\"201\"}"
        ),
        3.0
    );
    // The route template, not the path: no device id in a label.
    assert_eq!(
        moved(
            "warden_api_requests_total{method=\"GET\",route=\"/api/v1/devices/{id}\",status=\"200\"}"
        ),
        1.0
    );
    assert!(
        !after.keys().any(|k| k.contains("m1")),
        "a device id in a label"
    );
    assert_eq!(
        moved("warden_api_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"}"),
        1.0
    );
    assert_eq!(moved("warden_api_refusals_total{reason=\"token\"}"), 1.0);
    assert_eq!(moved("warden_api_refusals_total{reason=\"scope\"}"), 1.0);
    assert_eq!(
        moved("warden_api_refusals_total{reason=\"token_expired_or_revoked\"}"),
        1.0
    );
    assert_eq!(
        moved(
            "warden_api_request_duration_seconds_count{method=\"POST\",route=\"/api/v1/devices\"}"
        ),
        3.0
    );
    // The CLI's enrolments count too (the registry's audit trail is the source).
    let (_, k) = key(&reg.dir);
    reg.ok(&["enroll", "cli1", "--key", &k, "--pool", "p1"]);
    let later = scrape(&metrics);
    assert_eq!(
        get(&later, "warden_enrolments_total") - get(&after, "warden_enrolments_total"),
        1.0
    );
}

fn watch_counts_lookups_and_ticks(kind: Kind) {
    let reg = Registry::new(kind);
    reg.pool("p1", "10000-10099");
    let (_, hk) = key(&reg.dir);
    let user = tunnel_user();
    reg.ok(&[
        "jail",
        "add",
        "j1",
        "--address",
        "127.0.0.1:2222",
        "--host-key",
        &hk,
        "--pool",
        "p1",
        "--user",
        &user,
    ]);
    let (_, k) = key(&reg.dir);
    reg.ok(&["enroll", "d1", "--key", &k, "--pool", "p1"]);
    let show: serde_json::Value = serde_json::from_str(&reg.ok(&["show", "d1", "--json"])).unwrap();
    let fp = show["fingerprint"].as_str().unwrap().to_string();

    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let sock = reg.dir.path("metrics.sock");
    let sock_s = sock.display().to_string();
    // A lookup while nobody listens is dropped, and the login is still answered.
    let (code, line, _) = reg.warden(&[
        "authorized-keys",
        "--jail",
        "j1",
        "--metrics-socket",
        &sock_s,
        &user,
        &fp,
    ]);
    assert_eq!(code, 0);
    assert!(line.contains("warden:d1"), "{line}");
    let _watch = spawn_waiting(
        &reg,
        &[
            "watch",
            "--jail",
            "j1",
            "--interval",
            "1",
            "--metrics-listen",
            &listen,
            "--metrics-socket",
            &sock_s,
        ],
        port,
        &reg.dir.path("watch.log"),
    );
    let metrics = format!("http://{listen}/metrics");
    let ok_ticks = "warden_watch_ticks_total{result=\"ok\"}";
    wait_until(Duration::from_secs(20), "a watch tick", || {
        (get(&scrape(&metrics), ok_ticks) >= 1.0).then_some(())
    });
    let before = scrape(&metrics);

    let unknown = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (code, line, _) = reg.warden(&[
        "authorized-keys",
        "--jail",
        "j1",
        "--metrics-socket",
        &sock_s,
        &user,
        unknown,
    ]);
    assert_eq!((code, line.as_str()), (0, ""));
    let (code, line, _) = reg.warden(&[
        "authorized-keys",
        "--jail",
        "j1",
        "--metrics-socket",
        &sock_s,
        &user,
        &fp,
    ]);
    assert_eq!(code, 0);
    assert!(line.contains("warden:d1"), "{line}");
    // A forged report is counted as rejected, nothing else.
    std::os::unix::net::UnixDatagram::unbound()
        .unwrap()
        .send_to(b"L1 refused made_up 1", &sock)
        .unwrap();

    let refused = "warden_login_refusals_total{reason=\"not_enrolled\"}";
    let after = wait_until(Duration::from_secs(10), "the reports counted", || {
        let m = scrape(&metrics);
        (get(&m, "warden_metrics_reports_rejected_total") >= 1.0
            && get(&m, "warden_authorized_keys_duration_seconds_count") >= 2.0)
            .then_some(m)
    });
    let moved = |k: &str| get(&after, k) - get(&before, k);
    assert_eq!(moved(refused), 1.0, "{after:#?}");
    assert_eq!(
        moved("warden_authorized_keys_lookups_total{result=\"refused\"}"),
        1.0
    );
    assert_eq!(
        moved("warden_authorized_keys_lookups_total{result=\"allowed\"}"),
        1.0
    );
    assert_eq!(moved("warden_authorized_keys_duration_seconds_count"), 2.0);
    assert_eq!(moved("warden_metrics_reports_rejected_total"), 1.0);
    assert!(!after.keys().any(|k| k.contains("made_up")));
    assert!(get(&after, ok_ticks) > get(&before, ok_ticks) || get(&after, ok_ticks) >= 1.0);
}
