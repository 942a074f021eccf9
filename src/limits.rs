//! Every bound in the agent, in one place, with its unit in its name.
//!
//! Values marked *build-time* can be changed by a firmware builder with an
//! environment variable of the same name at `cargo build` time, e.g.
//! `JAILBIRD_MAX_CHANNELS=8 cargo build --release`. A malformed value fails the
//! build (a `const` panic names the variable).

use std::time::Duration;

/// Parses a decimal `usize` from a build-time environment variable, or returns `default`.
const fn build_usize(value: Option<&str>, name: &str, default: usize) -> usize {
    let Some(s) = value else { return default };
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        const_panic(name);
    }
    let mut n: usize = 0;
    let mut i = 0;
    while i < bytes.len() {
        let d = bytes[i];
        if d < b'0' || d > b'9' {
            const_panic(name);
        }
        n = match n.checked_mul(10) {
            Some(v) => v,
            None => const_panic(name),
        };
        n = match n.checked_add((d - b'0') as usize) {
            Some(v) => v,
            None => const_panic(name),
        };
        i += 1;
    }
    n
}

const fn const_panic(name: &str) -> ! {
    // const panics cannot format; the name is in the message of the caller's span.
    let _ = name;
    panic!("a JAILBIRD_* build-time limit is not a decimal number (see src/limits.rs)")
}

/// Forwarded channels served at once; the next one is refused while the tunnel stays up. *build-time*
pub const MAX_CHANNELS: usize = {
    let n = build_usize(
        option_env!("JAILBIRD_MAX_CHANNELS"),
        "JAILBIRD_MAX_CHANNELS",
        32,
    );
    assert!(
        n >= 1 && n <= 1024,
        "JAILBIRD_MAX_CHANNELS must be 1..=1024"
    );
    n
};

/// Bytes of the fixed buffer each direction of a forwarded connection copies through. *build-time*
pub const COPY_BUF_BYTES: usize = {
    let n = build_usize(
        option_env!("JAILBIRD_COPY_BUF_BYTES"),
        "JAILBIRD_COPY_BUF_BYTES",
        16 * 1024,
    );
    assert!(
        n >= 1024 && n <= 256 * 1024,
        "JAILBIRD_COPY_BUF_BYTES must be 1024..=262144"
    );
    n
};

/// SSH receive window per channel: the most the jail may send us that the
/// target has not yet consumed (granted back on consumption, see vendor/russh).
pub const WINDOW_BYTES: u32 = 512 * 1024;
/// Largest SSH packet we accept from the jail.
pub const MAX_PACKET_BYTES: u32 = 32 * 1024;
/// Most bytes read from the jail's socket in one call: the session's one
/// read-ahead buffer, from which each packet is copied once into a buffer of
/// its own size and decrypted there (vendor/russh/JAILBIRD-PATCH.md). It grows
/// to one packet if the jail sends a larger one (russh caps packets at 256 KiB).
pub const JAIL_READ_BUF_BYTES: usize = 64 * 1024;
/// Messages russh may queue per channel. The window bounds the bytes; this only
/// needs to be deep enough that a compliant jail never fills it with small packets.
pub const CHANNEL_QUEUE_MSGS: usize = 256;

/// How often a tunnel whose host certificate was accepted on an unset clock
/// (no RTC, before NTP) looks at the clock again (src/hostcert.rs).
pub const CLOCK_RECHECK: Duration = Duration::from_secs(5);

