//! Zero-touch enrolment against a real OpenSSH jail: the claim account's
//! forced command is a small shell script standing in for `warden
//! claim-serve` (it checks the request it reads on stdin, counts its calls
//! and prints a canned answer); the answer names a real tunnel account on the
//! same sshd, and the agent must hold its tunnel with nothing but the token,
//! its trust in the jail and the jail's address.
#![cfg(feature = "claim")]

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The claim account (scripts/test-setup.sh makes it, with /bin/sh as shell).
const CLAIM_USER: &str = "jbclaim";
/// The token the script expects.
const TOKEN: &str = "jbc1-s3cret-Tok3n";

/// The stand-in for `warden claim-serve`: checks the request line by line
/// (the wire format's shape, the token, the host-key line equal to the
/// device's .pub), keeps a copy and a call count in `spool/`, and prints
/// `spool/answer`, or `refused malformed` for a request that fails a check
/// (noting which in `spool/errors`).
const SCRIPT: &str = r#"#!/bin/sh
d="$1"
n=$(cat "$d/calls" 2>/dev/null || echo 0)
echo $((n + 1)) > "$d/calls"
fail() { echo "$1" >> "$d/errors"; printf 'jailbird-claim 1\nrefused malformed\n'; exit 1; }
[ "$SSH_ORIGINAL_COMMAND" = "jailbird-claim 1" ] || fail "command: $SSH_ORIGINAL_COMMAND"
head -c 4096 > "$d/request"
[ "$(sed -n 1p "$d/request")" = "jailbird-claim 1" ] || fail "hello"
[ "$(sed -n 2p "$d/request")" = "token $(cat "$d/token")" ] || fail "token"
sed -n 3p "$d/request" | grep -Eqx 'mac [0-9a-f]{2}(:[0-9a-f]{2}){5}' || fail "mac"
[ "$(grep -c '^host-key ' "$d/request")" = 1 ] || fail "host-key count"
[ "$(grep '^host-key ' "$d/request")" = "host-key $(cut -d' ' -f1,2 "$d/device.pub")" ] || fail "host-key"
[ "$(wc -l < "$d/request")" = 4 ] || fail "line count"
cat "$d/answer"
"#;

/// A jail with a tunnel account (the device's `authorize` line for a free
/// port) and a claim account whose forced command is [`SCRIPT`].
struct ClaimJail {
    dir: TempDir,
    state: String,
    listen: u16,
    jail: Jail,
    spool: PathBuf,
    device_pub: PathBuf,
}

impl ClaimJail {
    fn start() -> ClaimJail {
        let (dir, state, listen, line) = authorized_device("claim");
        let spool = dir.path("spool");
        std::fs::create_dir(&spool).unwrap();
        run_ok(std::process::Command::new("chmod").arg("0777").arg(&spool));
        let script = dir.path("claim-serve.sh");
        std::fs::write(&script, SCRIPT).unwrap();
        run_ok(std::process::Command::new("chmod").arg("0755").arg(&script));
        std::fs::write(spool.join("token"), TOKEN).unwrap();
        let (device_key, _) = keygen(&dir, "device_host_key");
        let device_pub = device_key.with_extension("pub");
        std::fs::copy(&device_pub, spool.join("device.pub")).unwrap();
        // Whatever key it offers, the claim account gets the forced command
        // (as `warden authorized-keys` answers for it).
        let device_line = line.split("command=\"/bin/false\" ").nth(1).unwrap();
        let claim_keys = dir.path("claim_keys");
        let forced = format!("{} {}", script.display(), spool.display());
        std::fs::write(
            &claim_keys,
            format!("restrict,command=\"{forced}\" {device_line}\n"),
        )
        .unwrap();
        let mut opts = JailOpts::new(listen, &line);
        opts.extra = format!(
            "AllowUsers {CLAIM_USER}\n\
             Match User {CLAIM_USER}\n\
             \tAuthorizedKeysFile {keys}\n\
             \tForceCommand {forced}\n\
             \tExposeAuthInfo yes\n\
             \tPermitTTY no\n\
             \tAllowTcpForwarding no\n\
             \tAllowStreamLocalForwarding no\n\
             \tX11Forwarding no\n\
             \tPermitTunnel no\n",
            keys = claim_keys.display(),
        );
        let jail = Jail::start(opts);
        ClaimJail {
            dir,
            state,
            listen,
            jail,
            spool,
            device_pub,
        }
    }

