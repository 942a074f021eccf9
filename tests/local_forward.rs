//! `-L` local forwards (the autossh container's SSH_MODE=-L) through a real
//! OpenSSH jail that permits `direct-tcpip` to exactly one target (PermitOpen).
#![cfg(feature = "local-forward")]

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A jail whose PermitOpen (sshd_config and the key's `permitopen`) names
/// `127.0.0.1:open_port`, and a state file whose key it accepts.
struct OpenJail {
    dir: TempDir,
    state: String,
    jail: Jail,
}

impl OpenJail {
    fn start(tag: &str, open_port: u16) -> OpenJail {
        let dir = TempDir::new(tag);
        let state = dir.path("identity").display().to_string();
        let open = format!("127.0.0.1:{open_port}");
        let (status, line, err) = jailbird(&["authorize", "--state", &state, "--open", &open]);
        assert!(status.success(), "{err}");
        assert!(
            line.starts_with(&format!(
                "restrict,port-forwarding,permitopen=\"{open}\",command=\"/bin/false\" ssh-ed25519 "
            )),
            "{line}"
        );
        let jail = Jail::start(JailOpts {
            permit_open: Some(open),
            ..JailOpts::new(1, &line)
        });
        OpenJail { dir, state, jail }
    }

    /// `jailbird run -L 127.0.0.1:LOCAL:127.0.0.1:to_port` with 1 s keepalives.
    fn agent(&self, local: u16, to_port: u16) -> Agent {
        let kh = self.jail.known_hosts_file(&self.dir);
        let status = self.dir.path(&format!("status-{local}"));
        Agent::spawn(
            &[
                "run",
                "--state",
                &self.state,
                "--known-hosts",
                &kh.display().to_string(),
                "--status-file",
                &status.display().to_string(),
                "-o",
                "ServerAliveInterval=1",
                "-o",
                "ServerAliveCountMax=2",
                "-L",
                &format!("127.0.0.1:{local}:127.0.0.1:{to_port}"),
                &self.jail.destination(),
            ],
            &[],
        )
    }
}

/// Connects to `port`, sends a byte, and returns how long until the connection
/// ended (EOF or reset) and whether any byte came back.
fn probe(port: u16) -> (Duration, bool) {
    let t = Instant::now();
    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
        return (t.elapsed(), false);
    };
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let _ = c.write_all(b"x");
    let mut b = [0u8; 1];
    let echoed = matches!(c.read(&mut b), Ok(1));
    (t.elapsed(), echoed)
}

#[test]
fn real_ssh_client_reaches_a_host_behind_the_jail_through_a_local_forward() {
    let device = DeviceSshd::start();
    let j = OpenJail::start("lfwd-ssh", device.port);
    let local = free_port();
    let agent = j.agent(local, device.port);
    let up = agent.wait_log("tunnel up", READY);
    assert!(up.contains(&format!("listen=127.0.0.1:{local}")), "{up}");
    assert!(
        up.contains(&format!("target=127.0.0.1:{}", device.port)),
        "{up}"
    );
    let out = device.operator_ssh(
        &["-p", &local.to_string()],
        "127.0.0.1",
        "echo through-L; uname -s",
    );
    assert_eq!(out, "through-L\nLinux\n");
}

