//! The path a cross-built binary must walk, run by scripts/test-cross.sh with
//! JAILBIRD_TEST_BIN and JAILBIRD_TEST_RUNNER pointing at an emulated binary
//! (it also runs against the host binary in the normal suite): create the key,
//! hold `run -R` through a real OpenSSH jail, carry data intact both ways;
//! and read a state file the host build wrote (and the host one it wrote):
//! the identity survives a move between little- and big-endian machines.

mod common;
use common::*;

#[test]
fn key_then_tunnel_then_bytes_intact() {
    let s = Setup::new();
    let (status, key, err) = jailbird(&["key", "--state", &s.state]);
    assert!(status.success(), "{err}");
    assert!(
        s.jail
            .opts
            .authorized_keys
            .contains(key.split_whitespace().nth(1).unwrap())
    );
    let echo = Echo::start();
    let agent = s.spawn_agent(echo.port, &[]);
    agent.wait_log("tunnel up", std::time::Duration::from_secs(60));
    let data = pattern(2 << 20, 42);
    assert_eq!(sha256(&echo_roundtrip(s.listen, &data)), sha256(&data));
}

/// The state file is postcard, bytes rather than machine words: one written by
/// the host build (x86_64, little-endian) loads on the build under test (under
/// scripts/test-cross.sh: big-endian MIPS too) as the same key, and the file is
/// left as it was; and the other way round.
#[test]
fn state_file_is_the_same_identity_on_either_endianness() {
    let dir = TempDir::new("endian");
    let host = |args: &[&str]| {
        let out = std::process::Command::new(built_agent())
            .args(args)
            .env_remove("JAILBIRD_STATE")
            .output()
            .expect("run the host jailbird");
        assert!(
            out.status.success(),
            "host: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let under_test = |args: &[&str]| {
        let (status, out, err) = jailbird(args);
        assert!(status.success(), "under test: {err}");
        out
    };

    // Written by one build, read by the other: the same key, the file unchanged.
    type Run<'a> = &'a dyn Fn(&[&str]) -> String;
    for (name, write, read) in [
        ("written-by-host", &host as Run, &under_test as Run),
        ("written-under-test", &under_test as Run, &host as Run),
    ] {
        let state = dir.path(name).display().to_string();
        let key = write(&["key", "--state", &state]);
        assert!(key.starts_with("ssh-ed25519 "), "{name}: {key}");
        let bytes = std::fs::read(&state).unwrap();
        assert_eq!(read(&["key", "--state", &state]), key, "{name}");
        assert_eq!(
            std::fs::read(&state).unwrap(),
            bytes,
            "{name}: state file rewritten"
        );
    }
}
