//! The device identity file through the real binary: created 0600 and stable,
//! never rewritten when it cannot be decoded.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

#[test]
fn key_is_created_0600_small_and_stable_across_runs() {
    let dir = TempDir::new("key");
    let state = dir.path("sub/identity");
    std::fs::create_dir_all(state.parent().unwrap()).unwrap();
    let state = state.display().to_string();
    let (s1, out1, err1) = jailbird(&["key", "--state", &state]);
    assert!(s1.success(), "{err1}");
    let meta = std::fs::metadata(&state).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(meta.len() < 1024, "state file is {} bytes", meta.len());
    let bytes = std::fs::read(&state).unwrap();
    let (s2, out2, _) = jailbird(&["key", "--state", &state]);
    assert!(s2.success());
    assert_eq!(out1, out2, "the key changed between runs");
    assert_eq!(
        std::fs::read(&state).unwrap(),
        bytes,
        "a second run rewrote the file"
    );
    let line = out1.trim();
    assert!(
        line.starts_with("ssh-ed25519 AAAA") && line.contains(" jailbird@"),
        "{line}"
    );
    // ssh-keygen agrees it is a valid public key.
    let pubfile = dir.path("k.pub");
    std::fs::write(&pubfile, format!("{line}\n")).unwrap();
    let fp = run_ok(
        std::process::Command::new("ssh-keygen")
            .arg("-lf")
            .arg(&pubfile),
    );
    assert!(fp.contains("SHA256:") && fp.contains("ED25519"), "{fp}");
    // No temp files left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path("sub"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn corrupt_state_file_is_left_byte_identical_with_exit_2() {
    let dir = TempDir::new("corrupt");
    let state = dir.path("identity").display().to_string();
    assert!(jailbird(&["key", "--state", &state]).0.success());
    let good = std::fs::read(&state).unwrap();
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("bit flip", flipped),
        ("truncated", good[..good.len() - 3].to_vec()),
        ("garbage", b"-----BEGIN OPENSSH PRIVATE KEY-----\n".to_vec()),
        ("empty", Vec::new()),
        ("huge", vec![b'J'; 4096]),
    ];
    for (what, bytes) in cases {
        std::fs::write(&state, &bytes).unwrap();
        for args in [
            vec!["key", "--state", &state],
            vec!["authorize", "--state", &state, "--listen", "2022"],
            vec![
                "run",
                "--state",
                &state,
                "-R",
                "2022:127.0.0.1:22",
                "--host-key",
                "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
                "u@127.0.0.1:1",
            ],
        ] {
            let (status, out, err) = jailbird(&args);
            assert_eq!(status.code(), Some(2), "{what} {args:?}: {err}");
            assert!(out.is_empty(), "{what}: printed {out}");
            let err_lines: Vec<_> = err.lines().filter(|l| l.starts_with("jailbird:")).collect();
            assert_eq!(err_lines.len(), 1, "{what}: {err}");
            assert!(
                err_lines[0].contains(&state),
                "{what}: message does not name the path: {err}"
            );
            assert_eq!(
                std::fs::read(&state).unwrap(),
                bytes,
                "{what}: the file was touched"
            );
        }
    }
}

#[test]
fn unreadable_directory_is_a_clear_error() {
    let dir = TempDir::new("nodir");
    let state = dir.path("missing-dir/identity").display().to_string();
    let (status, _, err) = jailbird(&["key", "--state", &state]);
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains(&state) && err.contains("cannot write"),
        "{err}"
    );
}

