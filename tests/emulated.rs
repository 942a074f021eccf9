//! The path a cross-built binary must walk, run by scripts/test-cross.sh with
//! JAILBIRD_TEST_BIN and JAILBIRD_TEST_RUNNER pointing at an emulated binary
//! (it also runs against the host binary in the normal suite): create the key,
//! hold `run -R` through a real OpenSSH jail, carry data intact both ways.

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