#[test]
fn local_forward_is_intact_capped_and_confined_to_permitopen() {
    let echo = Echo::start();
    let j = OpenJail::start("lfwd-echo", echo.port);
    let local = free_port();
    let agent = j.agent(local, echo.port);
    agent.wait_log("tunnel up", READY);

    // Four concurrent 1 MiB round trips, each intact.
    let workers: Vec<_> = (0..4u64)
        .map(|i| {
            std::thread::spawn(move || {
                let data = pattern(1 << 20, i + 7);
                sha256(&echo_roundtrip(local, &data)) == sha256(&data)
            })
        })
        .collect();
    for (i, w) in workers.into_iter().enumerate() {
        assert!(w.join().unwrap(), "connection {i} corrupted");
    }

    // A client that writes 64 MiB and never reads stalls only its own channel:
    // the echo's replies pile up against the SSH window, not in the agent, and
    // other connections keep flowing.
    let hog = TcpStream::connect(("127.0.0.1", local)).unwrap();
    let mut hog_w = hog.try_clone().unwrap();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let w = written.clone();
    let writer = std::thread::spawn(move || {
        let chunk = vec![7u8; 1 << 20];
        for _ in 0..64 {
            if hog_w.write_all(&chunk).is_err() {
                break;
            }
            w.fetch_add(chunk.len(), std::sync::atomic::Ordering::SeqCst);
        }
    });
    // Four windows' worth written: the hog's replies are now held back.
    wait_until(READY, "the hog to have written 2 MiB", || {
        (written.load(std::sync::atomic::Ordering::SeqCst) >= 2 << 20).then_some(())
    });
    for i in 0..3u64 {
        let data = pattern(256 << 10, i + 40);
        assert_eq!(sha256(&echo_roundtrip(local, &data)), sha256(&data));
    }
    // The hog goes away: shut down, its writer gone, and closed. Closed, not
    // only shut down: a socket kept open that never reads gives the agent no
    // signal once its receive window is full (the agent's write just waits),
    // so whether its slot came free depended on that race (1 run in 10).
    // Closed with unread data, it resets, and the slot comes free.
    let _ = hog.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    drop(hog);

    // MAX_CHANNELS held open, each proven by a round trip; the next is closed at once.
    let cap = jailbird::limits::MAX_CHANNELS;
    let mut held = Vec::new();
    for i in 0..cap {
        let c = wait_until(READY, &format!("held connection {i}"), || {
            let mut c = TcpStream::connect(("127.0.0.1", local)).ok()?;
            c.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
            c.write_all(&[i as u8]).ok()?;
            let mut b = [0u8; 1];
            c.read_exact(&mut b).ok()?;
            (b[0] == i as u8).then_some(c)
        });
        held.push(c);
    }
    let before = echo.accepted.load(std::sync::atomic::Ordering::SeqCst);
    let (took, echoed) = probe(local);
    assert!(!echoed, "connection over MAX_CHANNELS was served");
    assert!(
        took < Duration::from_secs(2),
        "over-cap refusal took {took:?}"
    );
    agent.wait_log("connections already open (MAX_CHANNELS)", READY);
    assert_eq!(
        echo.accepted.load(std::sync::atomic::Ordering::SeqCst),
        before
    );
    held.pop();
    let back = wait_until(READY, "a freed slot", || {
        try_echo_roundtrip(local, b"after")
            .ok()
            .filter(|b| b == b"after")
    });
    assert_eq!(back, b"after");
    drop(held);

    // A second agent with the same key asks for a target outside PermitOpen:
    // the jail refuses each channel, the local client is closed at once, the
    // tunnel itself stays up, and the other target is never reached.
    let other = Echo::start();
    let local2 = free_port();
    let mut agent2 = j.agent(local2, other.port);
    agent2.wait_log("tunnel up", READY);
    let (took, echoed) = probe(local2);
    assert!(!echoed && took < Duration::from_secs(5), "{took:?}");
    let why = agent2.wait_log("PermitOpen", READY);
    assert!(why.contains(&format!("127.0.0.1:{}", other.port)), "{why}");
    assert_eq!(other.accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(agent2.is_running());
    assert_eq!(
        agent2.count("tunnel up"),
        1,
        "the refusal must not drop the link"
    );
    // The first agent is unaffected.
    assert_eq!(echo_roundtrip(local, b"still"), b"still");
}

#[test]
fn while_the_link_is_down_local_connections_are_refused_at_once_then_served_again() {
    let echo = Echo::start();
    let mut j = OpenJail::start("lfwd-down", echo.port);
    let local = free_port();
    let mut agent = j.agent(local, echo.port);
    agent.wait_log("tunnel up", READY);
    assert_eq!(echo_roundtrip(local, b"before"), b"before");

    j.jail.kill();
    agent.wait_log("retrying in", READY);
    // The listener stays bound (nobody else can take the port) but answers
    // with a reset instead of leaving the client hanging in the backlog.
    for _ in 0..3 {
        let (took, echoed) = probe(local);
        assert!(!echoed, "served while the jail is down");
        assert!(took < Duration::from_secs(1), "refusal took {took:?}");
    }
    agent.wait_log("the link to the jail is down", READY);
    assert!(agent.is_running());

    j.jail.spawn();
    agent.wait_log_n("tunnel up", 2, READY);
    let data = pattern(256 << 10, 3);
    assert_eq!(sha256(&echo_roundtrip(local, &data)), sha256(&data));
    // SIGTERM: clean exit 0, and the port is released.
    agent.signal("TERM");
    assert!(agent.wait_exit(READY).success());
    wait_until(READY, "port released", || {
        (!port_answers(local)).then_some(())
    });
}

#[test]
fn a_reverse_forward_key_line_alone_fences_direct_tcpip() {
    // A jail that allows every local forward (AllowTcpForwarding yes,
    // PermitOpen any): only the key line `authorize --listen` prints stands
    // between the device key and `ssh -W`. OpenSSH accepts the line (the
    // tunnel comes up) and refuses -W; the same key without the fence gets through.
    let dir = TempDir::new("fence");
    let (key, _) = keygen(&dir, "device");
    let listen = free_port();
    let keyp = key.display().to_string();
    let (s, line, err) = jailbird(&[
        "authorize",
        "--identity-file",
        &keyp,
        "--listen",
        &listen.to_string(),
    ]);
    assert!(s.success(), "{err}");
    assert!(line.contains("permitopen=\"255.255.255.255:9\""), "{line}");
    let echo = Echo::start();
    let unfenced = line.replace(",permitopen=\"255.255.255.255:9\"", "");
    for (l, fenced) in [(line.as_str(), true), (unfenced.as_str(), false)] {
        let jail = Jail::start(JailOpts {
            permit_open: Some("any".into()),
            ..JailOpts::new(listen, l)
        });
        let out = ssh_client(&key)
            .args(["-o", "LogLevel=ERROR", "-p", &jail.port.to_string()])
            .args(["-W", &format!("127.0.0.1:{}", echo.port)])
            .arg(format!("{}@127.0.0.1", jail.user))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = out;
        out.stdin.take().unwrap().write_all(b"ping\n").unwrap();
        let r = out.wait_with_output().unwrap();
        let got = String::from_utf8_lossy(&r.stdout).into_owned();
        if fenced {
            assert!(
                !got.contains("ping"),
                "-W reached the echo through the fence"
            );
            let e = String::from_utf8_lossy(&r.stderr);
            assert!(
                [
                    "administratively prohibited",
                    "open failed",
                    "stdio forwarding failed"
                ]
                .iter()
                .any(|m| e.contains(m)),
                "{e}"
            );
        } else {
            assert!(
                got.contains("ping"),
                "control: -W without the fence failed: {}",
                String::from_utf8_lossy(&r.stderr)
            );
        }
        // The line itself is valid: the device's tunnel comes up with it.
        let agent = Agent::spawn(
            &[
                "run",
                "--identity-file",
                &keyp,
                "--known-hosts",
                jail.known_hosts_file(&dir).to_str().unwrap(),
                "-R",
                &format!("{listen}:127.0.0.1:{}", echo.port),
                &jail.destination(),
            ],
            &[],
        );
        agent.wait_log("tunnel up", READY);
    }
}