#[test]
fn identity_file_from_ssh_keygen_is_used_as_is() {
    let dir = TempDir::new("idfile");
    let (key, public) = keygen(&dir, "device");
    let before = std::fs::read(&key).unwrap();
    let (status, out, err) = jailbird(&["key", "--identity-file", key.to_str().unwrap()]);
    assert!(status.success(), "{err}");
    let want: Vec<_> = public.split_whitespace().take(2).collect();
    let got: Vec<_> = out.split_whitespace().take(2).collect();
    assert_eq!(got, want);
    assert_eq!(std::fs::read(&key).unwrap(), before);
    let (status, _, err) =
        jailbird(&["key", "--identity-file", dir.path("nope").to_str().unwrap()]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn an_encrypted_identity_file_is_one_line_and_exit_2() {
    let dir = TempDir::new("encrypted");
    let key = dir.path("id_ed25519");
    run_ok(
        std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
            .arg(&key),
    );
    let before = std::fs::read(&key).unwrap();
    let (s, _, err) = jailbird(&["key", "--identity-file", key.to_str().unwrap()]);
    assert_eq!(s.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("encrypted") && err.contains("id_ed25519"),
        "{err}"
    );
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn authorize_line_is_restricted_to_one_listen_port() {
    let dir = TempDir::new("auth");
    let state = dir.path("identity").display().to_string();
    let (status, out, err) = jailbird(&[
        "authorize",
        "--state",
        &state,
        "--listen",
        "2022",
        "--comment",
        "pi-7",
    ]);
    assert!(status.success(), "{err}");
    let line = out.trim();
    assert!(line.starts_with(
        "restrict,port-forwarding,permitlisten=\"localhost:2022\",permitlisten=\"127.0.0.1:2022\",permitopen=\"255.255.255.255:9\",command=\"/bin/false\" ssh-ed25519 "
    ), "{line}");
    assert!(line.ends_with(" pi-7"), "{line}");
    let (_, key, _) = jailbird(&["key", "--state", &state]);
    assert!(line.contains(key.split_whitespace().nth(1).unwrap()));
    let (status, _, err) = jailbird(&["authorize", "--state", &state, "--listen", "port"]);
    assert_eq!(status.code(), Some(2));
    assert!(err.contains("--listen"), "{err}");
}

#[test]
fn bad_usage_exits_2_with_one_line() {
    for args in [
        vec!["run", "--frobnicate"],
        vec!["launch"],
        vec!["run", "-R", "2022", "j"],
        vec!["run", "-o", "ServerAliveInterval=x", "-R", "1:h:2", "j"],
    ] {
        let (status, _, err) = jailbird(&args);
        assert_eq!(status.code(), Some(2), "{args:?}");
        assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
    }
}

/// Environment variable that turns [`durability_writer_child`] into a writer.
const WRITER_ENV: &str = "JAILBIRD_TEST_DURABILITY_WRITER";
/// SIGKILLed writers in the durability test.
const KILL_TRIALS: usize = 240;

/// Not a test on its own (hence ignored): the durability test re-runs this
/// binary with `--ignored` and WRITER_ENV set; this then writes two states (A, B)
/// as reference files, says "ready", and rewrites the state file alternating A
/// and B until it is killed.
#[test]
#[ignore = "helper process for a_writer_killed_at_random_moments_never_leaves_a_bad_state_file"]
fn durability_writer_child() {
    let Ok(path) = std::env::var(WRITER_ENV) else {
        return;
    };
    use jailbird::identity::{State, write_atomic};
    let path = std::path::PathBuf::from(path);
    let states = [State::generate().unwrap(), State::generate().unwrap()];
    for (i, s) in states.iter().enumerate() {
        write_atomic(&path.with_extension(format!("ref{i}")), s, true).unwrap();
    }
    println!("ready");
    for i in 0.. {
        let replace = path.exists();
        write_atomic(&path, &states[i % 2], replace).unwrap();
    }
}

#[test]
fn a_writer_killed_at_random_moments_never_leaves_a_bad_state_file() {
    use std::io::BufRead;
    let dir = TempDir::new("durability");
    let path = dir.path("identity");
    let rng = ring::rand::SystemRandom::new();
    let (mut old, mut complete, mut absent) = (0, 0, 0);
    for trial in 0..KILL_TRIALS {
        // Every fourth trial starts without a file: the create path (link) is hit too.
        if trial % 4 == 0 {
            let _ = std::fs::remove_file(&path);
        }
        let before = std::fs::read(&path).ok();
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "durability_writer_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("ready") {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "writer died early");
        }
        let mut b = [0u8; 2];
        ring::rand::SecureRandom::fill(&rng, &mut b).unwrap();
        // 0..=8 ms: one write (temp, fsync, rename, dir fsync) takes about that long.
        std::thread::sleep(Duration::from_micros(
            u64::from(u16::from_ne_bytes(b)) % 8000,
        ));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let refs: Vec<Vec<u8>> = (0..2)
            .map(|i| std::fs::read(path.with_extension(format!("ref{i}"))).unwrap())
            .collect();
        match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                assert!(before.is_none(), "trial {trial}: the file vanished");
                absent += 1;
            }
            Err(e) => panic!("trial {trial}: {e}"),
            Ok(bytes) => {
                jailbird::identity::decode_bytes(&bytes)
                    .unwrap_or_else(|e| panic!("trial {trial}: state file does not decode: {e}"));
                if before.as_ref() == Some(&bytes) {
                    old += 1;
                } else {
                    assert!(
                        refs.contains(&bytes),
                        "trial {trial}: neither the old nor a complete new state"
                    );
                    complete += 1;
                }
            }
        }
        // Killed writers leave at most their own temp file, which the next writer sweeps.
        let temps = std::fs::read_dir(&dir.0)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".identity.tmp")
            })
            .count();
        assert!(temps <= 1, "trial {trial}: {temps} stale temp files");
    }
    eprintln!(
        "figures: {KILL_TRIALS} SIGKILLed writers: {old} left the old file, {complete} a complete new one, {absent} none (create not reached); 0 undecodable"
    );
    assert!(
        complete > 0 && old + absent > 0,
        "the kills never landed mid-write"
    );
}

