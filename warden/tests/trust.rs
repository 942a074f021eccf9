//! What warden takes from its surroundings and must not trust: links planted
//! among the SQLite registry's files by the unprivileged account that owns
//! their directory, and who the environment says is acting.

mod common;
use common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

both_backends!(the_audit_actor_comes_from_the_system_not_the_environment);

/// A root-owned file the command user must never get: (path, its content).
fn victim(dir: &TempDir, name: &str) -> std::path::PathBuf {
    let p = dir.path(name);
    std::fs::write(&p, "root's secret\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn untouched(p: &Path) {
    let m = std::fs::metadata(p).unwrap();
    assert_eq!(m.uid(), 0, "{} was handed to uid {}", p.display(), m.uid());
    assert_eq!(std::fs::read_to_string(p).unwrap(), "root's secret\n");
}

#[test]
fn a_registry_file_that_is_a_link_is_refused_and_its_target_untouched() {
    for suffix in ["-shm", "-wal", ""] {
        let reg = Registry::new(Kind::Sqlite);
        let dir = TempDir::new("victim");
        reg.ok(&["pool", "add", "p1", "--ports", "10000-10099"]);
        let target = victim(&dir, "shadow");
        let mut link = reg.sqlite_path().into_os_string();
        link.push(suffix);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let (_, k) = key(&dir);
        let (code, _, err) = reg.warden(&["enroll", "d1", "--key", &k]);
        assert_ne!(code, 0, "{suffix}: enrolled through a link");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("symbolic link"), "{suffix}: {err}");
        untouched(&target);
        // A hard link to a root file is refused the same way.
        std::fs::remove_file(&link).unwrap();
        if suffix.is_empty() {
            continue;
        }
        let hard = victim(&dir, "hard");
        std::fs::hard_link(&hard, &link).unwrap();
        let (code, _, err) = reg.warden(&["enroll", "d1", "--key", &k]);
        assert_ne!(code, 0, "{suffix}: enrolled through a hard link");
        assert!(err.contains("hard link"), "{err}");
        untouched(&hard);
    }
}

/// The race itself: the files are fine when warden opens the registry, and
/// a link replaces one before root hands the files to the command user.
#[test]
fn the_ownership_fix_up_never_follows_a_link_swapped_in_after_open() {
    let reg = Registry::new(Kind::Sqlite);
    let dir = TempDir::new("victim");
    reg.ok(&["pool", "add", "p1", "--ports", "10000-10099"]);
    let url = warden::store::conn::DbUrl::parse(&reg.url).unwrap();
    let c = warden::store::conn::Conn::open(&url, warden::store::conn::Mode::Admin).unwrap();
    let target = victim(&dir, "shadow");
    for suffix in ["-shm", "-wal"] {
        let mut link = reg.sqlite_path().into_os_string();
        link.push(suffix);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).unwrap();
    }
    c.fix_ownership();
    untouched(&target);
    // The database itself, still a plain file, did go to the directory's owner.
    let owner = std::fs::metadata(reg.sqlite_path().parent().unwrap())
        .unwrap()
        .uid();
    assert_eq!(std::fs::metadata(reg.sqlite_path()).unwrap().uid(), owner);
}

fn the_audit_actor_comes_from_the_system_not_the_environment(kind: Kind) {
    let reg = Registry::new(kind);
    // Root, claiming to be someone else in every variable there is.
    let out = reg
        .warden_cmd(&["pool", "add", "p1", "--ports", "10000-10099"])
        .env("USER", OPERATOR_USER)
        .env("LOGNAME", OPERATOR_USER)
        .env("SUDO_USER", "alice")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The unprivileged command user, claiming to be root.
    if kind == Kind::Sqlite {
        let out = Command::new("runuser")
            .args(["-u", COMMAND_USER, "--", "env", "USER=root", "LOGNAME=root"])
            .arg(warden_bin())
            .args([
                "--db",
                &reg.url,
                "pool",
                "add",
                "p2",
                "--ports",
                "20000-20099",
            ])
            .env_remove("SUDO_USER")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let audit = reg.ok(&["audit", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&audit).unwrap();
    let actors: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["actor"].as_str().unwrap())
        .collect();
    assert!(
        actors[0].starts_with("root (sudo from alice, claimed)"),
        "{actors:?}"
    );
    assert!(
        !actors.iter().any(|a| a.contains(OPERATOR_USER)),
        "{actors:?}"
    );
    if kind == Kind::Sqlite {
        assert_eq!(actors[1], COMMAND_USER, "{actors:?}");
    } else {
        assert!(actors[0].ends_with("[db role postgres]"), "{actors:?}");
    }
}
