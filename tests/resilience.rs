//! What keeps the tunnel alive, and what it refuses: refused forwards, host
//! keys, jail restarts, dead links, signals, autossh-container configuration.

mod common;
use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

fn retry_delay_secs(line: &str) -> f32 {
    let at = line.rfind("retrying in ").expect("retry line") + "retrying in ".len();
    line[at..].trim_end_matches('s').parse().unwrap()
}

#[test]
fn refused_forward_keeps_retrying_on_a_short_interval_with_a_clear_line() {
    // The jail permits another port than the one the key asks for.
    let s = Setup::with(|o| o.permit_listen = free_port());
    let echo = Echo::start();
    let mut agent = s.spawn_agent(echo.port, &[]);
    let third = agent.wait_log_n("refused the forward", 3, READY);
    assert!(
        third.contains(&format!("localhost:{}", s.listen)),
        "{third}"
    );
    assert!(
        third.contains("old session") && third.contains("not permitted"),
        "line does not say why: {third}"
    );
    for line in agent
        .lines()
        .iter()
        .filter(|l| l.contains("refused the forward"))
    {
        assert!(retry_delay_secs(line) <= 5.0, "{line}");
    }
    assert!(agent.is_running());
    assert_eq!(agent.count("tunnel up"), 0);
}

#[test]
fn a_port_held_by_an_old_session_is_taken_over_seconds_after_it_is_freed() {
    let s = Setup::new();
    let echo = Echo::start();
    let mut first = s.spawn_agent(echo.port, &[]);
    first.wait_log("tunnel up", READY);
    // Same identity, same port: the jail refuses while the first holds it.
    let second = s.spawn_agent(echo.port, &[]);
    second.wait_log_n("refused the forward", 2, READY);
    first.signal("TERM");
    let freed = Instant::now();
    assert!(first.wait_exit(Duration::from_secs(5)).success());
    second.wait_log("tunnel up", Duration::from_secs(10));
    let took = freed.elapsed();
    eprintln!("second agent took over {took:?} after the port was freed");
    assert!(took <= Duration::from_secs(5), "took {took:?}");
    let data = pattern(256 << 10, 5);
    assert_eq!(echo_roundtrip(s.listen, &data), data);
}

#[test]
fn wrong_pinned_host_key_is_refused_before_authenticating() {
    let s = Setup::new();
    let dir = TempDir::new("otherkey");
    let (_, other) = keygen(&dir, "other");
    let other_key: String = other
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ");
    let args = [
        "run",
        "--state",
        &s.state,
        "--host-key",
        &other_key,
        "-R",
        &format!("{}:127.0.0.1:9", s.listen),
        &s.jail.destination(),
    ];
    let mut agent = Agent::spawn(&args, &[]);
    let line = agent.wait_log_n("host key changed", 2, READY);
    let jail_fp = run_ok(
        Command::new("ssh-keygen")
            .arg("-lf")
            .arg(s.jail.dir.path("ssh_host_ed25519_key.pub")),
    );
    let jail_fp = jail_fp.split_whitespace().nth(1).unwrap();
    assert!(
        line.contains(&format!("got {jail_fp}")),
        "{line} / {jail_fp}"
    );
    assert!(line.contains("expected SHA256:"), "{line}");
    assert!(agent.is_running());
    assert_eq!(agent.count("tunnel up"), 0);
    assert!(
        !s.jail.log().contains("Accepted publickey"),
        "authenticated to an untrusted jail"
    );
}

#[test]
fn unknown_host_key_is_refused_by_default() {
    let s = Setup::new();
    let args = [
        "run",
        "--state",
        &s.state,
        "-R",
        &format!("{}:127.0.0.1:9", s.listen),
        &s.jail.destination(),
    ];
    let agent = Agent::spawn(&args, &[]);
    let line = agent.wait_log("is not known", READY);
    assert!(line.contains("accept-new"), "{line}");
    assert_eq!(agent.count("tunnel up"), 0);
}