/// `jailbird key --state STATE` must exit 2 with one line naming the file and
/// `why`, print nothing on stdout, and not panic.
fn key_fails_with_one_line(state: &str, why: &str) {
    let (st, out, err) = jailbird(&["key", "--state", state]);
    assert_eq!(st.code(), Some(2), "{err}");
    assert!(out.is_empty());
    let line = err.trim();
    assert!(!line.contains('\n') && !err.contains("panicked"), "{err}");
    assert!(line.contains(state) && line.contains(why), "{line}");
}

/// A small tmpfs mounted for one test (root only), unmounted on drop.
struct SmallFs(TempDir);

impl SmallFs {
    fn mount(tag: &str, opts: &str) -> SmallFs {
        let d = TempDir::new(tag);
        run_ok(
            std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
                .arg(&d.0),
        );
        SmallFs(d)
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0.0).status();
    }
}

#[test]
fn read_only_or_full_filesystem_is_a_clear_error_not_a_panic() {
    // Read-only: the identity cannot be created.
    let ro = SmallFs::mount("rofs", "ro,size=64k");
    let state = ro.0.path("identity").display().to_string();
    key_fails_with_one_line(&state, "Read-only file system");

    // Full: the filesystem has no room left for the temp file.
    let full = SmallFs::mount("fullfs", "size=16k");
    let filler = full.0.path("filler");
    let _ = std::fs::write(&filler, vec![0u8; 64 * 1024]); // fills it (ENOSPC expected)
    let state = full.0.path("identity").display().to_string();
    key_fails_with_one_line(&state, "No space left");
    // Nothing half-written is left behind.
    assert!(!std::path::Path::new(&state).exists());
    let left: Vec<_> = std::fs::read_dir(&full.0.0)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, vec![std::ffi::OsString::from("filler")]);
}

