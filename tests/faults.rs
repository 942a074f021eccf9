//! Field faults against a real OpenSSH jail: a silently dead uplink (network
//! namespaces joined by a veth pair, packets blackholed both ways), a jail
//! restarted mid-transfer, a target that is down or never reads.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Keepalive settings of the agent in the link-loss test.
const ALIVE_INTERVAL_S: u64 = 1;
const ALIVE_COUNT: u64 = 3;
/// The jail's ClientAliveInterval / ClientAliveCountMax: it evicts the dead
/// session (and frees the port) a while after the agent has given up on it.
const JAIL_ALIVE: (u32, u32) = (3, 2);
/// ConnectTimeout of the agent: a SYN sent into the dead link is given up on
/// (and sent again) this quickly, rather than waiting out TCP's SYN backoff.
const CONNECT_TIMEOUT_S: u64 = 2;
/// The forwarded port on the jail (inside the jail's own namespace).
const TUNNEL_PORT: u16 = 2022;
/// The device-side echo target (inside the agent's namespace).
const TARGET_PORT: u16 = 7;

#[test]
fn silent_link_loss_is_detected_by_keepalives_and_the_tunnel_returns_after_eviction() {
    let net = NetPair::new();
    let dir = TempDir::new("netns");
    let state = dir.path("identity").display().to_string();
    let (ok, line, err) = jailbird(&[
        "authorize",
        "--state",
        &state,
        "--listen",
        &TUNNEL_PORT.to_string(),
    ]);
    assert!(ok.success(), "{err}");
    let jail = Jail::start(JailOpts {
        client_alive: JAIL_ALIVE,
        port: 22,
        netns: Some((net.jail.clone(), NetPair::JAIL_ADDR.into())),
        ..JailOpts::new(TUNNEL_PORT, &line)
    });
    let _echo = NetPair::echo(&net.agent, TARGET_PORT);
    let kh = jail.known_hosts_file(&dir);
    let agent = Agent::spawn_in(
        Some(&net.agent),
        &[
            "run",
            "--state",
            &state,
            "--known-hosts",
            &kh.display().to_string(),
            "--status-file",
            &dir.path("status").display().to_string(),
            "-o",
            &format!("ServerAliveInterval={ALIVE_INTERVAL_S}"),
            "-o",
            &format!("ServerAliveCountMax={ALIVE_COUNT}"),
            "-o",
            &format!("ConnectTimeout={CONNECT_TIMEOUT_S}"),
            "-R",
            &format!("{TUNNEL_PORT}:127.0.0.1:{TARGET_PORT}"),
            &jail.destination(),
        ],
        &[],
    );
    agent.wait_log("tunnel up", READY);
    NetPair::roundtrip(&net.jail, TUNNEL_PORT, 1 << 20, Duration::from_secs(20))
        .expect("tunnel before the cut");

    // The uplink dies silently: no FIN, no RST, no ICMP.
    let cut_at = Instant::now();
    net.cut();
    let dead = agent.wait_log("declared dead", READY);
    let detect = cut_at.elapsed();
    let budget = Duration::from_secs(ALIVE_INTERVAL_S * ALIVE_COUNT + 1);
    assert!(
        detect <= budget,
        "dead link noticed after {detect:?}, budget {budget:?}: {dead}"
    );
    // Stay down longer than interval x count, then come back.
    let down_for = Duration::from_secs(ALIVE_INTERVAL_S * ALIVE_COUNT + 2);
    wait_until(READY, "the outage to last", || {
        (cut_at.elapsed() >= down_for).then_some(())
    });
    // The device comes back with a new address (new lease / NAT mapping), so
    // nothing ever resets the jail's old session: the stale-listener case.
    net.readdress_agent("10.77.0.3");
    net.heal();

    // The jail still holds the port for its old session until ClientAlive evicts
    // it; the agent keeps asking, and gets the port within 3 s of the eviction.
    let evicted = wait_until(READY, "the jail to evict the dead session", || {
        jail.log()
            .contains("Timeout, client not responding")
            .then(Instant::now)
    });
    let up = agent.wait_log_n("tunnel up", 2, READY);
    let recovered = Instant::now();
    assert!(
        recovered.saturating_duration_since(evicted) <= Duration::from_secs(3),
        "tunnel back {:?} after the eviction: {up}",
        recovered.saturating_duration_since(evicted)
    );
    NetPair::roundtrip(&net.jail, TUNNEL_PORT, 1 << 20, Duration::from_secs(20))
        .expect("tunnel after recovery");
    eprintln!(
        "figures: dead link detected {:.2}s after the cut (budget {}s); tunnel back {:.2}s after the cut, {:.2}s after eviction",
        detect.as_secs_f32(),
        budget.as_secs(),
        cut_at.elapsed().as_secs_f32(),
        recovered.saturating_duration_since(evicted).as_secs_f32()
    );
    drop(agent);
}

