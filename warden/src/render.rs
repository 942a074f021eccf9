//! Text for the outside world, rendered from typed values only: the lines
//! that reach a device's files, a known_hosts file or a shell. Every value
//! here was parsed into a type of types.rs on its way out of the registry;
//! these functions still quote, so a future type that admits more cannot
//! open a way in.

use crate::types::{HostPort, PublicKey, shell_word};

/// One known_hosts line for a jail: the name as OpenSSH (and the agent,
/// `jailbird::hostkey::known_hosts_name`) looks it up — the bare host on
/// port 22, even an IPv6 address, and `[host]:port` elsewhere.
pub fn known_hosts_line(at: &HostPort, key: &PublicKey) -> String {
    format!(
        "{} {}\n",
        jailbird::hostkey::known_hosts_name(&at.host, at.port),
        key.line()
    )
}

/// One `NAME=value` line of an environment file that `. file` (OpenWrt's
/// procd scripts, an admin's shell) and systemd's `EnvironmentFile=` both
/// read as the same value and that no shell executes: the value is a single
/// shell word (single-quoted where it needs to be).
pub fn env_line(name: &str, value: &str) -> String {
    debug_assert!(
        name.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    );
    format!("{name}={}\n", shell_word(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_lines_do_not_execute() {
        assert_eq!(env_line("A", "tunuser@jail:8022"), "A=tunuser@jail:8022\n");
        assert_eq!(env_line("A", "$(reboot)"), "A='$(reboot)'\n");
        assert_eq!(env_line("A", "a\nB=c"), "A='a\nB=c'\n");
        assert_eq!(env_line("A", "it's"), "A='it'\\''s'\n");
    }

    #[test]
    fn ipv6_jail_on_port_22_is_matched_by_the_agent() {
        let key = PublicKey::parse(
            "k",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        )
        .unwrap();
        let blob = jailbird::hostkey::parse_key_line(&key.line()).unwrap();
        for (addr, host, port) in [("[::1]", "::1", 22), ("[::1]:8022", "::1", 8022)] {
            let hp = HostPort::parse("jail", addr, Some(22)).unwrap();
            let text = known_hosts_line(&hp, &key);
            assert_eq!(
                jailbird::hostkey::check_known_hosts_text(&text, host, port, &blob),
                jailbird::hostkey::Verdict::Trusted,
                "{text}"
            );
        }
    }
}
