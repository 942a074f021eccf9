//! `warden watch`: which devices hold their port on this jail, read from the
//! kernel's own table of listening sockets, written to the registry; and the
//! end of any sshd session that still holds a revoked device's port.

use crate::error::Error;
use crate::store::conn::{Conn, DbUrl, Mode};
use crate::store::{self, Jail};
use crate::types::{DeviceId, Name, PortRange};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The interval when `--interval` is not given (contract).
pub const DEFAULT_INTERVAL_SECS: u64 = 5;
/// Largest /proc/net/tcp{,6} read (a jail with 20,000 sockets is ~3 MB).
pub const MAX_PROC_NET_BYTES: u64 = 64 << 20;

/// A listening TCP socket: its port, owner uid and inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listener {
    pub port: u16,
    pub uid: u32,
    pub inode: u64,
}

/// Parses `/proc/net/tcp` or `/proc/net/tcp6` text: loopback listeners only
/// (sshd binds a device's forward on loopback; `GatewayPorts no`).
pub fn parse_proc_net(text: &str) -> Vec<Listener> {
    loopback_sockets(text, LISTEN, LOCAL)
        .map(|(port, uid, inode)| Listener { port, uid, inode })
        .collect()
}

/// An established TCP connection from this host to a loopback port: what an
/// operator's `ssh -W localhost:PORT` session holds while it reaches a device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outgoing {
    pub remote_port: u16,
    pub uid: u32,
    pub inode: u64,
}

/// Parses `/proc/net/tcp{,6}` text: ESTABLISHED connections to loopback.
pub fn parse_proc_net_outgoing(text: &str) -> Vec<Outgoing> {
    loopback_sockets(text, ESTABLISHED, REMOTE)
        .filter(|&(_, _, inode)| inode != 0)
        .map(|(remote_port, uid, inode)| Outgoing {
            remote_port,
            uid,
            inode,
        })
        .collect()
}

/// /proc/net/tcp states and address columns.
const LISTEN: &str = "0A";
const ESTABLISHED: &str = "01";
const LOCAL: usize = 1;
const REMOTE: usize = 2;

/// The sockets in `state` whose address in column `column` (LOCAL or
/// REMOTE) is on loopback: (that address's port, owner uid, inode).
fn loopback_sockets<'a>(
    text: &'a str,
    state: &'a str,
    column: usize,
) -> impl Iterator<Item = (u16, u32, u64)> + 'a {
    text.lines().skip(1).filter_map(move |line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[3] != state {
            return None;
        }
        let (addr, port) = f[column].split_once(':')?;
        if !is_loopback_hex(addr) {
            return None;
        }
        Some((
            u16::from_str_radix(port, 16).ok()?,
            f[7].parse().ok()?,
            f[9].parse().ok()?,
        ))
    })
}

/// A /proc/net address (hex, in the kernel's byte order) on loopback.
fn is_loopback_hex(addr: &str) -> bool {
    match addr.len() {
        // 127.0.0.0/8, stored little-endian: the last byte pair is the first octet.
        8 => addr.ends_with("7F"),
        // ::1, or ::ffff:127.x.y.z.
        32 => {
            addr == "00000000000000000000000001000000"
                || (addr.starts_with("0000000000000000FFFF0000") && addr.ends_with("7F"))
        }
        _ => false,
    }
}

fn read_capped(p: &Path) -> String {
    use std::io::Read;
    let mut s = String::new();
    if let Ok(f) = std::fs::File::open(p) {
        let _ = f.take(MAX_PROC_NET_BYTES).read_to_string(&mut s);
    }
    s
}

/// The uid of a local account.
pub fn uid_of(user: &str) -> Option<u32> {
    crate::store::conn::account(user).map(|a| a.uid)
}

fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn is_descendant(mut pid: u32, ancestor: u32) -> bool {
    for _ in 0..64 {
        if pid == ancestor {
            return true;
        }
        match parent_of(pid) {
            Some(p) if p >= 1 => pid = p,
            _ => return false,
        }
    }
    false
}