    /// The accepted answer: this jail's tunnel account, port and host key.
    fn ok_answer(&self, target_port: u16) -> String {
        format!(
            "jailbird-claim 1\nok\ndevice b827eb123456\nport {}\nuser {}\ntarget 127.0.0.1:{target_port}\njail 127.0.0.1 {} {}\n",
            self.listen,
            self.jail.user,
            self.jail.port,
            key_words(&self.jail.host_key_line),
        )
    }

    fn set_answer(&self, answer: &[u8]) {
        std::fs::write(self.spool.join("answer"), answer).unwrap();
    }

    fn calls(&self) -> usize {
        std::fs::read_to_string(self.spool.join("calls"))
            .map(|s| s.trim().parse().unwrap())
            .unwrap_or(0)
    }

    fn errors(&self) -> String {
        std::fs::read_to_string(self.spool.join("errors")).unwrap_or_default()
    }

    fn status(&self) -> PathBuf {
        self.dir.path("status")
    }

    /// The agent with nothing but the token, trust in the jail and its address.
    fn spawn_agent(&self) -> Agent {
        let kh = self.jail.known_hosts_file(&self.dir);
        let dest = format!("127.0.0.1:{}", self.jail.port);
        Agent::spawn(
            &[
                "run",
                "--state",
                &self.state,
                "--known-hosts",
                &kh.display().to_string(),
                "--status-file",
                &self.status().display().to_string(),
                "--claim-user",
                CLAIM_USER,
                "--device-host-key",
                &self.device_pub.display().to_string(),
                &dest,
            ],
            &[("JAILBIRD_CLAIM", TOKEN)],
        )
    }
}

