//! A jail sized for a fleet: what `warden sshd-config` sets for many devices
//! behind one NAT address, proved against a real OpenSSH that has per-source
//! penalties (9.8+; Debian backports' 10.0, unpacked by
//! scripts/openssh-backports.sh, since the host's 9.2 has none). The fleet
//! simulator (benches/fleet_sim.py) measures the rest.

mod common;
use common::*;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The newer sshd scripts/test-setup.sh unpacked.
fn new_sshd() -> PathBuf {
    let root = PathBuf::from("/var/cache/jailbird-test/openssh-backports");
    let sshd = root.join("usr/sbin/sshd");
    assert!(
        sshd.exists(),
        "{} missing: run scripts/test-setup.sh (scripts/openssh-backports.sh)",
        sshd.display()
    );
    sshd
}

/// Starts `sshd` (a binary outside /usr/sbin, with its helpers beside it)
/// on a jail made of warden's drop-in `dropin`.
fn start_jail(dir: &TempDir, sshd: &Path, dropin: &str, port: u16) -> std::process::Child {
    let libexec = sshd.parent().unwrap().parent().unwrap().join("lib/openssh");
    std::fs::write(dir.path("warden.conf"), dropin).unwrap();
    let cfg = dir.path("sshd_config");
    std::fs::write(
        &cfg,
        format!(
            "Include {}\nListenAddress 127.0.0.1:{port}\nHostKey {}\nPidFile none\nUsePAM no\n\
             SshdSessionPath {}\nSshdAuthPath {}\n",
            dir.path("warden.conf").display(),
            dir.path("host_key").display(),
            libexec.join("sshd-session").display(),
            libexec.join("sshd-auth").display(),
        ),
    )
    .unwrap();
    let log = dir.path(&format!("sshd-{port}.log"));
    let _ = std::fs::create_dir_all("/run/sshd");
    let child = Command::new(sshd)
        .args(["-D", "-e", "-f"])
        .arg(&cfg)
        .stdin(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap();
    agent::wait_sshd_ready(child, &log, port, true).unwrap()
}

/// `warden sshd-config` for jail `jail-a`, made for `sshd`.
fn dropin_for(reg: &Registry, sshd: &Path) -> String {
    let bin = warden_bin();
    reg.ok(&[
        "sshd-config",
        "--jail",
        "jail-a",
        "--binary",
        bin.to_str().unwrap(),
        "--sshd",
        sshd.to_str().unwrap(),
    ])
}

/// Logs in as the device account: 1 is `ForceCommand /bin/false` after a
/// successful login, 255 a refusal (or a refused connection).
fn login(key: &Path, port: u16) -> (i32, String) {
    let (code, _, err) = split(
        agent::ssh_client(key)
            .args([
                "-o",
                "ConnectTimeout=10",
                "-o",
                "LogLevel=ERROR",
                "-p",
                &port.to_string(),
            ])
            .arg(format!("{}@127.0.0.1", tunnel_user()))
            .arg("true")
            .output()
            .unwrap(),
    );
    (code, err)
}

/// Every device of a site comes from one address. Revoked devices there keep
/// retrying (the agent never gives up); with OpenSSH's default penalties
/// (`authfail:5s`, enforced from 15 s accrued) four failed logins lock the
/// whole address out, the site's good devices with it. warden's drop-in
/// holds only crashes against an address: the good device still logs in.
/// The same run with the default penalties shows the lock-out (the test can
/// tell the difference).
#[test]
fn revoked_devices_behind_one_nat_address_do_not_lock_out_the_site() {
    require_root();
    let sshd = new_sshd();
    for warden_settings in [true, false] {
        let reg = Registry::new(Kind::Sqlite);
        let dir = TempDir::new("scale");
        let (_, host_line) = keygen(&dir, "host_key");
        let port = free_port();
        reg.pool("site", "23000-23009");
        reg.ok(&[
            "jail",
            "add",
            "jail-a",
            "--address",
            &format!("127.0.0.1:{port}"),
            "--host-key",
            &host_line,
            "--pool",
            "site",
            "--user",
            &tunnel_user(),
            "--operator-user",
            OPERATOR_USER,
        ]);
        let (good, good_line) = keygen(&dir, "good");
        reg.ok(&["enroll", "GOOD0001", "--key", &good_line]);
        let mut revoked = Vec::new();
        for i in 0..3 {
            let (k, line) = keygen(&dir, &format!("revoked{i}"));
            let id = format!("REVOKED{i}");
            reg.ok(&["enroll", &id, "--key", &line]);
            reg.ok(&["revoke", &id, "--reason", "stolen"]);
            revoked.push(k);
        }
        let mut dropin = dropin_for(&reg, &sshd);
        assert!(
            dropin.contains(
                "\nPerSourcePenalties crash:90s authfail:0s noauth:0s grace-exceeded:0s\n"
            ),
            "{dropin}"
        );
        if !warden_settings {
            dropin = dropin
                .lines()
                .filter(|l| !l.starts_with("PerSource"))
                .map(|l| format!("{l}\n"))
                .collect();
        }
        let mut jail = start_jail(&dir, &sshd, &dropin, port);
        assert_eq!(login(&good, port).0, 1, "the good device logs in at first");
        // The revoked devices retry, twice each: 6 failed logins, 30 s of default penalty.
        for k in revoked.iter().chain(revoked.iter()) {
            assert_eq!(login(k, port).0, 255, "a revoked device got in");
        }
        let (code, err) = login(&good, port);
        kill_group(jail.id());
        let _ = jail.wait();
        if warden_settings {
            assert_eq!(
                code, 1,
                "warden's drop-in: the site's good device was locked out: {err}"
            );
        } else {
            assert_eq!(
                code, 255,
                "OpenSSH's default penalties were expected to lock the address out (is the sshd 9.8+?)"
            );
        }
    }
}

/// On the host's OpenSSH 9.2 the drop-in has no per-source lines (9.2 would
/// refuse to start on an unknown keyword) and sshd accepts it.
#[test]
fn the_drop_in_suits_the_sshd_it_was_made_for() {
    require_root();
    let reg = Registry::new(Kind::Sqlite);
    reg.pool("site", "23010-23019");
    reg.ok(&[
        "jail",
        "add",
        "jail-a",
        "--address",
        "127.0.0.1:2222",
        "--host-key",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDy+bCVfu7cGOH8rT5Xw8R8qHxdm2l+FjpUCUbC3ThuM",
        "--pool",
        "site",
        "--user",
        &tunnel_user(),
        "--operator-user",
        OPERATOR_USER,
    ]);
    for (sshd, has) in [(PathBuf::from("/usr/sbin/sshd"), false), (new_sshd(), true)] {
        let dropin = dropin_for(&reg, &sshd);
        assert_eq!(
            dropin.contains("\nPerSourcePenalties "),
            has,
            "{}: {dropin}",
            sshd.display()
        );
        let dir = TempDir::new("scale-t");
        std::fs::write(dir.path("warden.conf"), &dropin).unwrap();
        let (_, _) = keygen(&dir, "host_key");
        let libexec = sshd.parent().unwrap().parent().unwrap().join("lib/openssh");
        let mut cfg = format!(
            "Include {}\nHostKey {}\nUsePAM no\n",
            dir.path("warden.conf").display(),
            dir.path("host_key").display()
        );
        if has {
            cfg += &format!(
                "SshdSessionPath {}\nSshdAuthPath {}\n",
                libexec.join("sshd-session").display(),
                libexec.join("sshd-auth").display()
            );
        }
        std::fs::write(dir.path("sshd_config"), cfg).unwrap();
        let out = Command::new(&sshd)
            .arg("-t")
            .arg("-f")
            .arg(dir.path("sshd_config"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} -t refused the drop-in: {}",
            sshd.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No sshd there: a comment says what to add, nothing sshd would refuse.
    let dropin = dropin_for(&reg, Path::new("/nonexistent/sshd"));
    assert!(
        dropin.contains("# cannot run /nonexistent/sshd -V"),
        "{dropin}"
    );
    assert!(!dropin.contains("\nPerSourcePenalties "), "{dropin}");
}