/// Which process holds each socket inode of `inodes`, searching only the
/// processes of `uid` (a device's sshd session runs as the tunnel user).
fn holders(inodes: &BTreeSet<u64>, uid: u32) -> BTreeMap<u64, u32> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if e.metadata().map(|m| m.uid()).ok() != Some(uid) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let t = target.to_string_lossy();
            if let Some(n) = t
                .strip_prefix("socket:[")
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|n| n.parse::<u64>().ok())
                && inodes.contains(&n)
            {
                out.insert(n, pid);
            }
        }
    }
    out
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// One look at the kernel's listeners: the ports of `range` held on loopback
/// by `uid` (and, with `sshd_pid`, by a descendant of that sshd), each with
/// the pid holding it.
pub fn held_ports(
    range: PortRange,
    uid: u32,
    sshd_pid: Option<u32>,
    proc_net: &[PathBuf],
) -> BTreeMap<u16, (u32, u64)> {
    let mut listeners = Vec::new();
    for p in proc_net {
        listeners.extend(parse_proc_net(&read_capped(p)));
    }
    listeners.retain(|l| l.uid == uid && range.contains(l.port));
    let inodes: BTreeSet<u64> = listeners.iter().map(|l| l.inode).collect();
    let pids = holders(&inodes, uid);
    let mut out = BTreeMap::new();
    for l in listeners {
        let Some(&pid) = pids.get(&l.inode) else {
            continue; // its process is gone already
        };
        if let Some(root) = sshd_pid
            && !is_descendant(pid, root)
        {
            continue; // another jail's sshd on this host
        }
        out.insert(l.port, (pid, l.inode));
    }
    out
}

/// Whether `pid` still holds socket `inode` (a pid can be reused between a
/// look and a kill).
fn holds(pid: u32, inode: u64) -> bool {
    let want = format!("socket:[{inode}]");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.flatten().any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == want.as_str())
            })
        })
        .unwrap_or(false)
}

pub struct WatchArgs<'a> {
    pub db: &'a DbUrl,
    pub jail: &'a Name,
    pub interval: Duration,
    /// The jail sshd's pid file, when several sshds share this host.
    pub sshd_pid_file: Option<&'a Path>,
    /// Stop after this many ticks (tests, cron); `None` runs forever.
    pub ticks: Option<u64>,
}

fn log(msg: &str) {
    eprintln!("{msg}");
}

/// Runs the watch loop.
pub fn watch(a: &WatchArgs) -> Result<(), Error> {
    let proc_net = [
        PathBuf::from("/proc/net/tcp"),
        PathBuf::from("/proc/net/tcp6"),
    ];
    let mut conn: Option<Conn> = None;
    let mut n = 0u64;
    loop {
        let result = (|| -> Result<(), Error> {
            if conn.is_none() {
                conn = Some(Conn::open(a.db, Mode::Admin)?);
            }
            let c = conn.as_mut().expect("connected above");
            let jail: Jail = store::jail(c, a.jail)?;
            let range = store::pools(c)?
                .into_iter()
                .find(|p| p.name == jail.pool)
                .map(|p| p.range)
                .ok_or_else(|| {
                    Error::runtime(format!("jail {} names a missing pool", jail.name))
                })?;
            let uid = uid_of(jail.user.as_str()).ok_or_else(|| {
                Error::runtime(format!(
                    "jail {}: no local account {}",
                    jail.name, jail.user
                ))
            })?;
            let sshd_pid = match a.sshd_pid_file {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok())
                        .ok_or_else(|| {
                            Error::runtime(format!("sshd pid file {}: unreadable", p.display()))
                        })?,
                ),
                None => None,
            };
            let held = held_ports(range, uid, sshd_pid, &proc_net);
            let ports: BTreeSet<u16> = held.keys().copied().collect();
            let tick = store::record_presence(c, &jail, &ports)?;
            for id in &tick.came_online {
                log(&format!("online: {id} at jail {}", jail.name));
            }
            for id in &tick.went_offline {
                log(&format!("offline: {id} at jail {}", jail.name));
            }
            for e in &tick.bad_rows {
                log(&format!("watch: {e}"));
            }
            end_device_sessions(c, &tick, &held)?;
            end_operator_sessions(c, &jail, range, sshd_pid, &proc_net)?;
            Ok(())
        })();
        crate::watch_metrics::tick(result.is_ok());
        if let Err(e) = result {
            log(&format!("watch: {e}"));
            conn = None; // reconnect next tick
        }
        n += 1;
        if a.ticks.is_some_and(|t| n >= t) {
            return Ok(());
        }
        std::thread::sleep(a.interval);
    }
}

