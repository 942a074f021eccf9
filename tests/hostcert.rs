//! Jails trusted through a host CA: real OpenSSH sshd jails presenting a
//! `HostCertificate` made by `ssh-keygen -s -h`, the real agent trusting the CA
//! by an `@cert-authority` known_hosts line or `--host-ca`. Each refusal must
//! come before the device offers its key (the jail never sees a publickey
//! attempt) and name the rule that failed.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA key pair made by ssh-keygen: (private key path, "TYPE BASE64 comment").
fn new_ca(dir: &TempDir, name: &str) -> (PathBuf, String) {
    keygen(dir, name)
}

/// Signs the jail's host key with `ca` (`ssh-keygen -s CA -h`): principals
/// (`-n`, empty for none) and validity (`-V`). Returns the certificate's path.
fn sign_host(ca: &Path, jail: &Jail, principals: &str, validity: &str) -> PathBuf {
    let host_pub = jail.dir.path("ssh_host_ed25519_key.pub");
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-s"])
        .arg(ca)
        .args(["-h", "-I", "jail-under-test", "-V", validity]);
    if !principals.is_empty() {
        cmd.args(["-n", principals]);
    }
    run_ok(cmd.arg(&host_pub));
    jail.dir.path("ssh_host_ed25519_key-cert.pub")
}

/// A jail for the device of `authorized_device`, restarted to present a host
/// certificate signed by `ca`.
fn cert_jail(listen: u16, line: &str, ca: &Path, principals: &str, validity: &str) -> Jail {
    let mut jail = Jail::start(JailOpts::new(listen, line));
    let cert = sign_host(ca, &jail, principals, validity);
    jail.opts.extra = format!("HostCertificate {}\n", cert.display());
    jail.kill();
    jail.spawn();
    jail
}