/// Largest state (identity) file we read; a larger file is refused, never
/// truncated. Room for every pin and an enrolment at their bounds.
pub const MAX_STATE_FILE_BYTES: usize = 4096;
/// Jails of a pool a claim answer may name, and the state file keeps.
pub const MAX_ENROLLED_JAILS: usize = MAX_JAILS;
/// Longest device id (claim request and answer, state file).
pub const MAX_DEVICE_ID_BYTES: usize = 64;
/// Longest account name a claim answer may give (and `--claim-user`).
pub const MAX_USER_BYTES: usize = 32;
/// Longest claim token accepted (`--claim`).
pub const MAX_CLAIM_TOKEN_BYTES: usize = 256;
/// Largest claim request sent (the wire format's bound).
pub const MAX_CLAIM_REQUEST_BYTES: usize = 4096;
/// Lines of a claim request at most (the wire format's bound).
pub const MAX_CLAIM_REQUEST_LINES: usize = 16;
/// Host-key lines a claim request carries at most (the device's own sshd keys).
pub const MAX_CLAIM_HOST_KEYS: usize = 4;
/// Largest claim answer read; a longer one is refused (the wire format's bound).
pub const MAX_CLAIM_ANSWER_BYTES: usize = 8192;
/// Lines of a claim answer at most (the wire format's bound).
pub const MAX_CLAIM_ANSWER_LINES: usize = 24;
/// Largest `--device-host-key` file read.
pub const MAX_DEVICE_HOST_KEY_FILE_BYTES: u64 = 16 * 1024;
/// Time allowed, once logged in as the claim account, to send the request and
/// read the whole answer.
pub const CLAIM_ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// Delay (before jitter: uniform in its last quarter) after a claim was
/// refused or answered with something unusable: a token rarely becomes
/// valid within minutes, and the registry should not be hammered.
pub const CLAIM_REFUSED_RETRY: Duration = Duration::from_secs(300);
/// Jail host keys pinned by `StrictHostKeyChecking=accept-new` in the state file.
pub const MAX_PINNED_HOSTS: usize = MAX_JAILS;
/// Longest `host:port` name a pin is stored under.
pub const MAX_PIN_NAME_BYTES: usize = 96;
/// Largest known_hosts file read.
pub const MAX_KNOWN_HOSTS_BYTES: u64 = 1024 * 1024;
/// Largest OpenSSH private key file read by `--identity-file`.
pub const MAX_IDENTITY_FILE_BYTES: u64 = 64 * 1024;
/// Directory entries looked at when sweeping the identity file's stale temp files.
pub const MAX_DIR_SCAN_ENTRIES: usize = 4096;
/// The bounds of configuration values live with their parsers in `spec.rs`
/// (which build.rs includes, so it cannot reach this file): jails in a
/// destination list, option seconds, ServerAliveCountMax, host name, socket
/// path and default-path lengths.
pub use crate::spec::{
    MAX_ALIVE_COUNT, MAX_HOST_BYTES, MAX_JAILS, MAX_OPTION_SECS, MAX_PATH_BYTES,
    MAX_SOCKET_PATH_BYTES,
};

/// Largest head (status line and headers) read from an HTTP proxy's answer
/// to CONNECT; a longer one fails the attempt (src/proxy.rs).
pub const MAX_PROXY_HEAD_BYTES: usize = 8 * 1024;

/// Time allowed to open the TCP connection to the forward target.
pub const TARGET_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time allowed for the jail to confirm a `-L` channel (it connects to the host first).
pub const CHANNEL_OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept() on the `-L` listener (e.g. out of file
/// descriptors), so the loop cannot spin.
pub const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);
/// Time allowed for public-key authentication.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(15);
/// Time allowed for the jail to answer the forward request.
pub const FORWARD_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed, on SIGTERM/SIGINT, to cancel the forward and disconnect.
pub const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// First reconnect delay (before jitter).
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// Largest reconnect delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);
/// A tunnel up this long resets the backoff to its first step: a link that
/// drops after a healthy stretch is retried within a second (a jail that
/// closed it, within [`DROP_SPREAD`]); only links that fail quickly again
/// and again back off further.
pub const HEALTHY_RESET: Duration = Duration::from_secs(10);
/// When the jail closes a healthy link (it restarted: its whole fleet sees the
/// same instant), the first retry comes uniformly within this, so the fleet
/// arrives at a rate the jail can log in instead of all at once. Measured
/// with benches/fleet_sim.py, jail restarts on 2 cores (docs/fleet.md "Fleet scale"):
/// 2,000 devices back in 31.3 s with 15 s, 36.2 s with 30 s, 63.2 s with a
/// retry within a second (logins that time out half-done: 1,900 failed
/// attempts); 1,000 devices, which the jail logs in at once, 17.7 s with
/// 15 s and 17.3 s without. A link declared dead by keepalives is not spread.
pub const DROP_SPREAD: Duration = Duration::from_secs(15);
/// Delay between attempts after the jail refused the forward (its old session
/// usually still holds the port until its ClientAlive timer evicts it).
pub const REFUSED_RETRY: Duration = Duration::from_secs(2);
/// Refused forwards retried at [`REFUSED_RETRY`] before normal backoff resumes
/// (about three minutes: longer than a typical ClientAliveInterval x CountMax).
pub const REFUSED_FAST_ATTEMPTS: u32 = 90;

/// The `permitopen` a `-R` key line carries so that the key alone allows no
/// `direct-tcpip` anywhere reachable (OpenSSH 9.2 refuses `permitopen="none"`
/// in a key line): the limited broadcast address, which the kernel never
/// connects a TCP socket to (ENETUNREACH, no packet sent). The jail's
/// `PermitOpen none` stays the first fence.
pub const DIRECT_TCPIP_FENCE: &str = "255.255.255.255:9";