/// Ends the device-side sessions this jail must not keep: a revoked device's;
/// one that started before its device's current key was enrolled (an old key
/// after `enroll --replace`, or the previous owner of a reassigned port); and
/// one on a pool port no device owns. Each is audited.
fn end_device_sessions(
    c: &mut Conn,
    tick: &store::Tick,
    held: &BTreeMap<u16, (u32, u64)>,
) -> Result<(), Error> {
    for (id, port) in &tick.revoked_holding {
        let who = format!("revoked device {id}");
        end_session(
            c,
            Some(id),
            &who,
            *port,
            held.get(port).copied(),
            "device revoked",
        )?;
    }
    for (id, port, enrolled) in &tick.holding {
        let Some(&(pid, inode)) = held.get(port) else {
            continue;
        };
        if started(pid).is_some_and(|t| older_than_key(t, *enrolled)) {
            let who = format!("device {id} (a session older than its current key)");
            let why = "session older than the current key";
            end_session(c, Some(id), &who, *port, Some((pid, inode)), why)?;
        }
    }
    for p in &tick.strays {
        let who = format!("port {p}'s holder (no device owns the port)");
        end_session(
            c,
            None,
            &who,
            *p,
            held.get(p).copied(),
            "port owned by no device",
        )?;
    }
    Ok(())
}

/// Whether a session that started at `start_ms` (Unix milliseconds, from
/// [`process_start_ms`]) is older than a key enrolled at `enrolled` (Unix
/// seconds). A re-key records the next whole second (see `store::enroll`),
/// so an old key's session is never taken for the new key's.
pub fn older_than_key(start_ms: i64, enrolled: i64) -> bool {
    start_ms < enrolled.saturating_mul(1000)
}

/// When a process started, in Unix milliseconds: from its `/proc/PID/stat`
/// text (field 22, clock ticks since boot), the clock tick rate
/// (`sysconf(_SC_CLK_TCK)`) and the boot time in Unix milliseconds.
pub fn process_start_ms(stat: &str, hz: u64, boot_ms: i64) -> Option<i64> {
    // Fields start after the command name's last ')': the state is field 3.
    let ticks: u64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(22 - 3)?
        .parse()
        .ok()?;
    let ms = ticks.checked_mul(1000)?.checked_div(hz)?;
    boot_ms.checked_add(i64::try_from(ms).ok()?)
}

/// The boot time in Unix milliseconds: the realtime clock less the time
/// since boot (`/proc/stat`'s `btime` is the same, rounded down to seconds,
/// too coarse to order a session and a key enrolled in the same second).
fn boot_ms() -> Option<i64> {
    let ms = |clock| {
        let mut t = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime(2) writes one timespec we own.
        (unsafe { libc::clock_gettime(clock, &mut t) } == 0)
            .then(|| t.tv_sec * 1000 + t.tv_nsec / 1_000_000)
    };
    Some(ms(libc::CLOCK_REALTIME)? - ms(libc::CLOCK_BOOTTIME)?)
}

/// When `pid` started, in Unix milliseconds.
fn started(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // SAFETY: sysconf with a constant name has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    process_start_ms(&stat, u64::try_from(hz).ok()?, boot_ms()?)
}

/// Ends the sshd session holding `port` (SIGTERM to the session's process,
/// which sshd's monitor follows), and audits it with `why`.
fn end_session(
    c: &mut Conn,
    id: Option<&DeviceId>,
    who: &str,
    port: u16,
    holder: Option<(u32, u64)>,
    why: &str,
) -> Result<(), Error> {
    let Some((pid, inode)) = holder else {
        return Ok(());
    };
    match signal_holder(pid, inode) {
        Signalled::Done => {}
        Signalled::Gone => return Ok(()), // gone meanwhile
        Signalled::NotSshd(name) => {
            log(&format!(
                "{who}: port {port} is held by pid {pid} ({name}), not sshd: left alone"
            ));
            return Ok(());
        }
        Signalled::Failed => {
            log(&format!(
                "could not end the session of {who} (sshd pid {pid})"
            ));
            return Ok(());
        }
    }
    log(&format!(
        "ended the session of {who} (port {port}, sshd pid {pid}): {why}"
    ));
    crate::watch_metrics::session_ended(match why {
        "device revoked" => "revoked",
        "port owned by no device" => "stray_port",
        _ => "old_key",
    });
    c.transaction(|c| {
        store::audit(
            c,
            "end-session",
            id.map(DeviceId::as_str),
            Some(why),
            Some(&format!("port {port} sshd pid {pid}")),
        )
    })?;
    Ok(())
}

/// What [`signal_holder`] did.
#[derive(Debug, PartialEq, Eq)]
enum Signalled {
    /// SIGTERM sent to the process that holds the socket.
    Done,
    /// The process is gone, or no longer holds the socket.
    Gone,
    /// The holder is not sshd (its name): left alone.
    NotSshd(String),
    /// The signal could not be sent.
    Failed,
}

