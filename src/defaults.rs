//! Compiled-in defaults. A firmware build sets them with `JAILBIRD_DEFAULT_*`
//! in the environment of `cargo build` (checked by `build.rs`, which fails the
//! build on a malformed value), so the image's binary runs with no flags at all;
//! flags and the environment still win. `jailbird info` prints them.

/// A build-time string; empty counts as unset, as an empty variable does at run time.
const fn text(v: Option<&'static str>) -> Option<&'static str> {
    match v {
        Some(s) if !s.is_empty() => Some(s),
        _ => None,
    }
}

/// A build-time whole number no larger than `max`, or `default` if unset.
/// build.rs names the variable of a malformed value; this is only a backstop.
const fn number(v: Option<&'static str>, default: u64, max: u64) -> u64 {
    let Some(s) = text(v) else { return default };
    let (bytes, mut n, mut i) = (s.as_bytes(), 0u64, 0);
    while i < bytes.len() {
        let d = bytes[i];
        assert!(
            d.is_ascii_digit() && n <= max,
            "a JAILBIRD_DEFAULT_* number is malformed (see build.rs)"
        );
        n = n * 10 + (d - b'0') as u64;
        i += 1;
    }
    assert!(
        n <= max,
        "a JAILBIRD_DEFAULT_* number is out of range (see build.rs)"
    );
    n
}

/// Jails to connect to, `[USER@]HOST[:PORT][,...]` (`JAILBIRD_DEFAULT_DESTINATION`).
pub const DESTINATION: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_DESTINATION"));
/// Jail sshd port where a destination names none (`JAILBIRD_DEFAULT_PORT`).
pub const JAIL_PORT: u16 = number(option_env!("JAILBIRD_DEFAULT_PORT"), 22, 65535) as u16;
/// User on the jail where a destination names none (`JAILBIRD_DEFAULT_USER`).
pub const USER: &str = match text(option_env!("JAILBIRD_DEFAULT_USER")) {
    Some(u) => u,
    None => "tunuser",
};
/// `-R` spec when none is given (`JAILBIRD_DEFAULT_REMOTE_FORWARD`).
pub const REMOTE_FORWARD: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_REMOTE_FORWARD"));
/// `-L` spec when none is given (`JAILBIRD_DEFAULT_LOCAL_FORWARD`).
pub const LOCAL_FORWARD: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_LOCAL_FORWARD"));
/// Identity file path (`JAILBIRD_DEFAULT_STATE`).
pub const STATE_PATH: &str = match text(option_env!("JAILBIRD_DEFAULT_STATE")) {
    Some(p) => p,
    None => "/var/lib/jailbird/identity",
};
/// known_hosts file (`JAILBIRD_DEFAULT_KNOWN_HOSTS`).
pub const KNOWN_HOSTS: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_KNOWN_HOSTS"));
/// An OpenSSH private key used as-is when the file exists and no key is named
/// (`JAILBIRD_DEFAULT_IDENTITY_MOUNT`; the container image: the autossh
/// container's `/id_rsa` mount).
pub const IDENTITY_MOUNT: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_IDENTITY_MOUNT"));
/// A known_hosts file used when it exists and no other is named
/// (`JAILBIRD_DEFAULT_KNOWN_HOSTS_MOUNT`; the container image: `/known_hosts`).
pub const KNOWN_HOSTS_MOUNT: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_KNOWN_HOSTS_MOUNT"));
/// Pinned jail host key, "TYPE BASE64" (`JAILBIRD_DEFAULT_HOST_KEY`).
pub const HOST_KEY: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_HOST_KEY"));
/// The fleet's host CA, "TYPE BASE64" (`JAILBIRD_DEFAULT_HOST_CA`): jails with a
/// host certificate it signed are trusted (src/hostcert.rs).
pub const HOST_CA: Option<&str> = text(option_env!("JAILBIRD_DEFAULT_HOST_CA"));
/// `yes` or `accept-new` (`JAILBIRD_DEFAULT_STRICT_HOST_KEY_CHECKING`).
pub const STRICT_HOST_KEY_CHECKING: &str =
    match text(option_env!("JAILBIRD_DEFAULT_STRICT_HOST_KEY_CHECKING")) {
        Some(v) => v,
        None => "yes",
    };
/// ServerAliveInterval, seconds; 0 = off (`JAILBIRD_DEFAULT_SERVER_ALIVE_INTERVAL`).
pub const ALIVE_INTERVAL_SECS: u64 = number(
    option_env!("JAILBIRD_DEFAULT_SERVER_ALIVE_INTERVAL"),
    10,
    crate::spec::MAX_OPTION_SECS,
);
/// ServerAliveCountMax (`JAILBIRD_DEFAULT_SERVER_ALIVE_COUNT_MAX`).
pub const ALIVE_COUNT_MAX: u32 = number(
    option_env!("JAILBIRD_DEFAULT_SERVER_ALIVE_COUNT_MAX"),
    3,
    crate::spec::MAX_ALIVE_COUNT,
) as u32;
/// ConnectTimeout, seconds (`JAILBIRD_DEFAULT_CONNECT_TIMEOUT`).
pub const CONNECT_TIMEOUT_SECS: u64 = number(
    option_env!("JAILBIRD_DEFAULT_CONNECT_TIMEOUT"),
    15,
    crate::spec::MAX_OPTION_SECS,
);
/// The device's own sshd host key sent with a claim (`--device-host-key`);
/// on OpenWrt, dropbear's key converted to this form (docs/usage.md "Claiming").
pub const DEVICE_HOST_KEY: &str = "/etc/ssh/ssh_host_ed25519_key.pub";
/// Forward target when only a tunnel port is configured (the autossh container's SSH_TUNNEL_PORT).
pub const TARGET_HOST: &str = "127.0.0.1";
/// Forward target port when only a tunnel port is configured.
pub const TARGET_PORT: u16 = 22;
/// Cipher preference. x86_64 and aarch64 have AES instructions, where ring's
/// AES-GCM beats ChaCha20-Poly1305; ARMv6/ARMv7 do not, so ChaCha20 leads there.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub const CIPHERS: &[&str] = &[
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-gcm@openssh.com",
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub const CIPHERS: &[&str] = &[
    "chacha20-poly1305@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-gcm@openssh.com",
];

/// Cargo features this binary can have, and whether it was built with each.
pub const FEATURES: &[(&str, bool)] = &[
    ("dlmalloc", cfg!(feature = "dlmalloc")),
    ("streamlocal", cfg!(feature = "streamlocal")),
    ("local-forward", cfg!(feature = "local-forward")),
    ("proxy", cfg!(feature = "proxy")),
    ("claim", cfg!(feature = "claim")),
    ("rsa", cfg!(feature = "rsa")),
    ("nistp384-521", cfg!(feature = "nistp384-521")),
];

/// What this binary was built with, for `jailbird info` and `--version`: the
/// version, target, cargo features, limits and every compiled-in default,
/// each default under the name of the build-time variable that sets it.
pub fn build_info() -> String {
    use crate::limits;
    let on: Vec<&str> = FEATURES.iter().filter(|f| f.1).map(|f| f.0).collect();
    let off: Vec<&str> = FEATURES.iter().filter(|f| !f.1).map(|f| f.0).collect();
    let mut s = format!(
        "jailbird {}\ntarget: {}\nfeatures: {} (not built in: {})\n",
        env!("CARGO_PKG_VERSION"),
        env!("JAILBIRD_BUILD_TARGET"),
        on.join(" "),
        off.join(" "),
    );
    s += &format!(
        "limits: MAX_CHANNELS={} COPY_BUF_BYTES={} WINDOW_BYTES={} MAX_PACKET_BYTES={} MAX_JAILS={}\n",
        limits::MAX_CHANNELS,
        limits::COPY_BUF_BYTES,
        limits::WINDOW_BYTES,
        limits::MAX_PACKET_BYTES,
        limits::MAX_JAILS,
    );
    s += &format!("ciphers: {}\n", CIPHERS.join(","));
    s += "defaults (build-time variables; flags and the environment win):\n";
    let (port, alive, count, connect) = (
        JAIL_PORT.to_string(),
        ALIVE_INTERVAL_SECS.to_string(),
        ALIVE_COUNT_MAX.to_string(),
        CONNECT_TIMEOUT_SECS.to_string(),
    );
    for (name, value) in [
        ("DESTINATION", DESTINATION.unwrap_or("")),
        ("PORT", &port),
        ("USER", USER),
        ("REMOTE_FORWARD", REMOTE_FORWARD.unwrap_or("")),
        ("LOCAL_FORWARD", LOCAL_FORWARD.unwrap_or("")),
        ("STATE", STATE_PATH),
        ("KNOWN_HOSTS", KNOWN_HOSTS.unwrap_or("")),
        ("IDENTITY_MOUNT", IDENTITY_MOUNT.unwrap_or("")),
        ("KNOWN_HOSTS_MOUNT", KNOWN_HOSTS_MOUNT.unwrap_or("")),
        ("HOST_KEY", HOST_KEY.unwrap_or("")),
        ("HOST_CA", HOST_CA.unwrap_or("")),
        ("STRICT_HOST_KEY_CHECKING", STRICT_HOST_KEY_CHECKING),
        ("SERVER_ALIVE_INTERVAL", &alive),
        ("SERVER_ALIVE_COUNT_MAX", &count),
        ("CONNECT_TIMEOUT", &connect),
    ] {
        s += &format!("  JAILBIRD_DEFAULT_{name}={value}\n");
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn numbers_and_text() {
        assert_eq!(super::number(None, 7, 10), 7);
        assert_eq!(super::number(Some(""), 7, 10), 7);
        assert_eq!(super::number(Some("0"), 7, 10), 0);
        assert_eq!(super::number(Some("10"), 7, 10), 10);
        assert_eq!(super::text(Some("")), None);
    }

    #[test]
    fn info_names_every_default() {
        let info = super::build_info();
        assert!(info.starts_with(concat!("jailbird ", env!("CARGO_PKG_VERSION"), "\n")));
        for name in [
            "DESTINATION",
            "PORT",
            "REMOTE_FORWARD",
            "KNOWN_HOSTS",
            "IDENTITY_MOUNT",
            "KNOWN_HOSTS_MOUNT",
            "CONNECT_TIMEOUT",
        ] {
            assert!(
                info.contains(&format!("\n  JAILBIRD_DEFAULT_{name}=")),
                "{name}: {info}"
            );
        }
        assert!(info.contains(&format!("MAX_CHANNELS={}", crate::limits::MAX_CHANNELS)));
    }
}
