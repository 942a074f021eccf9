//! Text for the outside world, rendered from typed values only: the lines
//! that reach a device's files, a known_hosts file or a shell. Every value
//! here was parsed into a type of types.rs on its way out of the registry;
//! these functions still quote, so a future type that admits more cannot
//! open a way in.

use crate::store::Device;
use crate::types::{self, HostPort, PublicKey, shell_word};

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

// ---- for people and for programs ---------------------------------------------

pub fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// An aligned table: a header and rows of cells. Every cell is shown on one
/// line (types::one_line): a stored newline cannot forge a row.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| types::one_line(c)).collect())
        .collect();
    let rows = &rows[..];
    let mut w: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}  ", width = w[i]));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

pub fn dash<T: std::fmt::Display>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".into(), ToString::to_string)
}

pub fn device_rows(ds: &[Device]) -> String {
    let rows: Vec<Vec<String>> = ds
        .iter()
        .map(|d| {
            let state = if d.revoked {
                "revoked".to_string()
            } else if d.online.is_some() {
                "online".to_string()
            } else {
                "offline".to_string()
            };
            let since = if d.online.is_some() {
                dash(&d.online_since)
            } else {
                dash(&d.offline_since)
            };
            vec![
                d.id.to_string(),
                dash(&d.mac),
                d.pool.to_string(),
                d.port.to_string(),
                state,
                dash(&d.online),
                since,
                dash(&d.last_seen),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "MAC",
            "POOL",
            "PORT",
            "STATE",
            "JAIL",
            "SINCE",
            "LAST SEEN",
        ],
        &rows,
    )
}

pub fn show_device(d: &Device) -> String {
    let labels: Vec<String> = d
        .labels
        .iter()
        .map(|(k, v)| types::one_line(&format!("{k}={v}")))
        .collect();
    let mut s = String::new();
    for (k, v) in [
        ("id", d.id.to_string()),
        ("mac", dash(&d.mac)),
        ("pool", d.pool.to_string()),
        ("port", d.port.to_string()),
        ("target", d.target.to_string()),
        ("key", d.key.line()),
        ("fingerprint", d.fingerprint.clone()),
        (
            "labels",
            if labels.is_empty() {
                "-".into()
            } else {
                labels.join(",")
            },
        ),
        ("enrolled", d.enrolled.clone()),
        ("revoked", dash(&d.revoked_at)),
        ("online", dash(&d.online)),
        ("online since", dash(&d.online_since)),
        ("offline since", dash(&d.offline_since)),
        ("last seen", dash(&d.last_seen)),
    ] {
        s.push_str(&format!("{k:<14} {}\n", types::one_line(&v)));
    }
    s
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