/// SIGTERM to `pid` if it still holds socket `inode` and is sshd's. The
/// process is pinned by a pidfd taken before that check, so the signal cannot
/// reach another process that reused the pid meanwhile (plain kill(2) only
/// where the kernel has no pidfd_open).
fn signal_holder(pid: u32, inode: u64) -> Signalled {
    let fd = match PidFd::open(pid) {
        Ok(fd) => Some(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => None,
        Err(_) => return Signalled::Gone,
    };
    if !holds(pid, inode) {
        return Signalled::Gone;
    }
    let name = comm(pid);
    // OpenSSH 9.8 and later run each session as `sshd-session`.
    if name != "sshd" && name != "sshd-session" {
        return Signalled::NotSshd(name);
    }
    let sent = match &fd {
        Some(fd) => fd.signal(libc::SIGTERM),
        None => kill(pid, libc::SIGTERM),
    };
    if sent {
        Signalled::Done
    } else {
        Signalled::Failed
    }
}

/// A process pinned by its pidfd: signals reach it or nothing.
struct PidFd(std::os::fd::OwnedFd);

impl PidFd {
    fn open(pid: u32) -> std::io::Result<PidFd> {
        use std::os::fd::FromRawFd;
        let pid = libc::pid_t::try_from(pid)
            .ok()
            .filter(|&p| p > 1)
            .ok_or_else(|| std::io::Error::from_raw_os_error(libc::ESRCH))?;
        // SAFETY: pidfd_open(2) takes a pid and flags; it returns a new fd or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let fd = std::os::fd::RawFd::try_from(fd)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EBADF))?;
        // SAFETY: `fd` is a descriptor just opened here and owned by nothing else.
        Ok(PidFd(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    fn signal(&self, sig: libc::c_int) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: pidfd_send_signal(2) on a pidfd we own, no siginfo, no flags.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.0.as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            ) == 0
        }
    }
}

/// kill(2), where the kernel has no pidfd_open (before Linux 5.3).
fn kill(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with a checked positive pid.
    pid > 1 && unsafe { libc::kill(pid, sig) } == 0
}

/// Ends every operator session on this jail connected to a device port that
/// no live grant covers any more (the grant expired, or the device was
/// revoked). sshd checked the grant at login only; this is what makes it
/// hold for the session. A session is one sshd process; one reaching a port
/// that another operator's grant still covers is left alone (watch cannot tell
/// which operator a session is), as is one that is not sshd's.
fn end_operator_sessions(
    c: &mut Conn,
    jail: &Jail,
    range: PortRange,
    sshd_pid: Option<u32>,
    proc_net: &[PathBuf],
) -> Result<(), Error> {
    let Some(uid) = uid_of(jail.operator_user.as_str()) else {
        return Ok(()); // no operator account here: no operator sessions
    };
    let mut conns = Vec::new();
    for p in proc_net {
        conns.extend(parse_proc_net_outgoing(&read_capped(p)));
    }
    conns.retain(|o| o.uid == uid && range.contains(o.remote_port));
    if conns.is_empty() {
        return Ok(());
    }
    let live = store::grantees_by_port(c, &jail.pool, store::now())?;
    let inodes: BTreeSet<u64> = conns.iter().map(|o| o.inode).collect();
    let pids = holders(&inodes, uid);
    let granted: Vec<Outgoing>;
    (granted, conns) = conns
        .into_iter()
        .partition(|o| live.contains_key(&o.remote_port));
    note_operator_sessions(c, jail, &granted, &pids, &live, sshd_pid)?;
    let mut ended = BTreeSet::new();
    for o in conns {
        let Some(&pid) = pids.get(&o.inode) else {
            continue;
        };
        if ended.contains(&pid) || sshd_pid.is_some_and(|root| !is_descendant(pid, root)) {
            continue;
        }
        let (id, why) = match store::device_at_port(c, &jail.pool, o.remote_port)? {
            Some((id, true)) => (Some(id), "device revoked"),
            Some((id, false)) => (Some(id), "no live grant"),
            None => (None, "no such device"),
        };
        match signal_holder(pid, o.inode) {
            Signalled::Done => {}
            Signalled::Failed => {
                log(&format!("could not end operator session pid {pid} ({why})"));
                continue;
            }
            _ => continue,
        }
        ended.insert(pid);
        crate::watch_metrics::session_ended("operator");
        let shown = id.as_ref().map_or("-", DeviceId::as_str);
        log(&format!(
            "ended an operator session reaching {shown} (port {}, sshd pid {pid}): {why}",
            o.remote_port
        ));
        let detail = format!(
            "operator session on jail {} port {} sshd pid {pid}",
            jail.name, o.remote_port
        );
        c.transaction(|c| {
            store::audit(
                c,
                "end-session",
                id.as_ref().map(DeviceId::as_str),
                Some(why),
                Some(&detail),
            )
        })?;
    }
    Ok(())
}

/// Audits each operator session on a granted port once (`operator-session`,
/// naming the operator when exactly one holds a live grant for the port):
/// the login that happened, where `authorized-keys` saw only a key offered.
fn note_operator_sessions(
    c: &mut Conn,
    jail: &Jail,
    conns: &[Outgoing],
    pids: &BTreeMap<u64, u32>,
    live: &BTreeMap<u16, Vec<Name>>,
    sshd_pid: Option<u32>,
) -> Result<(), Error> {
    for o in conns {
        let Some(&pid) = pids.get(&o.inode) else {
            continue;
        };
        let Some(start) = started(pid) else {
            continue;
        };
        if sshd_pid.is_some_and(|root| !is_descendant(pid, root)) {
            continue;
        }
        let device = store::device_at_port(c, &jail.pool, o.remote_port)?.map(|(id, _)| id);
        let operator = match live.get(&o.remote_port).map(Vec::as_slice) {
            Some([one]) => Some(one.as_str()),
            _ => None,
        };
        let detail = format!(
            "operator session on jail {} port {} sshd pid {pid} started {}",
            jail.name,
            o.remote_port,
            store::rfc3339(start.div_euclid(1000))
        );
        let dev = device.as_ref().map(DeviceId::as_str);
        if store::audit_operator_session(c, dev, operator, &detail)? {
            log(&format!(
                "{detail}: {}",
                operator.unwrap_or("operator unknown")
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn process_start_from_stat() {
        // A command name with spaces and parentheses; starttime (field 22) = 12345.
        let stat = "4242 (sshd: a (b)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 9000000 300 18446744073709551615";
        assert_eq!(
            process_start_ms(stat, 100, 1_700_000_000_000),
            Some(1_700_000_123_450)
        );
        assert_eq!(process_start_ms(stat, 0, 0), None);
        assert_eq!(process_start_ms("4242 (x) S 1", 100, 0), None);
        assert!(older_than_key(99_999, 100) && !older_than_key(100_000, 100));
    }

    #[test]
    fn process_start_of_this_process() {
        let me = started(std::process::id()).expect("own start time");
        let now = crate::store::now() * 1000 + 1000;
        assert!(me <= now && me > now - 3_600_000, "started {me}, now {now}");
    }

    #[test]
    fn a_pidfd_signals_its_own_process_only() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let fd = PidFd::open(child.id()).expect("pidfd_open");
        assert!(fd.signal(libc::SIGTERM));
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGTERM));
        // Reaped: its pid may belong to anyone now; the pidfd reaches nobody.
        assert!(!fd.signal(libc::SIGTERM));
        assert!(PidFd::open(0).is_err() && PidFd::open(1).is_err());
    }

    #[test]
    fn a_process_without_the_socket_is_not_signalled() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        // No such socket: the re-check refuses; the child lives on.
        assert_eq!(signal_holder(child.id(), u64::MAX), Signalled::Gone);
        assert!(child.try_wait().unwrap().is_none());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(signal_holder(child.id(), u64::MAX), Signalled::Gone);
    }

    #[test]
    fn proc_net_loopback_listeners() {
        let v4 = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:2711 00000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 4242 1 0000000000000000 100 0 0 10 0\n\
   1: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 17 1 0000000000000000 100 0 0 10 0\n\
   2: 0100007F:2712 0100007F:D0C8 01 00000000:00000000 00:00000000 00000000   998        0 4243 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(
            parse_proc_net(v4),
            vec![Listener {
                port: 10001,
                uid: 998,
                inode: 4242
            }]
        );
        let v6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:2711 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 77 1 0000000000000000 100 0 0 10 0\n\
   1: 00000000000000000000000000000000:2712 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   998        0 78 1 0000000000000000 100 0 0 10 0\n";
        // The third v4 line: an established connection to 127.0.0.1:53448.
        assert_eq!(
            parse_proc_net_outgoing(v4),
            vec![Outgoing {
                remote_port: 0xD0C8,
                uid: 998,
                inode: 4243
            }]
        );
        assert_eq!(
            parse_proc_net(v6),
            vec![Listener {
                port: 10001,
                uid: 998,
                inode: 77
            }]
        );
    }
}
