//! Zero-touch enrolment, end to end, on both backends: a real jail sshd with
//! warden's drop-in, a real OpenSSH client as the device (`ssh -i KEY
//! jbclaim@jail` with the request on stdin), `warden claim-serve` as the
//! forced command; refusals leave devices and claims untouched; the forced
//! command cannot be steered; 1,000 concurrent claims on one token.

mod common;
use common::*;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The SQLite registry writable by the claim account (group warden), as
/// board/jail-host/setup.sh leaves /var/lib/warden.
fn claimable(reg: &Registry) {
    if reg.kind == Kind::Sqlite {
        let dir = reg.sqlite_path().parent().unwrap().to_path_buf();
        run_ok(Command::new("chmod").arg("0770").arg(&dir));
        run_ok(Command::new("chmod").arg("0660").arg(reg.sqlite_path()));
    }
}

fn create_claim(reg: &Registry, args: &[&str]) -> (String, String) {
    let mut all = vec!["claim", "create"];
    all.extend_from_slice(args);
    let out = reg.ok(&all);
    let mut l = out.lines();
    let token = l.next().unwrap().to_string();
    let id = l.next().unwrap().to_string();
    assert!(token.starts_with("wdc_") && token.len() == 68, "{out}");
    assert!(id.starts_with("c-"), "{out}");
    assert_eq!(l.next(), None, "stdout is two lines: {out}");
    (token, id)
}

fn request(token: &str, mac: &str, extra: &str) -> String {
    format!("jailbird-claim 1\ntoken {token}\nmac {mac}\n{extra}")
}