/// The jail's plain host key, "TYPE BASE64".
fn plain(jail: &Jail) -> String {
    jail.host_key_line
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn ca_key(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the agent for `state` against `jail` with `trust` flags; returns it.
fn run_agent(state: &str, listen: u16, jail: &Jail, trust: &[&str], env: &[(&str, &str)]) -> Agent {
    let echo = Echo::start();
    let fwd = format!("{listen}:127.0.0.1:{}", echo.port);
    let mut args = vec!["run", "--state", state, "-R", &fwd];
    args.extend_from_slice(trust);
    let dest = jail.destination();
    args.push(&dest);
    let agent = Agent::spawn(&args, env);
    std::mem::forget(echo); // lives as long as the test process
    agent
}

/// Writes `text` as the device's known_hosts file (in `dir`) and runs the
/// agent with it.
fn with_known_hosts(dir: &TempDir, state: &str, listen: u16, jail: &Jail, text: &str) -> Agent {
    let kh = dir.path("known_hosts");
    std::fs::write(&kh, text).unwrap();
    run_agent(
        state,
        listen,
        jail,
        &["--known-hosts", kh.to_str().unwrap()],
        &[],
    )
}

/// Waits for a refusal naming `rule`, and checks the jail never saw the
/// device try its key.
fn refused(agent: &Agent, jail: &Jail, rule: &str) {
    let line = agent.wait_log("host certificate refused", READY);
    assert!(line.contains(rule), "wanted {rule:?}: {line}");
    assert!(
        line.contains("CA SHA256:") && line.contains("host key SHA256:"),
        "both fingerprints: {line}"
    );
    assert_eq!(agent.count("tunnel up"), 0);
    assert!(
        !jail.log().contains("publickey"),
        "the device offered its key to a refused jail:\n{}",
        jail.log()
    );
}

#[test]
fn a_host_certificate_from_a_trusted_ca_is_accepted_by_cert_authority_or_host_ca() {
    let (dir, state, listen, line) = authorized_device("hostcert-ok");
    let (ca, ca_pub) = new_ca(&dir, "ca");
    let jail = cert_jail(listen, &line, &ca, "127.0.0.1", "-5m:+1h");
    // known_hosts holds the CA and nothing of the jail's own key.
    let agent = with_known_hosts(
        &dir,
        &state,
        listen,
        &jail,
        &format!("@cert-authority [127.0.0.1]:{} {}\n", jail.port, ca_pub),
    );
    agent.wait_log("tunnel up", READY);
    assert!(
        agent.count("signed by trusted CA") >= 1,
        "{:#?}",
        agent.lines()
    );
    drop(agent);
    // The same CA given as --host-ca (the image carries the fleet's CA only).
    let agent = run_agent(&state, listen, &jail, &["--host-ca", &ca_key(&ca_pub)], &[]);
    agent.wait_log("tunnel up", READY);
    drop(agent);
    // A certificate listing no principals is valid for any name (ssh(1)).
    let any = cert_jail(listen, &line, &ca, "", "-5m:+1h");
    let agent = run_agent(&state, listen, &any, &["--host-ca", &ca_key(&ca_pub)], &[]);
    agent.wait_log("tunnel up", READY);
}

#[test]
fn a_pin_stays_exclusive_and_a_failing_certificate_falls_back_to_a_listed_plain_key() {
    let (dir, state, listen, line) = authorized_device("hostcert-pin");
    let (ca, ca_pub) = new_ca(&dir, "ca");
    let (_, stranger) = new_ca(&dir, "stranger");
    let jail = cert_jail(listen, &line, &ca, "127.0.0.1", "-2h:-1h");
    // --host-key pins another key: a CA beside it widens nothing.
    let agent = run_agent(
        &state,
        listen,
        &jail,
        &[
            "--host-key",
            &ca_key(&stranger),
            "--host-ca",
            &ca_key(&ca_pub),
        ],
        &[],
    );
    agent.wait_log("retrying in", READY);
    assert_eq!(agent.count("tunnel up"), 0, "{:#?}", agent.lines());
    drop(agent);
    // An expired certificate, but known_hosts also lists the jail's plain key:
    // as ssh(1), the key is then checked as a plain key and trusted.
    let agent = with_known_hosts(
        &dir,
        &state,
        listen,
        &jail,
        &format!("@cert-authority * {ca_pub}\n{}\n", jail.known_hosts_line()),
    );
    agent.wait_log("tunnel up", READY);
    agent.wait_log("trusted as a plain key", READY);
    drop(agent);
    // A revoked certificate (its -cert.pub pasted after @revoked) revokes its
    // key, and a revocation gets no plain-key retry.
    let fresh = cert_jail(listen, &line, &ca, "127.0.0.1", "-5m:+1h");
    let cert_line =
        std::fs::read_to_string(fresh.dir.path("ssh_host_ed25519_key-cert.pub")).unwrap();
    let agent = with_known_hosts(
        &dir,
        &state,
        listen,
        &fresh,
        &format!(
            "@cert-authority * {ca_pub}\n{}\n@revoked * {}\n",
            fresh.known_hosts_line(),
            cert_line.trim()
        ),
    );
    refused(&agent, &fresh, "its host key is marked @revoked");
}

#[test]
fn without_a_ca_the_agent_asks_for_and_checks_the_plain_key() {
    // The jail has a certificate, but the device knows only its plain key: the
    // agent does not ask for certificates and the plain line matches.
    let (dir, state, listen, line) = authorized_device("hostcert-plain");
    let (ca, _) = new_ca(&dir, "ca");
    let jail = cert_jail(listen, &line, &ca, "127.0.0.1", "-5m:+1h");
    let agent = run_agent(&state, listen, &jail, &["--host-key", &plain(&jail)], &[]);
    agent.wait_log("tunnel up", READY);
    assert_eq!(agent.count("host certificate"), 0, "{:#?}", agent.lines());
}

#[test]
fn certificates_failing_a_rule_are_refused_before_the_device_offers_its_key() {
    let (dir, state, listen, line) = authorized_device("hostcert-bad");
    let (ca, ca_pub) = new_ca(&dir, "ca");
    let (_, other_pub) = new_ca(&dir, "other-ca");
    let cases: [(&str, &str, &str, &str); 4] = [
        // principals, validity, known_hosts CA line's key, rule
        (
            "127.0.0.1",
            "-5m:+1h",
            &other_pub,
            "signed by a CA not trusted",
        ),
        (
            "jail-b.example",
            "-5m:+1h",
            &ca_pub,
            "127.0.0.1 is not among its principals",
        ),
        ("127.0.0.1", "-2h:-1h", &ca_pub, "expired"),
        ("127.0.0.1", "+1h:+2h", &ca_pub, "not yet valid"),
    ];
    for (principals, validity, trusted, rule) in cases {
        let jail = cert_jail(listen, &line, &ca, principals, validity);
        let agent = with_known_hosts(
            &dir,
            &state,
            listen,
            &jail,
            &format!("@cert-authority * {trusted}\n"),
        );
        refused(&agent, &jail, rule);
    }
    // Revoked: the CA, then the jail's own key, marked @revoked beside a trusted CA.
    let jail = cert_jail(listen, &line, &ca, "127.0.0.1", "-5m:+1h");
    for (revoked, rule) in [
        (ca_key(&ca_pub), "its CA is marked @revoked"),
        (plain(&jail), "its host key is marked @revoked"),
    ] {
        let agent = with_known_hosts(
            &dir,
            &state,
            listen,
            &jail,
            &format!("@cert-authority * {ca_pub}\n@revoked * {revoked}\n"),
        );
        refused(&agent, &jail, rule);
    }
}

/// libfaketime, which fakes the clock of a dynamically linked program.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[test]
fn a_board_without_a_clock_gets_home_and_checks_the_window_once_the_clock_is_set() {
    // A static or emulated agent (JAILBIRD_TEST_RUNNER, cross builds) ignores
    // LD_PRELOAD: this case is for the host build.
    if std::env::var_os("JAILBIRD_TEST_RUNNER").is_some() {
        eprintln!("skipped: an emulated or static agent ignores LD_PRELOAD");
        return;
    }
    assert!(
        Path::new(FAKETIME_LIB).exists(),
        "{FAKETIME_LIB} missing: scripts/test-setup.sh installs faketime"
    );
    let (dir, state, listen, line) = authorized_device("hostcert-rtc");
    let (ca, ca_pub) = new_ca(&dir, "ca");
    // Valid from in an hour to in two days: "not yet valid" by the real clock.
    let jail = cert_jail(listen, &line, &ca, "127.0.0.1", "+1h:+2d");
    // The device's clock reads 1970-01-02 (no RTC, no NTP yet).
    let clock = dir.path("faketime");
    std::fs::write(&clock, "@1970-01-02 00:00:00\n").unwrap();
    let env = [
        ("LD_PRELOAD", FAKETIME_LIB),
        ("FAKETIME_TIMESTAMP_FILE", clock.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    let agent = run_agent(
        &state,
        listen,
        &jail,
        &["--host-ca", &ca_key(&ca_pub)],
        &env,
    );
    agent.wait_log("tunnel up", READY);
    agent.wait_log("checked once the clock is set", READY);
    // NTP answers: the clock jumps to a week from now, after the certificate
    // expired. The agent notices within CLOCK_RECHECK and drops the link; the
    // next attempt checks the certificate in full and is refused.
    let week = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 7 * 86_400;
    let date =
        run_ok(Command::new("date").args(["-u", "-d", &format!("@{week}"), "+%Y-%m-%d %H:%M:%S"]));
    std::fs::write(&clock, format!("@{}\n", date.trim())).unwrap();
    agent.wait_log("expired now that the clock is set", READY);
    agent.wait_log("host certificate refused: expired", READY);
    assert_eq!(agent.count("tunnel up"), 1);
}

#[test]
fn a_bad_host_ca_is_one_line_and_exit_2() {
    let (_dir, state, _, _) = authorized_device("hostcert-flag");
    let (s, _, err) = jailbird(&[
        "run",
        "--state",
        &state,
        "-R",
        "2222:127.0.0.1:22",
        "--host-ca",
        "ssh-ed25519 AAAA",
        "jail.example",
    ]);
    assert_eq!(s.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--host-ca"), "{err}");
}

// ---------------------------------------------------------------------------
// The device logging in with a user certificate (--certificate)
// ---------------------------------------------------------------------------

/// Signs the device key of `state` as a user certificate for the jail user
/// (`ssh-keygen -s CA -I ... -n USER -V VALIDITY`); returns its path.
fn sign_device(dir: &TempDir, ca: &Path, state: &str, name: &str, validity: &str) -> PathBuf {
    let (s, key, err) = jailbird(&["key", "--state", state]);
    assert!(s.success(), "{err}");
    let public = dir.path(&format!("{name}.pub"));
    std::fs::write(&public, key).unwrap();
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-s"])
            .arg(ca)
            .args(["-I", name, "-n", &jail_user(), "-V", validity])
            .arg(&public),
    );
    dir.path(&format!("{name}-cert.pub"))
}

/// A jail that trusts `ca` for user certificates and has no authorized_keys
/// line for the device: only a certificate gets it in.
fn user_ca_jail(dir: &TempDir, listen: u16, ca_pub: &str) -> Jail {
    let ca_file = dir.path("user_ca.pub");
    std::fs::write(&ca_file, format!("{ca_pub}\n")).unwrap();
    let (_, stranger) = keygen(dir, "stranger");
    let mut opts = JailOpts::new(listen, &stranger);
    opts.extra = format!("TrustedUserCAKeys {}\n", ca_file.display());
    Jail::start(opts)
}

#[test]
fn the_device_logs_in_with_its_user_certificate_and_waits_out_an_expired_one() {
    let (dir, state, listen, _) = authorized_device("usercert");
    let (ca, ca_pub) = new_ca(&dir, "user-ca");
    let jail = user_ca_jail(&dir, listen, &ca_pub);
    let trust = ["--host-key".to_string(), plain(&jail)];
    // The plain key alone is refused (nothing in authorized_keys) ...
    let agent = run_agent(&state, listen, &jail, &[&trust[0], &trust[1]], &[]);
    agent.wait_log("refused key", READY);
    drop(agent);
    // ... the certificate of that key gets in.
    let cert = sign_device(&dir, &ca, &state, "device", "-5m:+1h");
    let c = cert.to_str().unwrap();
    let agent = run_agent(
        &state,
        listen,
        &jail,
        &[&trust[0], &trust[1], "--certificate", c],
        &[],
    );
    agent.wait_log("tunnel up", READY);
    assert!(
        agent.count("logging in with certificate") == 1,
        "{:#?}",
        agent.lines()
    );
    drop(agent);
    // Expired: one line, retried with backoff; a renewer replaces the file and
    // the next attempt gets in.
    let old = sign_device(&dir, &ca, &state, "old", "-2h:-1h");
    std::fs::copy(&old, &cert).unwrap();
    let agent = run_agent(
        &state,
        listen,
        &jail,
        &[&trust[0], &trust[1], "--certificate", c],
        &[],
    );
    agent.wait_log("expired", READY);
    agent.wait_log("retrying in", READY);
    let renewed = sign_device(&dir, &ca, &state, "renewed", "-5m:+1h");
    std::fs::copy(&renewed, &cert).unwrap();
    agent.wait_log("tunnel up", READY);
}

#[test]
fn a_certificate_of_another_key_is_one_line_and_exit_2() {
    let (dir, state, _, _) = authorized_device("usercert-other");
    let (other_dir, other_state, _, _) = authorized_device("usercert-stranger");
    let (ca, _) = new_ca(&dir, "user-ca");
    let cert = sign_device(&other_dir, &ca, &other_state, "stranger", "-5m:+1h");
    let (s, _, err) = jailbird(&[
        "run",
        "--state",
        &state,
        "--host-key",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        "--certificate",
        cert.to_str().unwrap(),
        "-R",
        "2222:127.0.0.1:22",
        "127.0.0.1:1",
    ]);
    assert_eq!(s.code(), Some(2), "{err}");
    // One error line (beside the agent's log records, which start with `[`).
    let errors: Vec<&str> = err.lines().filter(|l| !l.starts_with('[')).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].contains("not this device's key"), "{err}");
}