#[test]
fn accept_new_pins_the_first_key_and_then_refuses_a_changed_one() {
    let mut s = Setup::new();
    let echo = Echo::start();
    let args = [
        "run",
        "--state",
        &s.state,
        "-o",
        "StrictHostKeyChecking=accept-new",
        "-R",
        &format!("{}:127.0.0.1:{}", s.listen, echo.port),
        &s.jail.destination(),
    ];
    let mut agent = Agent::spawn(&args, &[]);
    agent.wait_log("pinned jail", READY);
    agent.wait_log("tunnel up", READY);
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(5)).success());
    // The identity is unchanged by the pin.
    let (_, key_after, _) = jailbird(&["key", "--state", &s.state]);
    assert!(
        s.jail
            .opts
            .authorized_keys
            .contains(key_after.split_whitespace().nth(1).unwrap())
    );

    // Same address, new host key: refused even with accept-new.
    let port = s.jail.port;
    s.jail.kill();
    let mut opts = s.jail.opts.clone();
    opts.port = port;
    let jail2 = Jail::start(opts);
    let agent = Agent::spawn(&args, &[]);
    agent.wait_log("host key changed", READY);
    assert_eq!(agent.count("tunnel up"), 0);
    drop(jail2);
}

#[test]
fn hashed_known_hosts_entries_work() {
    let s = Setup::new();
    let echo = Echo::start();
    let kh = s.jail.known_hosts_file(&s.dir);
    run_ok(Command::new("ssh-keygen").arg("-H").arg("-f").arg(&kh));
    let text = std::fs::read_to_string(&kh).unwrap();
    assert!(text.starts_with("|1|"), "{text}");
    let agent = s.spawn_agent(echo.port, &[]);
    agent.wait_log("tunnel up", READY);
}

#[test]
fn jail_killed_and_restarted_brings_the_tunnel_back() {
    let mut s = Setup::new();
    let echo = Echo::start();
    let agent = s.spawn_agent(echo.port, &[]);
    agent.wait_log("tunnel up", READY);
    s.jail.kill();
    agent.wait_log("link to jail", READY);
    s.jail.spawn();
    agent.wait_log_n("tunnel up", 2, Duration::from_secs(60));
    let data = pattern(1 << 20, 21);
    assert_eq!(sha256(&echo_roundtrip(s.listen, &data)), sha256(&data));
}

#[test]
fn a_silent_link_is_declared_dead_within_interval_times_count_plus_one_second() {
    let s = Setup::new();
    let echo = Echo::start();
    let agent = s.spawn_agent(
        echo.port,
        &["-o", "ServerAliveInterval=1", "-o", "ServerAliveCountMax=2"],
    );
    agent.wait_log("tunnel up", READY);
    // Freeze the jail's per-connection processes: no RST, no FIN, just silence.
    let listener = s.jail.jail_pid();
    let sessions: Vec<String> = descendants(listener).iter().map(u32::to_string).collect();
    assert!(!sessions.is_empty());
    run_ok(Command::new("kill").arg("-STOP").args(&sessions));
    let frozen = Instant::now();
    agent.wait_log("declared dead", Duration::from_secs(10));
    let took = frozen.elapsed();
    eprintln!("dead link detected after {took:?}");
    assert!(
        took <= Duration::from_secs(3),
        "took {took:?} (interval 1 s x count 2 + 1 s)"
    );
    // The frozen session still holds the port: the jail refuses until it is gone.
    agent.wait_log("refused the forward", READY);
    run_ok(Command::new("kill").arg("-KILL").args(&sessions));
    let freed = Instant::now();
    agent.wait_log_n("tunnel up", 2, Duration::from_secs(10));
    assert!(
        freed.elapsed() <= Duration::from_secs(5),
        "took {:?}",
        freed.elapsed()
    );
    let data = pattern(1 << 20, 22);
    assert_eq!(echo_roundtrip(s.listen, &data), data);
}

#[test]
fn sigterm_and_sigint_exit_0_within_2_seconds_and_free_the_port() {
    for sig in ["TERM", "INT"] {
        let s = Setup::new();
        let echo = Echo::start();
        let mut agent = s.spawn_agent(echo.port, &[]);
        agent.wait_log("tunnel up", READY);
        // A connection in flight does not hold up the exit.
        let _open = std::net::TcpStream::connect(("127.0.0.1", s.listen)).unwrap();
        let t = Instant::now();
        agent.signal(sig);
        let status = agent.wait_exit(Duration::from_secs(5));
        let took = t.elapsed();
        assert_eq!(status.code(), Some(0), "SIG{sig}");
        assert!(
            took <= Duration::from_secs(2),
            "SIG{sig}: exit took {took:?}"
        );
        wait_until(Duration::from_secs(3), "the jail to free the port", || {
            (!port_answers(s.listen)).then_some(())
        });
        assert!(
            s.jail.log().contains("Disconnected from user") || s.jail.log().contains("disconnect"),
            "{}",
            s.jail.log()
        );
    }
}