#[test]
fn a_key_file_others_can_read_is_refused_and_left_alone() {
    let dir = TempDir::new("unprotected");
    let state = dir.path("identity").display().to_string();
    let (s, _, err) = jailbird(&["key", "--state", &state]);
    assert!(s.success(), "{err}");
    let (ossh, _) = keygen(&dir, "openssh_key");
    for (flag, path) in [
        ("--state", state.clone()),
        ("--identity-file", ossh.display().to_string()),
    ] {
        let before = std::fs::read(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (s, out, err) = jailbird(&["key", flag, &path]);
        assert_eq!(s.code(), Some(2), "{flag} 0644 accepted: {out}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("UNPROTECTED PRIVATE KEY FILE") && err.contains(&path),
            "{err}"
        );
        assert_eq!(
            std::fs::read(&path).unwrap(),
            before,
            "{flag}: file changed"
        );
        // Back to 0600: accepted again (so the refusal above is about the mode).
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let (s, _, err) = jailbird(&["key", flag, &path]);
        assert!(s.success(), "{flag} 0600: {err}");
    }
}

#[test]
fn the_agent_never_dumps_core() {
    let s = Setup::new();
    let echo = Echo::start();
    let agent = s.spawn_agent(echo.port, &[]);
    agent.wait_log("tunnel up", READY);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", agent.child.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let f: Vec<&str> = core.split_whitespace().collect();
    assert_eq!((f[4], f[5]), ("0", "0"), "{core}");
}

/// `jailbird run` with `state`, pinning `jail`'s host key on first use,
/// forwarding the jail's `listen` to `target` on loopback.
fn accept_new_agent(state: &str, jail: &Jail, listen: u16, target: u16) -> Agent {
    let fwd = format!("{listen}:127.0.0.1:{target}");
    Agent::spawn(
        &[
            "run",
            "--state",
            state,
            "-o",
            "StrictHostKeyChecking=accept-new",
            "-R",
            &fwd,
            &jail.destination(),
        ],
        &[],
    )
}

#[test]
fn root_uses_a_service_accounts_key_and_leaves_it_the_services() {
    // On a device whose service runs as its own user, `jailbird key` and
    // `authorize` as root must work, and a pin saved by root keeps the
    // service's ownership (else the service could no longer read its key).
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    use std::os::unix::fs::MetadataExt;
    let (dir, state, listen, line) = authorized_device("service-owned");
    let (s, before, _) = jailbird(&["key", "--state", &state]);
    assert!(s.success());
    const NOBODY: u32 = 65534;
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOBODY)).unwrap();
    let (s, after, err) = jailbird(&["key", "--state", &state]);
    assert!(s.success(), "root refused a service-owned key: {err}");
    assert_eq!(before, after);
    let jail = Jail::start(JailOpts::new(listen, &line));
    let echo = Echo::start();
    let agent = accept_new_agent(&state, &jail, listen, echo.port);
    agent.wait_log("tunnel up", READY);
    let st = jailbird::identity::decode_bytes(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(st.pins.len(), 1, "the pin was not saved");
    let m = std::fs::metadata(&state).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), m.mode() & 0o777),
        (NOBODY, NOBODY, 0o600)
    );
    // The lock root created is the service's too (else its next pin fails).
    let lock = std::fs::metadata(format!("{state}.lock")).unwrap();
    assert_eq!((lock.uid(), lock.gid()), (NOBODY, NOBODY));
    drop(dir);
}

#[test]
fn agents_sharing_a_state_file_keep_each_others_pins() {
    // Two agents, one state file, accept-new, each to its own jail, started
    // together: both load the file before either pins. Each pin is merged
    // under a lock with what is on disk, so neither overwrites the other.
    let (dir, state, listen_a, line_a) = authorized_device("pins");
    let listen_b = free_port();
    let (s, line_b, err) = jailbird(&[
        "authorize",
        "--state",
        &state,
        "--listen",
        &listen_b.to_string(),
    ]);
    assert!(s.success(), "{err}");
    let jail_a = Jail::start(JailOpts::new(listen_a, &line_a));
    let jail_b = Jail::start(JailOpts::new(listen_b, &line_b));
    let echo = Echo::start();
    let run = |jail: &Jail, listen: u16| accept_new_agent(&state, jail, listen, echo.port);
    let a = run(&jail_a, listen_a);
    let b = run(&jail_b, listen_b);
    a.wait_log("tunnel up", READY);
    b.wait_log("tunnel up", READY);
    let bytes = std::fs::read(&state).unwrap();
    let st = jailbird::identity::decode_bytes(&bytes).unwrap();
    let names: Vec<&str> = st.pins.iter().map(|p| p.jail.as_str()).collect();
    for j in [&jail_a, &jail_b] {
        let name = format!("127.0.0.1:{}", j.port);
        assert!(
            names.contains(&name.as_str()),
            "pin for {name} lost: {names:?}"
        );
    }
    drop(dir);
}