/// Open file descriptors of a process.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn jail_restart_mid_transfer_fails_that_transfer_cleanly_and_the_next_one_succeeds() {
    // Target: echoes, and reports when each of its connections ends.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = l.local_addr().unwrap().port();
    let (ended_tx, ended_rx) = std::sync::mpsc::channel::<Instant>();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { continue };
            let ended = ended_tx.clone();
            std::thread::spawn(move || {
                echo_until_eof(&mut c);
                let _ = ended.send(Instant::now());
            });
        }
    });
    let mut s = Setup::new();
    let agent = s.spawn_agent(target, &["-o", "ServerAliveInterval=1"]);
    agent.wait_log("tunnel up", READY);
    let fds_before = fd_count(agent.child.id());

    // A long transfer: the operator streams and reads back until cut off.
    let op = TcpStream::connect(("127.0.0.1", s.listen)).unwrap();
    op.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut w = op.try_clone().unwrap();
    std::thread::spawn(move || {
        let chunk = pattern(64 << 10, 5);
        while w.write_all(&chunk).is_ok() {}
    });
    let echoed = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (count, mut r) = (echoed.clone(), op.try_clone().unwrap());
    let reader = std::thread::spawn(move || {
        let mut buf = [0u8; 65536];
        loop {
            match r.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) => count.fetch_add(n, std::sync::atomic::Ordering::SeqCst),
                Err(e) => return Err(e),
            };
        }
    });
    wait_until(READY, "8 MiB echoed mid-transfer", || {
        (echoed.load(std::sync::atomic::Ordering::SeqCst) >= 8 << 20).then_some(())
    });

    // The jail restarts (every sshd process killed, then a new one on the same port).
    let killed_at = Instant::now();
    s.jail.kill();
    // The operator's transfer ends (EOF or reset), not a hang ...
    let r = reader.join().unwrap();
    let cut = killed_at.elapsed();
    assert!(
        cut < Duration::from_secs(5),
        "operator side hung {cut:?} ({r:?})"
    );
    // ... and the agent closes its side to the target promptly too.
    let ended = ended_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the agent kept the target connection of a dead link open");
    assert!(ended.duration_since(killed_at) < Duration::from_secs(5));
    agent.wait_log("link to jail", READY);

    s.jail.spawn();
    agent.wait_log_n("tunnel up", 2, Duration::from_secs(60));
    let data = pattern(4 << 20, 8);
    assert_eq!(sha256(&echo_roundtrip(s.listen, &data)), sha256(&data));
    // Nothing leaked across the restart: same descriptor count as before.
    let fds_after = wait_until(READY, "descriptors back to the baseline", || {
        let n = fd_count(agent.child.id());
        (n <= fds_before).then_some(n)
    });
    eprintln!(
        "figures: transfer cut {:.2}s after the kill, target closed after {:.2}s; fds {fds_before} -> {fds_after}",
        cut.as_secs_f32(),
        ended.duration_since(killed_at).as_secs_f32()
    );
}