#[test]
fn sigterm_while_retrying_exits_promptly() {
    let dir = TempDir::new("retrying");
    let state = dir.path("identity").display().to_string();
    let port = free_port();
    let mut agent = Agent::spawn(
        &[
            "run",
            "--state",
            &state,
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-R",
            "2022:127.0.0.1:22",
            &format!("u@127.0.0.1:{port}"),
        ],
        &[],
    );
    agent.wait_log_n("retrying in", 2, READY);
    let t = Instant::now();
    agent.signal("TERM");
    assert_eq!(agent.wait_exit(Duration::from_secs(5)).code(), Some(0));
    assert!(t.elapsed() <= Duration::from_secs(2));
}

#[test]
fn autossh_container_environment_alone_configures_the_tunnel() {
    let dir = TempDir::new("envonly");
    let (key, public) = keygen(&dir, "id_ed25519");
    let listen = free_port();
    let restricted = format!(
        "restrict,port-forwarding,permitlisten=\"localhost:{listen}\",permitlisten=\"127.0.0.1:{listen}\",command=\"/bin/false\" {public}"
    );
    let jail = Jail::start(JailOpts::new(listen, &restricted));
    let kh = jail.known_hosts_file(&dir);
    let echo = Echo::start();
    let env = [
        ("SSH_REMOTE_USER", jail.user.clone()),
        ("SSH_REMOTE_HOST", "127.0.0.1".to_string()),
        ("SSH_REMOTE_PORT", jail.port.to_string()),
        ("SSH_TUNNEL_PORT", listen.to_string()),
        ("SSH_TARGET_HOST", "127.0.0.1".to_string()),
        ("SSH_TARGET_PORT", echo.port.to_string()),
        ("SSH_KNOWN_HOSTS_FILE", kh.display().to_string()),
        ("SSH_KEY_FILE", key.display().to_string()),
        ("SSH_SERVER_ALIVE_INTERVAL", "5".to_string()),
        ("SSH_SERVER_ALIVE_COUNT_MAX", "2".to_string()),
        ("JAILBIRD_STATE", dir.path("state").display().to_string()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let agent = Agent::spawn(&["run"], &env);
    let up = agent.wait_log("tunnel up", READY);
    assert!(
        up.contains(&format!("jail=127.0.0.1:{}", jail.port))
            && up.contains(&format!("target=127.0.0.1:{}", echo.port)),
        "{up}"
    );
    let data = pattern(1 << 20, 31);
    assert_eq!(echo_roundtrip(listen, &data), data);
}

#[test]
fn several_jails_rotate_past_one_that_is_down_each_checked_by_its_own_key() {
    let s = Setup::new();
    let echo = Echo::start();
    // A second jail that is down: its port refuses connections; listed first.
    let down = free_port();
    let kh = s.dir.path("known_hosts");
    std::fs::write(
        &kh,
        format!(
            "[127.0.0.1]:{down} {}\n{}\n",
            s.jail.host_key_line,
            s.jail.known_hosts_line()
        ),
    )
    .unwrap();
    let dest = format!("{}@127.0.0.1:{down},{}", s.jail.user, s.jail.destination());
    let agent = Agent::spawn(
        &[
            "run",
            "--state",
            &s.state,
            "--known-hosts",
            kh.to_str().unwrap(),
            "-R",
            &format!("{}:127.0.0.1:{}", s.listen, echo.port),
            &dest,
        ],
        &[],
    );
    let fail = agent.wait_log(&format!("cannot connect to jail 127.0.0.1:{down}"), READY);
    assert!(fail.contains("retrying in"), "{fail}");
    let up = agent.wait_log("tunnel up", READY);
    assert!(
        up.contains(&format!("jail=127.0.0.1:{}", s.jail.port)),
        "{up}"
    );
    let data = pattern(256 << 10, 41);
    assert_eq!(echo_roundtrip(s.listen, &data), data);
}
