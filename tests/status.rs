//! The status file: written by the supervisor for every outcome (up, down with
//! the reason of each failed attempt, removed at exit, also from backoff), and
//! never redirected by a symlink planted where it is written; and the log
//! lines systemd reads.

mod common;
use common::*;
use std::time::Duration;

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// SIGTERM: the agent exits 0 and takes its status file with it.
fn stop_and_expect_no_status(agent: &mut Agent, status: &std::path::Path) {
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(5)).success());
    assert!(
        !status.exists(),
        "status file left behind: {}",
        read(status)
    );
}

#[test]
fn a_failed_attempt_is_recorded_with_its_reason() {
    // The jail does not know this key: no attempt ever comes up.
    let s = Setup::with(|o| o.authorized_keys = String::new());
    let status = s.dir.path("status");
    let mut agent = s.spawn_agent(9, &[]);
    agent.wait_log("refused key", READY);
    wait_until(READY, "state=down in the status file", || {
        let t = read(&status);
        (t.contains("state=down\n") && t.contains("reason=jail ") && t.contains("refused key"))
            .then_some(())
    });
    // SIGTERM during the backoff that follows: the record goes with the agent.
    stop_and_expect_no_status(&mut agent, &status);
}

#[test]
fn a_dropped_tunnel_is_recorded_down_then_removed_on_shutdown() {
    let mut s = Setup::new();
    let status = s.dir.path("status");
    let echo = Echo::start();
    let mut agent = s.spawn_agent(echo.port, &[]);
    agent.wait_log("tunnel up", READY);
    assert!(read(&status).starts_with("state=up\n"), "{}", read(&status));
    s.jail.kill();
    wait_until(READY, "state=down after the jail died", || {
        read(&status).starts_with("state=down\n").then_some(())
    });
    stop_and_expect_no_status(&mut agent, &status);
}

#[test]
fn a_planted_symlink_cannot_redirect_the_status_file() {
    let s = Setup::new();
    let status = s.dir.path("status");
    let victim = s.dir.path("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    std::os::unix::fs::symlink(&victim, &status).unwrap();
    let echo = Echo::start();
    let mut agent = s.spawn_agent(echo.port, &[]);
    // A name derived from the pid would be predictable: plant a link there
    // too, before the tunnel comes up (the handshake takes far longer).
    let guessed = s.dir.path(&format!("status.tmp{}", agent.child.id()));
    std::os::unix::fs::symlink(&victim, &guessed).unwrap();
    agent.wait_log("tunnel up", READY);
    let _ = std::fs::remove_file(&guessed);
    assert_eq!(read(&victim), "precious\n", "the write followed the link");
    let meta = std::fs::symlink_metadata(&status).unwrap();
    assert!(meta.file_type().is_file(), "status is still a link");
    assert!(read(&status).starts_with("state=up\n"));
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(5)).success());
    assert_eq!(read(&victim), "precious\n");
    // No temp file left beside it.
    let left: Vec<_> = std::fs::read_dir(&s.dir.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn under_systemd_lines_carry_sd_daemon_priorities() {
    let mut s = Setup::new();
    let echo = Echo::start();
    let args = s.run_args(echo.port);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let agent = Agent::spawn(&refs, &[("JOURNAL_STREAM", "8:4242")]);
    let up = agent.wait_log("tunnel up", READY);
    assert!(up.starts_with("<6>tunnel up jail="), "{up}");
    s.jail.kill();
    let warn = agent.wait_log("retrying in", READY);
    assert!(warn.starts_with("<4>"), "{warn}");
}