/// `TYPE BASE64` of a key line.
fn key_words(line: &str) -> String {
    line.split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Stops the agent with SIGTERM; it exits 0.
fn stop(agent: &mut Agent) {
    agent.signal("TERM");
    assert!(agent.wait_exit(Duration::from_secs(5)).success());
}

/// Nothing the agent said or wrote holds the token.
fn assert_no_token(agent: &Agent, status: &Path) {
    for l in agent.lines() {
        assert!(!l.contains(TOKEN), "token in a log line: {l}");
    }
    assert!(!read(status).contains(TOKEN), "token in the status file");
}

#[test]
fn a_token_enrols_the_device_and_its_tunnel_comes_up_and_stays_enrolled() {
    let c = ClaimJail::start();
    let echo = Echo::start();
    c.set_answer(c.ok_answer(echo.port).as_bytes());
    let mut agent = c.spawn_agent();
    let up = agent.wait_log("tunnel up", READY);
    assert!(
        up.contains(&format!(
            "tunnel up jail=127.0.0.1:{} listen=localhost:{} target=127.0.0.1:{}",
            c.jail.port, c.listen, echo.port
        )),
        "{up}"
    );
    assert_eq!(c.errors(), "", "the request failed the script's checks");
    assert_eq!(c.calls(), 1);
    let data = pattern(64 * 1024, 7);
    assert_eq!(sha256(&echo_roundtrip(c.listen, &data)), sha256(&data));
    let mac = agent.wait_log("claim: MAC ", READY);
    assert!(mac.contains(" of ") && mac.contains('('), "{mac}");
    assert!(read(&c.status()).starts_with("state=up\n"));
    assert_no_token(&agent, &c.status());
    let state = std::fs::read(&c.state).unwrap();
    assert_eq!(
        (&state[..4], state[4]),
        (&b"JBRD"[..], 2),
        "format version 2"
    );
    stop(&mut agent);

    // Restarted with the same token: the stored enrolment, no claim.
    let mut agent = c.spawn_agent();
    agent.wait_log("tunnel up", READY);
    let line = agent.wait_log("the claim token is not used", READY);
    assert!(line.contains("b827eb123456"), "{line}");
    assert_eq!(c.calls(), 1, "claimed again");
    assert_eq!(sha256(&echo_roundtrip(c.listen, &data)), sha256(&data));
    assert_no_token(&agent, &c.status());
    stop(&mut agent);
    assert_eq!(std::fs::read(&c.state).unwrap(), state, "state rewritten");
}

#[test]
fn each_refusal_is_one_line_in_the_log_and_the_status_file_and_writes_no_state() {
    let c = ClaimJail::start();
    let before = std::fs::read(&c.state).unwrap();
    for (word, words) in [
        ("unknown", "no such token"),
        ("expired", "the token has expired"),
        ("used-up", "the token is used up"),
        ("revoked", "the token was revoked"),
        (
            "wrong-pool",
            "the token is for another pool than this jail's",
        ),
        (
            "mac-prefix",
            "this device's MAC is outside the token's MAC prefix",
        ),
        ("malformed", "the jail could not parse the request"),
        (
            "conflict",
            "this device id, MAC or key is already enrolled to another device",
        ),
        (
            "rate-limited",
            "too many refusals from this address recently",
        ),
        (
            "bogus-Word",
            "reason \"bogus-ord\" (unknown to this jailbird)",
        ),
    ] {
        c.set_answer(format!("jailbird-claim 1\nrefused {word}\n").as_bytes());
        let calls = c.calls();
        let mut agent = c.spawn_agent();
        let want = format!("claim refused by 127.0.0.1:{}: {words}", c.jail.port);
        let line = agent.wait_log(&want, READY);
        assert!(line.contains("; retrying in "), "{line}");
        wait_until(READY, "the refusal in the status file", || {
            let s = read(&c.status());
            (s.starts_with("state=down\n") && s.contains(&format!("reason={want}"))).then_some(s)
        });
        let word = word.replace('W', "");
        assert!(
            read(&c.status()).contains(&format!("\nclaim=refused:{word}\n")),
            "{}",
            read(&c.status())
        );
        assert_eq!(agent.count("claim refused by"), 1, "{word}");
        assert_eq!(c.calls(), calls + 1);
        assert_eq!(agent.count("tunnel up"), 0);
        assert_no_token(&agent, &c.status());
        stop(&mut agent);
        assert_eq!(
            std::fs::read(&c.state).unwrap(),
            before,
            "{word}: state written"
        );
    }
    assert_eq!(c.errors(), "");
}

#[test]
fn an_unusable_answer_is_refused_with_one_line_and_writes_no_state() {
    let c = ClaimJail::start();
    let before = std::fs::read(&c.state).unwrap();
    let good = c.ok_answer(9);
    let mut oversized = b"jailbird-claim 1\nok\n".to_vec();
    oversized.resize(9000, b'a');
    oversized.push(b'\n');
    for (answer, want) in [
        (oversized, "larger than 8192 bytes"),
        (
            b"\x00\x01\xff\xfe garbage \x1b[2J".to_vec(),
            "not printable ASCII",
        ),
        (good.as_bytes()[..good.len() / 2].to_vec(), "truncated"),
        (
            good.replace(&format!("user {}", c.jail.user), "user ../../etc")
                .into_bytes(),
            "line 5: not a user name",
        ),
        (
            good.replace("port ", "shell /bin/sh\nport ").into_bytes(),
            "line 4: unknown key",
        ),
    ] {
        c.set_answer(&answer);
        let mut agent = c.spawn_agent();
        let prefix = format!("claim answer from 127.0.0.1:{} refused: ", c.jail.port);
        let line = agent.wait_log(&prefix, READY);
        assert!(line.contains(want), "{line}");
        assert_eq!(agent.count(&prefix), 1);
        wait_until(READY, "the refusal in the status file", || {
            read(&c.status())
                .contains(&format!("reason={prefix}"))
                .then_some(())
        });
        assert_eq!(agent.count("tunnel up"), 0);
        stop(&mut agent);
        assert_eq!(
            std::fs::read(&c.state).unwrap(),
            before,
            "{want}: state written"
        );
    }
}

#[test]
fn an_unknown_jail_host_key_is_never_trusted_for_the_claim() {
    let c = ClaimJail::start();
    c.set_answer(c.ok_answer(9).as_bytes());
    let dest = format!("127.0.0.1:{}", c.jail.port);
    // No trust source at all: the claim is not sent.
    let agent = Agent::spawn(
        &[
            "run",
            "--state",
            &c.state,
            "--claim-user",
            CLAIM_USER,
            &dest,
        ],
        &[("JAILBIRD_CLAIM", TOKEN)],
    );
    let line = agent.wait_log("is not known", READY);
    assert!(line.contains(&format!("jail {dest} host key")), "{line}");
    assert_eq!(c.calls(), 0);
}

#[test]
fn a_version_1_state_file_still_loads_and_claims() {
    let c = ClaimJail::start();
    // The fixture's key is not the one authorized: it must load, and say
    // which key it logs in with (its fingerprint is the fixture's).
    let dir = TempDir::new("claim-v1");
    let state = dir.path("identity");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/state-v1"),
        &state,
    )
    .unwrap();
    run_ok(std::process::Command::new("chmod").arg("0600").arg(&state));
    let (ok, out, err) = jailbird(&["key", "--state", &state.display().to_string()]);
    assert!(ok.success(), "{err}");
    let want = read(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/state-v1.pub"
    )));
    assert!(out.starts_with(want.trim()), "{out}");
    c.set_answer(c.ok_answer(9).as_bytes());
    let kh = c.jail.known_hosts_file(&dir);
    let agent = Agent::spawn(
        &[
            "run",
            "--state",
            &state.display().to_string(),
            "--known-hosts",
            &kh.display().to_string(),
            "--claim-user",
            CLAIM_USER,
            &format!("127.0.0.1:{}", c.jail.port),
        ],
        &[("JAILBIRD_CLAIM", TOKEN)],
    );
    // Another key than the one the claim account lets in: refused at login.
    let line = agent.wait_log("refused key", READY);
    assert!(line.contains(CLAIM_USER), "{line}");
}

