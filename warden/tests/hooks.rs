//! Webhooks end to end on both backends: a real HTTP receiver (Python's
//! http.server, verifying every signature with the hook's secret) is down
//! while N devices go offline and come back, and `warden serve` is
//! restarted in the middle (the devices come back while it is stopped);
//! once the receiver is up, every event arrives, in order per device,
//! signed. The delay from receiver-up to the last delivery is printed.
//!
//! The devices' presence changes go through the store's presence path that
//! `warden watch` calls each tick (`store::record_presence` with the set of
//! ports held), not through N real tunnels.
//!
//! Sizes: HOOKS_DEVICES (default 200) and HOOKS_DOWN_SECS (default 10);
//! the full run is `HOOKS_DOWN_SECS=60 cargo test -p warden --test hooks -- --nocapture`.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warden::store::conn::{Conn, DbUrl, Mode};

both_backends!(every_event_arrives_in_order_signed_after_an_outage_and_a_restart);

const SECRET: &str = "s3cr3t-for-the-test-0123456789";

/// The receiver: answers 200 to a request whose signature verifies (and
/// records it), 401 to any other (recorded as BAD).
const RECEIVER: &str = r#"
import hashlib, hmac, json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, secret, out = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
log = open(out, "a", buffering=1)
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        ts = self.headers.get("X-Warden-Timestamp", "")
        sig = self.headers.get("X-Warden-Signature", "")
        want = "sha256=" + hmac.new(secret, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
        if not (fresh and hmac.compare_digest(sig, want)):
            log.write("BAD %s\n" % self.headers.get("X-Warden-Delivery"))
            self.send_response(401); self.end_headers(); return
        e = json.loads(body)
        assert str(e["id"]) == self.headers["X-Warden-Delivery"]
        assert e["event"] == self.headers["X-Warden-Event"]
        log.write("%s %d %s %.3f\n" % (e["device"], e["id"], e["event"], time.time()))
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
class S(ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops SYNs from 16 deliveries at once
S(("127.0.0.1", port), H).serve_forever()
"#;

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn serve(reg: &Registry, port: u16, n: usize) -> Proc {
    let listen = format!("127.0.0.1:{port}");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(reg.dir.path("serve.log"))
        .unwrap();
    let mut p = Proc(
        reg.warden_cmd(&["serve", "--listen", &listen])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    wait_until(
        Duration::from_secs(20),
        &format!("serve {n} answers"),
        || {
            if let Ok(Some(st)) = p.0.try_wait() {
                panic!("serve exited {st}");
            }
            port_answers(port).then_some(())
        },
    );
    p
}

/// The receiver's records: (device -> [(delivery id, event)]), bad count, last time.
type Received = (BTreeMap<String, Vec<(i64, String)>>, usize, f64, f64);

fn received(path: &std::path::Path) -> Received {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut by, mut bad, mut last) = (BTreeMap::<String, Vec<(i64, String)>>::new(), 0, 0.0);
    let mut first = f64::MAX;
    for l in text.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f[0] == "BAD" {
            bad += 1;
            continue;
        }
        by.entry(f[0].to_string())
            .or_default()
            .push((f[1].parse().unwrap(), f[2].to_string()));
        last = f64::max(last, f[3].parse().unwrap());
        first = f64::min(first, f[3].parse().unwrap());
    }
    (by, bad, last, first)
}

fn presence(db: &DbUrl, held: &BTreeSet<u16>) -> (usize, usize) {
    let mut c = Conn::open(db, Mode::Admin).unwrap();
    let j = warden::store::jail(&mut c, &warden::types::Name::parse("j", "j1").unwrap()).unwrap();
    let t = warden::store::record_presence(&mut c, &j, held).unwrap();
    (t.came_online.len(), t.went_offline.len())
}

fn every_event_arrives_in_order_signed_after_an_outage_and_a_restart(kind: Kind) {
    let n = env_num("HOOKS_DEVICES", 200) as usize;
    let down = Duration::from_secs(env_num("HOOKS_DOWN_SECS", 10));
    let reg = Registry::new(kind);
    reg.pool("p1", "10000-10999");
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
    let mut csv = String::from("id,mac,key\n");
    for i in 0..n {
        csv.push_str(&format!("h{i},,{}\n", key(&reg.dir).1));
    }
    let csv_path = reg.dir.path("devices.csv");
    std::fs::write(&csv_path, csv).unwrap();
    reg.ok(&["import", &csv_path.display().to_string()]);
    let db = DbUrl::parse(&reg.url).unwrap();
    let ports: BTreeSet<u16> = (0..n)
        .map(|i| {
            let v: serde_json::Value =
                serde_json::from_str(&reg.ok(&["show", &format!("h{i}"), "--json"])).unwrap();
            v["port"].as_u64().unwrap() as u16
        })
        .collect();
    // All online before the hook exists: no events for that.
    assert_eq!(presence(&db, &ports), (n, 0));

    let rport = free_port();
    let secret_file = reg.dir.path("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let url = format!("http://127.0.0.1:{rport}/hook");
    let out = reg.ok(&[
        "hook",
        "add",
        &url,
        "--events",
        "device.online,device.offline",
        "--secret-file",
        &secret_file.display().to_string(),
    ]);
    assert!(!out.contains(SECRET));
    assert!(!reg.ok(&["hook", "ls", "--json"]).contains(SECRET));

    let sport = free_port();
    let mut srv = serve(&reg, sport, 1);
    let t0 = Instant::now();
    // The receiver is down: every device goes offline...
    assert_eq!(presence(&db, &BTreeSet::new()), (0, n));
    std::thread::sleep(down / 2); // the outage itself, not a wait for readiness
    // ...serve stops, the devices come back meanwhile, serve starts again.
    run_ok(Command::new("kill").arg(srv.0.id().to_string()));
    let _ = srv.0.wait();
    drop(srv);
    assert_eq!(presence(&db, &ports), (n, 0));
    let _srv = serve(&reg, sport, 2);
    std::thread::sleep(down.saturating_sub(t0.elapsed()));
    let hooks: serde_json::Value =
        serde_json::from_str(&reg.ok(&["hook", "ls", "--json"])).unwrap();
    assert_eq!(hooks[0]["pending"].as_i64(), Some(2 * n as i64), "{hooks}");

    let log = reg.dir.path("received.log");
    let script = reg.dir.path("receiver.py");
    std::fs::write(&script, RECEIVER).unwrap();
    let up = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let _rx = Proc(
        Command::new("python3")
            .arg(&script)
            .args([&rport.to_string(), SECRET, &log.display().to_string()])
            .spawn()
            .unwrap(),
    );
    let (by, bad, last, first) =
        wait_until(Duration::from_secs(120), "every event delivered", || {
            let r = received(&log);
            assert_eq!(r.1, 0, "a signature did not verify");
            (r.0.len() == n && r.0.values().all(|v| v.len() >= 2)).then_some(r)
        });
    assert_eq!(bad, 0);
    for (dev, evs) in &by {
        // At least once: a repeat is of the latest event only; in order.
        let mut ids: Vec<i64> = evs.iter().map(|(i, _)| *i).collect();
        assert!(
            ids.windows(2).all(|w| w[0] <= w[1]),
            "{dev}: out of order {evs:?}"
        );
        ids.dedup();
        let names: Vec<&str> = {
            let mut seen = BTreeSet::new();
            evs.iter()
                .filter(|(i, _)| seen.insert(*i))
                .map(|(_, e)| e.as_str())
                .collect()
        };
        assert_eq!(names, ["device.offline", "device.online"], "{dev}");
    }
    let hooks: serde_json::Value =
        serde_json::from_str(&reg.ok(&["hook", "ls", "--json"])).unwrap();
    wait_until(Duration::from_secs(10), "outbox drained", || {
        let h: serde_json::Value =
            serde_json::from_str(&reg.ok(&["hook", "ls", "--json"])).unwrap();
        (h[0]["pending"].as_i64() == Some(0)).then_some(())
    });
    let _ = hooks;
    println!(
        "{kind:?}: {n} devices, receiver down {:?}: {} events delivered, the first {:.2} s and the last {:.2} s after the receiver came up",
        down,
        2 * n,
        first - up,
        last - up
    );
}