/// `ssh -i key jbclaim@jail jailbird-claim 1` with `input` on stdin.
fn claim_over_ssh(jail: &Jail, key: &Path, input: &[u8], extra: &[&str]) -> (i32, String, String) {
    let mut args: Vec<&str> = extra.to_vec();
    if !args.contains(&"--") {
        args.extend(["--", "jailbird-claim", "1"]);
    }
    let mut child = jail
        .ssh_cmd(key, CLAIM_USER, &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input);
    drop(stdin);
    // A client the jail should have turned away but did not (a forward that
    // was admitted) would wait forever: that is a failure, not a hang.
    let deadline = Instant::now() + SSH_DEADLINE;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let (_, out, err) = split(child.wait_with_output().unwrap());
            panic!("ssh {extra:?} still running after {SSH_DEADLINE:?}: admitted? {out} {err}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    split(child.wait_with_output().unwrap())
}

/// How long one claim over ssh may take.
const SSH_DEADLINE: Duration = Duration::from_secs(40);

/// The rows of the tables a refused claim must not change.
fn registry_rows(reg: &Registry) -> Vec<String> {
    let mut rows: Vec<String> = reg
        .dump()
        .lines()
        .filter(|l| {
            ["devices", "claims", "claim_uses", "device_host_keys"]
                .iter()
                .any(|t| {
                    l.starts_with(&format!("INSERT INTO {t} "))
                        || l.starts_with(&format!("INSERT INTO public.{t} "))
                        || l.starts_with(&format!("INSERT INTO \"{t}\""))
                })
        })
        .map(str::to_string)
        .collect();
    rows.sort();
    rows
}

fn audit(reg: &Registry) -> Vec<serde_json::Value> {
    serde_json::from_str(&reg.ok(&["--json", "audit"])).unwrap()
}

fn claim_json(reg: &Registry, id: &str) -> serde_json::Value {
    let all: Vec<serde_json::Value> =
        serde_json::from_str(&reg.ok(&["--json", "claim", "ls"])).unwrap();
    all.into_iter()
        .find(|c| c["id"] == id)
        .expect("claim listed")
}

/// An answer's `key value` lines.
fn answer_lines(out: &str) -> Vec<(String, String)> {
    out.lines()
        .skip(1)
        .map(|l| {
            let (k, v) = l.split_once(' ').unwrap_or((l, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn field<'a>(a: &'a [(String, String)], k: &str) -> &'a str {
    &a.iter()
        .find(|(x, _)| x == k)
        .unwrap_or_else(|| panic!("no {k} in {a:?}"))
        .1
}

fn setup(kind: Kind) -> (Registry, Jail) {
    let reg = Registry::new(kind);
    reg.pool("p1", "20000-20099");
    reg.pool("p2", "20100-20199");
    let jail = Jail::start(&reg, "j1", "p1");
    claimable(&reg);
    (reg, jail)
}

fn accepted_claim_enrols_and_the_tunnel_logs_in(kind: Kind) {
    let (reg, jail) = setup(kind);
    let (token, id) = create_claim(
        &reg,
        &["--pool", "p1", "--uses", "2", "--label", "site=berlin"],
    );
    let dir = TempDir::new("claimdev");
    let (dkey, dpub) = key(&dir);
    let (_, host_pub) = keygen(&dir, "device_host_key");
    let host_line: String = host_pub.split(' ').take(2).collect::<Vec<_>>().join(" ");
    let req = request(
        &token,
        "B8:27:EB:12:34:56",
        &format!("host-key {host_pub}\n"),
    );

    let (code, out, err) = claim_over_ssh(&jail, &dkey, req.as_bytes(), &[]);
    assert_eq!(code, 0, "claim failed: {out} {err}\n{}", jail.log());
    let a = answer_lines(&out);
    assert!(out.starts_with("jailbird-claim 1\nok\n"), "{out}");
    assert_eq!(field(&a, "device"), "b827eb123456");
    assert_eq!(field(&a, "user"), tunnel_user());
    assert_eq!(field(&a, "target"), "127.0.0.1:22");
    let port: u16 = field(&a, "port").parse().unwrap();
    assert!((20000..=20099).contains(&port));
    let jail_line = format!(
        "127.0.0.1 {} {}",
        jail.port,
        jail.host_key_line
            .split(' ')
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    );
    assert_eq!(field(&a, "jail"), jail_line);

    // Enrolled as the answer says, with MAC, labels, key and host key.
    let d: serde_json::Value =
        serde_json::from_str(&reg.ok(&["--json", "show", "b827eb123456"])).unwrap();
    assert_eq!(d["mac"], "b8:27:eb:12:34:56");
    assert_eq!(d["port"], port);
    assert_eq!(d["pool"], "p1");
    assert_eq!(d["labels"]["site"], "berlin");
    let dkey_line: String = dpub.split(' ').take(2).collect::<Vec<_>>().join(" ");
    assert!(
        reg.dump().contains(host_line.split(' ').nth(1).unwrap()),
        "host key recorded"
    );
    assert!(reg.dump().contains(dkey_line.split(' ').nth(1).unwrap()));
    assert_eq!(claim_json(&reg, &id)["uses_left"], 1);
    let log = audit(&reg);
    let claim_row = log
        .iter()
        .rev()
        .find(|e| e["action"] == "claim")
        .expect("claim audited");
    assert_eq!(claim_row["device"], "b827eb123456");
    let detail = claim_row["detail"].as_str().unwrap();
    assert!(
        detail.contains(&id) && detail.contains("source 127.0.0.1"),
        "{detail}"
    );
    assert!(
        !serde_json::to_string(&log).unwrap().contains(&token),
        "token in the audit trail"
    );

    // A retry by the same key: the same answer, no use spent.
    let (code2, out2, _) = claim_over_ssh(&jail, &dkey, req.as_bytes(), &[]);
    assert_eq!((code2, &out2), (0, &out));
    assert_eq!(claim_json(&reg, &id)["uses_left"], 1);

    // The same key now holds its own port as the tunnel account.
    let mut tunnel = jail
        .ssh_cmd(
            &dkey,
            &tunnel_user(),
            &[
                "-N",
                "-o",
                "ExitOnForwardFailure=yes",
                "-R",
                &format!("{port}:127.0.0.1:22"),
            ],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until(READY, "the claimed device's forward", || {
        port_answers(port).then_some(())
    });
    let _ = tunnel.kill();
    let _ = tunnel.wait();
}

fn refused_claims_change_nothing(kind: Kind) {
    let (reg, jail) = setup(kind);
    let dir = TempDir::new("claimref");
    let (k1, _) = key(&dir);
    let (k2, _) = key(&dir);
    let (once, once_id) = create_claim(&reg, &["--pool", "p1"]);
    let (revoked, revoked_id) = create_claim(&reg, &["--pool", "p1"]);
    reg.ok(&["claim", "revoke", &revoked_id]);
    let (other_pool, _) = create_claim(&reg, &["--pool", "p2"]);
    let (prefixed, _) = create_claim(&reg, &["--pool", "p1", "--mac-prefix", "00:11:22"]);
    let (expiring, expiring_id) = create_claim(&reg, &["--pool", "p1", "--expires", "1s"]);

    // The one use of `once`, spent by k1.
    let mac1 = "02:00:00:00:00:01";
    let (code, out, _) = claim_over_ssh(&jail, &k1, request(&once, mac1, "").as_bytes(), &[]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(claim_json(&reg, &once_id)["uses_left"], 0);
    wait_until(READY, "the 1s claim to expire", || {
        reg.ok(&["claim", "ls"])
            .lines()
            .any(|l| l.starts_with(&expiring_id) && l.ends_with("expired"))
            .then_some(())
    });

    let mac = "02:00:00:00:00:02";
    let oversized = {
        let mut r = request(&once, mac, "");
        r.push_str(&"id x\n".repeat(1000));
        r
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "unknown",
            request(&format!("wdc_{}", "0".repeat(64)), mac, ""),
        ),
        ("used-up", request(&once, mac, "")),
        ("expired", request(&expiring, mac, "")),
        ("revoked", request(&revoked, mac, "")),
        ("wrong-pool", request(&other_pool, mac, "")),
        ("mac-prefix", request(&prefixed, mac, "")),
        ("malformed", "hello\n".into()),
        ("malformed", oversized),
    ];
    assert!(cases[7].1.len() > 4096);
    for (why, input) in cases {
        let before = registry_rows(&reg);
        let n_audit = audit(&reg).len();
        let (code, out, err) = claim_over_ssh(&jail, &k2, input.as_bytes(), &[]);
        assert_eq!(
            out,
            format!("jailbird-claim 1\nrefused {why}\n"),
            "case {why}: {err}\n{}",
            jail.log()
        );
        assert_eq!(code, 1, "case {why}");
        assert_eq!(
            registry_rows(&reg),
            before,
            "case {why} changed the registry"
        );
        let log = audit(&reg);
        assert_eq!(log.len(), n_audit + 1, "case {why}: one audit row");
        let last = log.last().unwrap();
        assert_eq!(last["action"], "claim-refused");
        assert_eq!(last["reason"], why);
        assert!(
            last["detail"]
                .as_str()
                .unwrap()
                .contains("source 127.0.0.1")
        );
    }
    // A conflict: k1's key is device 020000000001's; the same key under
    // another MAC (so another id) is refused and changes nothing.
    let (fresh, _) = create_claim(&reg, &["--pool", "p1"]);
    let before = registry_rows(&reg);
    let (code, out, _) = claim_over_ssh(&jail, &k1, request(&fresh, mac, "").as_bytes(), &[]);
    assert_eq!(
        (code, out.as_str()),
        (1, "jailbird-claim 1\nrefused conflict\n")
    );
    assert_eq!(registry_rows(&reg), before);
    assert!(
        !serde_json::to_string(&audit(&reg))
            .unwrap()
            .contains("wdc_")
    );
}

fn the_forced_command_cannot_be_steered(kind: Kind) {
    let (reg, mut jail) = setup(kind);
    let dir = TempDir::new("claimsteer");
    let (k, _) = key(&dir);
    let before = registry_rows(&reg);
    let malformed = "jailbird-claim 1\nrefused malformed\n";
    // A shell with a pty: no pty, and no shell either.
    let (_, out, err) = claim_over_ssh(&jail, &k, b"id\necho pwned\n", &["-tt", "--", "/bin/sh"]);
    assert!(err.contains("PTY allocation request failed"), "-tt: {err}");
    let out = out.replace('\r', "");
    assert!(out.is_empty() || out == malformed, "-tt: {out:?}");
    // A command of its own: claim-serve runs instead and reads the input as
    // a request.
    let (_, out, err) = claim_over_ssh(
        &jail,
        &k,
        b"id\necho pwned\n",
        &["--", "/bin/sh", "-c", "id"],
    );
    assert_eq!(out, malformed, "command: {err}");
    // The sftp subsystem (configured, as on a stock Debian sshd): still
    // claim-serve.
    let dropin = jail.dir.path("warden.conf");
    let text = std::fs::read_to_string(&dropin).unwrap();
    std::fs::write(
        &dropin,
        format!("Subsystem sftp /usr/lib/openssh/sftp-server\n{text}"),
    )
    .unwrap();
    jail.kill();
    jail.spawn();
    let (_, out, err) = claim_over_ssh(&jail, &k, b"", &["-s", "--", "sftp"]);
    assert_eq!(out, malformed, "sftp: {err}");
    // Forwards of every kind.
    let (code, _, err) = claim_over_ssh(
        &jail,
        &k,
        b"",
        &[
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-R",
            "0:127.0.0.1:22",
            "--",
        ],
    );
    assert_eq!(code, 255, "-R: {err}");
    assert!(err.contains("remote port forwarding failed"), "-R: {err}");
    let (code, _, err) = claim_over_ssh(
        &jail,
        &k,
        b"",
        &["-W", &format!("127.0.0.1:{}", jail.port), "--"],
    );
    assert_ne!(code, 0, "-W");
    assert!(
        [
            "administratively prohibited",
            "open failed",
            "stdio forwarding failed"
        ]
        .iter()
        .any(|m| err.contains(m)),
        "-W: {err}"
    );
    // -L and -D through a real listener, aimed at the jail's own sshd (which
    // greets any connection with its banner): the channel is refused.
    let target = format!("127.0.0.1:{}", jail.port);
    for (flag, spec) in [("-L", target.as_str()), ("-D", "")] {
        let lport = free_port();
        let arg = if spec.is_empty() {
            format!("127.0.0.1:{lport}")
        } else {
            format!("127.0.0.1:{lport}:{spec}")
        };
        let mut fwd = jail
            .ssh_cmd(&k, CLAIM_USER, &["-N", flag, &arg])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until(READY, "the client's local listener", || {
            port_answers(lport).then_some(())
        });
        let mut s = std::net::TcpStream::connect(("127.0.0.1", lport)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        if flag == "-D" {
            // SOCKS5: no auth, then CONNECT 127.0.0.1:JAILPORT.
            s.write_all(&[5, 1, 0]).unwrap();
            let mut hello = [0u8; 2];
            use std::io::Read;
            s.read_exact(&mut hello).unwrap();
            let [hi, lo] = jail.port.to_be_bytes();
            s.write_all(&[5, 1, 0, 1, 127, 0, 0, 1, hi, lo]).unwrap();
        }
        let mut got = Vec::new();
        use std::io::Read;
        let _ = s.read_to_end(&mut got);
        assert!(
            !String::from_utf8_lossy(&got).contains("SSH-2.0"),
            "{flag} reached an sshd: {got:?}"
        );
        let _ = fwd.kill();
        let _ = fwd.wait();
    }
    assert_eq!(registry_rows(&reg), before);
}

/// Runs `warden claim-serve` directly, as sshd would: the key file in
/// SSH_USER_AUTH, the source in SSH_CONNECTION, the request on stdin.
fn serve_direct(
    reg: &Registry,
    dir: &TempDir,
    n: usize,
    key_line: &str,
    source: &str,
    input: &[u8],
) -> (i32, String) {
    let auth = dir.path(&format!("auth{n}"));
    std::fs::write(&auth, format!("publickey {key_line}\n")).unwrap();
    let mut child = reg
        .warden_cmd(&["claim-serve", "--jail", "j1"])
        .env("SSH_USER_AUTH", &auth)
        .env("SSH_CONNECTION", format!("{source} 50000 127.0.0.1 22"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input).unwrap();
    drop(stdin);
    let (code, out, _) = split(child.wait_with_output().unwrap());
    (code, out)
}

/// An ed25519 public key line for `n`: any 32 bytes make a key line warden
/// (and sshd's parser) accept; no ssh-keygen per device.
fn key_line(n: usize) -> String {
    let mut blob = Vec::new();
    blob.extend_from_slice(&11u32.to_be_bytes());
    blob.extend_from_slice(b"ssh-ed25519");
    blob.extend_from_slice(&32u32.to_be_bytes());
    let mut k = [0u8; 32];
    k[..8].copy_from_slice(&(n as u64).to_be_bytes());
    k[8..16].copy_from_slice(&(std::process::id() as u64).to_be_bytes());
    k[31] = 0x5a;
    blob.extend_from_slice(&k);
    format!("ssh-ed25519 {}", b64(&blob))
}

fn b64(b: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in b.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Claims served at once, from this many threads.
const PARALLEL: usize = 32;
/// Devices in the concurrency test.
const DEVICES: usize = 1000;

fn a_thousand_concurrent_claims_on_one_token(kind: Kind) {
    let reg = Registry::new(kind);
    reg.pool("p1", "20000-21999");
    // The jail's row only: claim-serve is run directly here.
    let dir = TempDir::new("claimmany");
    let (_, host) = keygen(&dir, "host");
    reg.ok(&[
        "jail",
        "add",
        "j1",
        "--address",
        "127.0.0.1:2222",
        "--host-key",
        &host,
        "--pool",
        "p1",
        "--user",
        &tunnel_user(),
        "--operator-user",
        OPERATOR_USER,
        "--claim-user",
        CLAIM_USER,
    ]);
    let uses = DEVICES.to_string();
    let (token, id) = create_claim(&reg, &["--pool", "p1", "--uses", &uses]);
    let reg = Arc::new(reg);
    let dir = Arc::new(dir);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let threads: Vec<_> = (0..PARALLEL)
        .map(|_| {
            let (reg, dir, next, token) = (reg.clone(), dir.clone(), next.clone(), token.clone());
            std::thread::spawn(move || {
                let mut ports = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= DEVICES {
                        return ports;
                    }
                    let mac = format!("02:00:00:00:{:02x}:{:02x}", n >> 8, n & 0xff);
                    let input = request(&token, &mac, "");
                    let (code, out) =
                        serve_direct(&reg, &dir, n, &key_line(n), "192.0.2.1", input.as_bytes());
                    assert_eq!(code, 0, "claim {n}: {out}");
                    let port: u16 = field(&answer_lines(&out), "port").parse().unwrap();
                    ports.push(port);
                }
            })
        })
        .collect();
    let mut ports: Vec<u16> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let elapsed = started.elapsed();
    println!(
        "{kind:?}: {DEVICES} claims on one token, {PARALLEL} at a time: {:.1} s ({:.1} ms each)",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1000.0 / DEVICES as f64
    );
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), DEVICES, "distinct ports");
    let devices: Vec<serde_json::Value> = serde_json::from_str(&reg.ok(&["--json", "ls"])).unwrap();
    assert_eq!(devices.len(), DEVICES);
    assert_eq!(claim_json(&reg, &id)["uses_left"], 0);
    let before = registry_rows(&reg);
    let (code, out) = serve_direct(
        &reg,
        &dir,
        DEVICES,
        &key_line(DEVICES),
        "192.0.2.1",
        request(&token, "02:00:00:00:ff:ff", "").as_bytes(),
    );
    assert_eq!(
        (code, out.as_str()),
        (1, "jailbird-claim 1\nrefused used-up\n")
    );
    assert_eq!(registry_rows(&reg), before);
}

fn refusals_are_rate_limited_per_source(kind: Kind) {
    let reg = Registry::new(kind);
    reg.pool("p1", "20000-20099");
    let dir = TempDir::new("claimrate");
    let (_, host) = keygen(&dir, "host");
    reg.ok(&[
        "jail",
        "add",
        "j1",
        "--address",
        "127.0.0.1:2222",
        "--host-key",
        &host,
        "--pool",
        "p1",
        "--user",
        &tunnel_user(),
        "--operator-user",
        OPERATOR_USER,
        "--claim-user",
        CLAIM_USER,
    ]);
    let (token, _) = create_claim(&reg, &["--pool", "p1"]);
    let k = key_line(1);
    for i in 0..20 {
        let (code, out) = serve_direct(&reg, &dir, i, &k, "192.0.2.9", b"nonsense\n");
        assert_eq!(
            (code, out.as_str()),
            (1, "jailbird-claim 1\nrefused malformed\n"),
            "{i}"
        );
    }
    // The 21st from that address is not even read; a good one neither.
    let good = request(&token, "02:00:00:00:00:01", "");
    let (code, out) = serve_direct(&reg, &dir, 21, &k, "192.0.2.9", good.as_bytes());
    assert_eq!(
        (code, out.as_str()),
        (1, "jailbird-claim 1\nrefused rate-limited\n")
    );
    // Another address is served.
    let (code, out) = serve_direct(&reg, &dir, 22, &k, "192.0.2.10", good.as_bytes());
    assert_eq!(code, 0, "{out}");
    let log = audit(&reg);
    assert_eq!(
        log.iter().filter(|e| e["reason"] == "rate-limited").count(),
        1
    );
}

/// `connect` and `ssh-config` pin a device's recorded sshd host key; real
/// OpenSSH then refuses a device whose key changed, and both fingerprints
/// are in front of the operator.
fn operators_pin_the_recorded_host_key(kind: Kind) {
    let reg = Registry::new(kind);
    reg.pool("p1", "20000-20099");
    let dir = TempDir::new("claimpin");
    let (_, jail_host) = keygen(&dir, "jailhost");
    reg.ok(&[
        "jail",
        "add",
        "j1",
        "--address",
        "127.0.0.1:2222",
        "--host-key",
        &jail_host,
        "--pool",
        "p1",
    ]);
    let (_, op_pub) = key(&dir);
    reg.ok(&["operator", "add", "alice", "--key", &op_pub]);
    let device = DeviceSshd::start();
    let host_pub = std::fs::read_to_string(device.dir.path("ssh_host_ed25519_key.pub")).unwrap();
    let host_pub = host_pub.trim();
    let (_, other_host) = keygen(&dir, "otherhost");
    let (_, k1) = key(&dir);
    let (_, k2) = key(&dir);
    reg.ok(&["enroll", "d1", "--key", &k1, "--host-key", host_pub]);
    reg.ok(&["enroll", "d2", "--key", &k2]);
    let certs = TempDir::new("claimpincerts");
    let cert_dir = certs.0.display().to_string();
    let connect = |id: &str| {
        let (code, out, err) = reg.warden(&[
            "connect",
            id,
            "--operator",
            "alice",
            "--print",
            "--cert-dir",
            &cert_dir,
        ]);
        assert_eq!(code, 0, "{err}");
        (out, err)
    };
    let fp = |line: &str| {
        let out = run_ok(Command::new("ssh-keygen").arg("-lf").arg("-").stdin({
            let p = dir.path("fp.pub");
            std::fs::write(&p, format!("{line}\n")).unwrap();
            std::fs::File::open(p).unwrap()
        }));
        out.split(' ').nth(1).unwrap().to_string()
    };
    let (out, err) = connect("d1");
    let pin = certs.path("d1.known_hosts");
    assert!(
        out.contains(&format!("UserKnownHostsFile={}", pin.display())),
        "{out}"
    );
    assert!(
        out.contains("GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes"),
        "{out}"
    );
    assert!(
        err.contains(&format!("pinned to {}", fp(host_pub))),
        "{err}"
    );
    let host_b64 = host_pub.split(' ').nth(1).unwrap();
    assert_eq!(
        std::fs::read_to_string(&pin).unwrap(),
        format!("d1 ssh-ed25519 {host_b64}\n")
    );
    let (out, err) = connect("d2");
    assert!(!out.contains("d2.known_hosts"), "{out}");
    assert!(err.contains("no recorded sshd host key"), "{err}");

    // Real OpenSSH with the pinned file: the device's own key passes ...
    let ssh_pinned = || {
        split(
            Command::new("ssh")
                .args([
                    "-F",
                    "/dev/null",
                    "-o",
                    "BatchMode=yes",
                    "-o",
                    "IdentitiesOnly=yes",
                ])
                .args([
                    "-o",
                    "HostKeyAlias=d1",
                    "-o",
                    "GlobalKnownHostsFile=/dev/null",
                ])
                .arg("-o")
                .arg(format!("UserKnownHostsFile={}", pin.display()))
                .args(["-o", "StrictHostKeyChecking=yes", "-i"])
                .arg(&device.client_key)
                .args(["-p", &device.port.to_string()])
                .arg(format!("{}@127.0.0.1", agent::device_user()))
                .arg("echo reached")
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    };
    let (code, out, err) = ssh_pinned();
    assert_eq!((code, out.trim()), (0, "reached"), "{err}");
    // ... and once the registry holds another key for d1, ssh refuses the
    // device, printing the key it offered; warden printed the recorded one.
    reg.ok(&["enroll", "d1", "--key", &k1, "--host-key", &other_host]);
    let (_, warden_err) = connect("d1");
    assert!(warden_err.contains(&fp(&other_host)), "{warden_err}");
    let (code, out, err) = ssh_pinned();
    assert_eq!(code, 255, "{out}");
    assert!(err.contains("Host key verification failed"), "{err}");
    assert!(
        err.contains(&fp(host_pub)),
        "ssh names the offered key: {err}"
    );

    // ssh-config pins too, in the known_hosts file it writes.
    let kh = dir.path("known_hosts");
    let cfg = reg.ok(&["ssh-config", "--known-hosts", kh.to_str().unwrap()]);
    let text = std::fs::read_to_string(&kh).unwrap();
    let other_b64 = other_host.split(' ').nth(1).unwrap();
    assert!(
        text.contains(&format!("d1 ssh-ed25519 {other_b64}\n")),
        "{text}"
    );
    let d1 = cfg.split("\nHost ").find(|s| s.starts_with("d1")).unwrap();
    assert!(
        d1.contains("StrictHostKeyChecking yes")
            && d1.contains(&format!("UserKnownHostsFile {}", kh.display())),
        "{d1}"
    );
    let d2 = cfg.split("\nHost ").find(|s| s.starts_with("d2")).unwrap();
    assert!(
        d2.contains("trusts this device on first use")
            && !d2.contains("\n    StrictHostKeyChecking"),
        "{d2}"
    );
}

/// The first promise of zero-touch enrolment, with the real agent: a device
/// "image" holding only the jail's address, the line that trusts the jail
/// and a claim token (and the device's own sshd host key, as any image has)
/// enrols itself through a real jail with warden's drop-in and holds its
/// tunnel within 60 s; the registry has its MAC and host key; `warden
/// connect --print` pins that key and the printed ssh reaches the device
/// with StrictHostKeyChecking=yes and no prompt; once the recorded key is
/// not the device's, ssh refuses it.
fn a_device_image_holding_only_a_claim_token_enrols_itself(kind: Kind) {
    let (reg, jail) = setup(kind);
    let target = DeviceSshd::start();
    let (token, claim_id) = create_claim(
        &reg,
        &[
            "--pool",
            "p1",
            "--target",
            &format!("127.0.0.1:{}", target.port),
        ],
    );
    let image = TempDir::new("claimimage");
    let trust: Vec<&str> = jail.host_key_line.split_whitespace().take(2).collect();
    let kh = image.path("known_hosts");
    std::fs::write(
        &kh,
        format!("[127.0.0.1]:{} {}\n", jail.port, trust.join(" ")),
    )
    .unwrap();
    let host_pub = target.dir.path("ssh_host_ed25519_key.pub");
    let state = image.path("identity");
    let started = Instant::now();
    let agent = Agent::spawn(
        &[
            "run",
            "--claim-user",
            CLAIM_USER,
            "--known-hosts",
            kh.to_str().unwrap(),
            "--device-host-key",
            host_pub.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
            &format!("127.0.0.1:{}", jail.port),
        ],
        &[("JAILBIRD_CLAIM", token.as_str())],
    );
    let up = agent.wait_log("tunnel up", Duration::from_secs(60));
    eprintln!("claimed and up in {:?}: {up}", started.elapsed());
    let claimed = agent.wait_log("enrolled as device", READY);
    let id = claimed
        .rsplit("enrolled as device ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert!(
        !agent.lines().iter().any(|l| l.contains(&token)),
        "the token was logged"
    );
    // The registry: the device, its MAC, its port in the pool, the claim spent.
    let shown: serde_json::Value = serde_json::from_str(&reg.ok(&["--json", "show", &id])).unwrap();
    let mac = shown["mac"].as_str().expect("a MAC recorded").to_string();
    assert_eq!(mac.len(), 17, "{shown}");
    assert_eq!(id, mac.replace(':', ""), "the id derives from the MAC");
    let port = shown["port"].as_u64().unwrap();
    assert!((20000..=20099).contains(&port), "{shown}");
    assert!(up.contains(&format!("listen=localhost:{port}")), "{up}");
    assert_eq!(claim_json(&reg, &claim_id)["uses_left"], 0);
    assert!(
        audit(&reg)
            .iter()
            .any(|e| e["action"] == "claim" && e["device"] == id.as_str()),
        "a claim audit row"
    );
    // The operator: warden connect pins the key the device sent, and the
    // printed ssh goes through the jail to the device without a prompt.
    let op_pub = std::fs::read_to_string(format!("{}.pub", target.client_key.display())).unwrap();
    reg.ok(&["operator", "add", "ops", "--key", op_pub.trim()]);
    let certs = TempDir::new("claimcerts");
    let connect = || {
        let line = format!(
            "{} -o BatchMode=yes -o LogLevel=ERROR -l {} 'echo via-claim'",
            reg.ok(&[
                "connect",
                &id,
                "--identity",
                target.client_key.to_str().unwrap(),
                "--cert-dir",
                certs.0.to_str().unwrap(),
                "--print",
            ])
            .trim(),
            agent::device_user()
        );
        assert!(line.contains("StrictHostKeyChecking=yes"), "{line}");
        assert!(!line.contains("StrictHostKeyChecking=no"), "{line}");
        split(
            Command::new("sh")
                .arg("-c")
                .arg(&line)
                .stdin(Stdio::null())
                .output()
                .unwrap(),
        )
    };
    let (code, out, err) = connect();
    assert_eq!((code, out.trim()), (0, "via-claim"), "{err}");
    // A device whose sshd key is not the one recorded is refused.
    let dir = TempDir::new("claimother");
    let (_, other) = keygen(&dir, "other");
    let key = device_key(&state);
    let tgt = format!("127.0.0.1:{}", target.port);
    let mac_arg = mac.clone();
    reg.ok(&[
        "enroll",
        &id,
        "--key",
        &key,
        "--pool",
        "p1",
        "--target",
        &tgt,
        "--mac",
        &mac_arg,
        "--host-key",
        &other,
    ]);
    let (code, out, err) = connect();
    assert_eq!(code, 255, "{out}");
    assert!(err.contains("Host key verification failed"), "{err}");
}

both_backends!(
    a_device_image_holding_only_a_claim_token_enrols_itself,
    operators_pin_the_recorded_host_key,
    accepted_claim_enrols_and_the_tunnel_logs_in,
    refused_claims_change_nothing,
    the_forced_command_cannot_be_steered,
    a_thousand_concurrent_claims_on_one_token,
    refusals_are_rate_limited_per_source,
);
