//! Unix-socket reverse forwards (seed 003's zero-code jumphost) through a real
//! OpenSSH jail with AllowStreamLocalForwarding remote and StreamLocalBindUnlink yes.
#![cfg(feature = "streamlocal")]

mod common;
use common::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// A jail for unix-socket forwards (seed 003), a directory the tunnel user may
/// create sockets in, and a state file whose key the jail accepts.
struct SocketJail {
    dir: TempDir,
    state: String,
    socks: std::path::PathBuf,
    jail: Jail,
}

impl SocketJail {
    fn start(tag: &str) -> SocketJail {
        let dir = TempDir::new(tag);
        let state = dir.path("identity").display().to_string();
        let socks = dir.path("socks");
        std::fs::create_dir(&socks).unwrap();
        run_ok(std::process::Command::new("chmod").arg("0777").arg(&socks));
        let (status, line, err) =
            jailbird(&["authorize", "--state", &state, "--listen", "/x.sock"]);
        assert!(status.success(), "{err}");
        // permitlisten covers TCP only: a socket listen gets none.
        assert!(
            line.starts_with("restrict,port-forwarding,permitopen=\"255.255.255.255:9\",command=\"/bin/false\" ssh-ed25519 "),
            "{line}"
        );
        let jail = Jail::start(JailOpts {
            streamlocal: true,
            ..JailOpts::new(1, &line)
        });
        SocketJail {
            dir,
            state,
            socks,
            jail,
        }
    }
}

fn socket_roundtrip(path: &std::path::Path, data: &[u8]) -> Option<Vec<u8>> {
    let mut s = UnixStream::connect(path).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(20))).ok()?;
    let mut w = s.try_clone().ok()?;
    let owned = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&owned);
        let _ = w.shutdown(std::net::Shutdown::Write);
    });
    let mut back = Vec::new();
    s.read_to_end(&mut back).ok()?;
    writer.join().ok()?;
    Some(back)
}

#[test]
fn socket_forward_carries_data_and_a_killed_agent_is_replaced_at_once() {
    let SocketJail {
        dir,
        state,
        socks,
        jail,
    } = SocketJail::start("sock");
    let kh = jail.known_hosts_file(&dir);
    let echo = Echo::start();
    let template = format!("{}/%h-%i.sock", socks.display());
    let status_file = dir.path("status").display().to_string();
    let args = [
        "run",
        "--state",
        &state,
        "--known-hosts",
        kh.to_str().unwrap(),
        "--status-file",
        &status_file,
        "-R",
        &format!("{template}:127.0.0.1:{}", echo.port),
        &jail.destination(),
    ];
    let mut first = Agent::spawn(&args, &[]);
    let up = first.wait_log("tunnel up", READY);
    let listen = up
        .split_whitespace()
        .find_map(|w| w.strip_prefix("listen="))
        .unwrap()
        .to_string();
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string();
    assert!(
        listen.starts_with(&format!("{}/{hostname}-", socks.display()))
            && listen.ends_with(".sock"),
        "{listen}"
    );
    let id = listen.rsplit('-').next().unwrap().trim_end_matches(".sock");
    assert_eq!(id.len(), 16, "{listen}");
    let path = std::path::PathBuf::from(&listen);
    let data = pattern(1 << 20, 61);
    assert_eq!(socket_roundtrip(&path, &data).unwrap(), data);

    // SIGKILL: no clean disconnect, the jail's old session still holds the socket.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let second = Agent::spawn(&args, &[]);
    let t = Instant::now();
    second.wait_log("tunnel up", READY);
    let small = pattern(4096, 62);
    wait_until(
        Duration::from_secs(10),
        "the new agent to serve the socket",
        || (socket_roundtrip(&path, &small).as_deref() == Some(&small[..])).then_some(()),
    );
    let took = t.elapsed();
    eprintln!("socket taken over {took:?} after the new agent started");
    assert!(took <= Duration::from_secs(5), "took {took:?}");
}

#[test]
fn operator_reaches_the_device_sshd_with_proxycommand_nc_u() {
    let SocketJail {
        dir,
        state,
        socks,
        jail,
    } = SocketJail::start("sockssh");
    let kh = jail.known_hosts_file(&dir);
    let device = DeviceSshd::start();
    let sock = socks.join("device-7.sock");
    let spec = format!("{}:127.0.0.1:{}", sock.display(), device.port);
    let agent = Agent::spawn(
        &[
            "run",
            "--state",
            &state,
            "--known-hosts",
            kh.to_str().unwrap(),
            "-R",
            &spec,
            &jail.destination(),
        ],
        &[],
    );
    agent.wait_log("tunnel up", READY);
    // As in seed 003: ssh -o ProxyCommand='nc -U /home/host/HOSTNAME.sock' device
    let proxy = format!("ProxyCommand=nc -U {}", sock.display());
    assert_eq!(
        device.operator_ssh(&["-o", &proxy], "device-7", "echo via-socket"),
        "via-socket\n"
    );
}