/// A second jail (another sshd, unknown to the configured trust) whose tunnel
/// account lets the claim's device forward `listen`; the answer naming it with
/// `key` (`TYPE BASE64`).
fn second_jail(c: &ClaimJail, echo_port: u16, key: Option<&str>) -> (Jail, u16, String) {
    let listen = free_port();
    let (ok, line, err) = jailbird(&[
        "authorize",
        "--state",
        &c.state,
        "--listen",
        &listen.to_string(),
    ]);
    assert!(ok.success(), "{err}");
    let j2 = Jail::start(JailOpts::new(listen, &line));
    let key = key.map_or_else(|| key_words(&j2.host_key_line), str::to_string);
    let answer = format!(
        "jailbird-claim 1\nok\ndevice b827eb123456\nport {listen}\nuser {}\ntarget 127.0.0.1:{echo_port}\njail 127.0.0.1 {} {key}\n",
        j2.user, j2.port,
    );
    (j2, listen, answer)
}

#[test]
fn the_answers_jail_host_keys_are_pinned() {
    // The answer names a jail no configured source knows, with its key: the
    // key from the answer is what makes it trusted.
    let c = ClaimJail::start();
    let echo = Echo::start();
    let (j2, listen, answer) = second_jail(&c, echo.port, None);
    c.set_answer(answer.as_bytes());
    let mut agent = c.spawn_agent();
    let up = agent.wait_log("tunnel up", READY);
    assert!(up.contains(&format!("jail=127.0.0.1:{}", j2.port)), "{up}");
    let data = pattern(16 * 1024, 3);
    assert_eq!(sha256(&echo_roundtrip(listen, &data)), sha256(&data));
    stop(&mut agent);

    // The same jail named with another key (the claim jail's): refused as a
    // changed key, never up.
    let c = ClaimJail::start();
    let wrong = key_words(&c.jail.host_key_line);
    let (j2, _, answer) = second_jail(&c, echo.port, Some(&wrong));
    c.set_answer(answer.as_bytes());
    let agent = c.spawn_agent();
    let line = agent.wait_log("jail host key changed", READY);
    assert!(line.contains(&format!("127.0.0.1:{}", j2.port)), "{line}");
    assert_eq!(agent.count("tunnel up"), 0);
}
