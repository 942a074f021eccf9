//! Deciding whether to trust the jail's host key: a pinned key (`--host-key`),
//! an OpenSSH known_hosts file (plain, `[host]:port`, wildcard, negated and
//! hashed `|1|` entries, `@revoked`), or a key pinned on first use into the
//! state file (`StrictHostKeyChecking=accept-new`). Nothing is trusted by default.

use crate::limits::MAX_KNOWN_HOSTS_BYTES;
use base64ct::{Base64, Base64Unpadded, Encoding};
use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Where the jail's host key may be found trustworthy.
#[derive(Clone, Debug, Default)]
pub struct TrustSources {
    /// `--host-key "TYPE BASE64"`: the wire blob of the pinned key.
    pub pinned: Option<Vec<u8>>,
    /// `--known-hosts PATH`.
    pub known_hosts: Option<PathBuf>,
    /// `StrictHostKeyChecking=accept-new`.
    pub accept_new: bool,
    /// `--host-ca "TYPE BASE64"`: a CA trusted to sign any jail's host certificate.
    pub host_cas: Vec<Vec<u8>>,
}

/// The outcome of checking one host key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A trusted source names this very key.
    Trusted,
    /// No source knows this jail; accept-new may pin it.
    Unknown,
    /// A source names other keys for this jail: the fingerprints it expected.
    Mismatch(Vec<String>),
    /// known_hosts marks this key `@revoked`.
    Revoked,
}

/// `SHA256:<base64>` fingerprint of a key's wire blob.
pub fn blob_fingerprint(blob: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, blob);
    format!("SHA256:{}", Base64Unpadded::encode_string(d.as_ref()))
}

/// Parses `"TYPE BASE64 [comment]"` into the key's wire blob, checking that the
/// type named matches the type inside the blob (the parser of `spec.rs`).
pub fn parse_key_line(s: &str) -> Option<Vec<u8>> {
    crate::spec::parse_key_line(s)
}

/// The name known_hosts files use for a jail: `host`, or `[host]:port` off port 22.
pub fn known_hosts_name(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// Checks `blob` (the jail's key) for `host`:`port` against the text of a known_hosts file.
pub fn check_known_hosts_text(text: &str, host: &str, port: u16, blob: &[u8]) -> Verdict {
    let name = known_hosts_name(host, port);
    let mut expected = Vec::new();
    let mut trusted = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (marker, rest) = match line.strip_prefix('@') {
            Some(m) => match m.split_once(char::is_whitespace) {
                Some((m, r)) => (Some(m), r.trim_start()),
                None => continue,
            },
            None => (None, line),
        };
        let Some((patterns, key)) = rest.split_once(char::is_whitespace) else {
            continue;
        };
        let Some(entry_blob) = parse_key_line(key) else {
            continue;
        };
        match marker {
            Some("revoked") => {
                // A revoked certificate revokes the key inside it (OpenSSH).
                if crate::hostcert::plain_of(entry_blob) == blob {
                    return Verdict::Revoked;
                }
                continue;
            }
            // CA keys sign host certificates; a plain host key is never trusted through one.
            Some(_) => continue,
            None => {}
        }
        if !host_matches(patterns, &name) {
            continue;
        }
        if entry_blob == blob {
            trusted = true;
        } else {
            expected.push(blob_fingerprint(&entry_blob));
        }
    }
    if trusted {
        Verdict::Trusted
    } else if expected.is_empty() {
        Verdict::Unknown
    } else {
        Verdict::Mismatch(expected)
    }
}

/// Reads a known_hosts file, refusing one above MAX_KNOWN_HOSTS_BYTES.
pub fn read_known_hosts(path: &Path) -> Result<String, String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KNOWN_HOSTS_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| format!("known_hosts {}: {e}", path.display()))?;
    if text.len() as u64 > MAX_KNOWN_HOSTS_BYTES {
        return Err(format!(
            "known_hosts {}: larger than {MAX_KNOWN_HOSTS_BYTES} bytes",
            path.display()
        ));
    }
    Ok(text)
}

/// Reads a known_hosts file (bounded) and checks `blob` against it.
pub fn check_known_hosts_file(
    path: &Path,
    host: &str,
    port: u16,
    blob: &[u8],
) -> Result<Verdict, String> {
    Ok(check_known_hosts_text(
        &read_known_hosts(path)?,
        host,
        port,
        blob,
    ))
}

/// Does a comma-separated pattern list (with `!negation`, `*`, `?` and hashed
/// `|1|salt|hash` entries) match `name`?
pub fn host_matches(patterns: &str, name: &str) -> bool {
    if let Some(hashed) = patterns.strip_prefix("|1|") {
        return hashed_matches(hashed, name);
    }
    let mut matched = false;
    for pat in patterns.split(',') {
        if let Some(neg) = pat.strip_prefix('!') {
            if glob(neg.as_bytes(), name.as_bytes()) {
                return false;
            }
        } else if glob(pat.as_bytes(), name.as_bytes()) {
            matched = true;
        }
    }
    matched
}

fn hashed_matches(hashed: &str, name: &str) -> bool {
    let Some((salt, hash)) = hashed.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (Base64::decode_vec(salt), Base64::decode_vec(hash)) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &salt);
    // ssh(1) lowercases the host name before hashing it (`ssh-keygen -H` does too).
    ring::hmac::verify(&key, name.to_ascii_lowercase().as_bytes(), &hash).is_ok()
}

/// Case-insensitive glob with `*` and `?`, linear time (no backtracking blow-up).
fn glob(pat: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while i < s.len() {
        // `*` first: it is a wildcard even where `s` holds a literal `*`.
        if p < pat.len() && pat[p] == b'*' {
            star = Some(p);
            mark = i;
            p += 1;
        } else if p < pat.len() && (pat[p] == b'?' || pat[p].eq_ignore_ascii_case(&s[i])) {
            p += 1;
            i += 1;
        } else if let Some(sp) = star {
            p = sp + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    const ED2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBH7dvhA9XQ8GBWFXaYwdB9LlwZEXsl1PtWLTbrX4YEt";

    fn blob(s: &str) -> Vec<u8> {
        parse_key_line(s).unwrap()
    }

    #[test]
    fn plain_and_bracketed_entries() {
        let text = format!("jail.example {ED}\n[jail.example]:8022 {ED2}\n");
        assert_eq!(
            check_known_hosts_text(&text, "jail.example", 22, &blob(ED)),
            Verdict::Trusted
        );
        assert_eq!(
            check_known_hosts_text(&text, "jail.example", 8022, &blob(ED2)),
            Verdict::Trusted
        );
        assert_eq!(
            check_known_hosts_text(&text, "jail.example", 8022, &blob(ED)),
            Verdict::Mismatch(vec![blob_fingerprint(&blob(ED2))])
        );
        assert_eq!(
            check_known_hosts_text(&text, "other", 22, &blob(ED)),
            Verdict::Unknown
        );
    }

    #[test]
    fn hashed_entries_match_whatever_the_case_of_the_name_dialled() {
        // ssh-keygen -H hashes the lowercased name; ssh lowercases before looking.
        let salt = b"salt-0987654321fedcba";
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
        let tag = ring::hmac::sign(&key, b"jail.example");
        let line = format!(
            "|1|{}|{} {ED}",
            Base64::encode_string(salt),
            Base64::encode_string(tag.as_ref())
        );
        assert_eq!(
            check_known_hosts_text(&line, "JAIL.Example", 22, &blob(ED)),
            Verdict::Trusted
        );
    }

    #[test]
    fn hashed_entry_made_by_ssh_keygen() {
        // `ssh-keygen -H` output for "[127.0.0.1]:2222" with salt "salt-1234567890abcdef".
        let salt = b"salt-1234567890abcdef";
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
        let tag = ring::hmac::sign(&key, b"[127.0.0.1]:2222");
        let line = format!(
            "|1|{}|{} {ED}",
            Base64::encode_string(salt),
            Base64::encode_string(tag.as_ref())
        );
        assert_eq!(
            check_known_hosts_text(&line, "127.0.0.1", 2222, &blob(ED)),
            Verdict::Trusted
        );
        assert_eq!(
            check_known_hosts_text(&line, "127.0.0.1", 2223, &blob(ED)),
            Verdict::Unknown
        );
    }

    #[test]
    fn wildcards_negation_and_revoked() {
        let text = format!("*.example,!bad.example {ED}\n@revoked * {ED2}\n");
        assert_eq!(
            check_known_hosts_text(&text, "JAIL.example", 22, &blob(ED)),
            Verdict::Trusted
        );
        assert_eq!(
            check_known_hosts_text(&text, "bad.example", 22, &blob(ED)),
            Verdict::Unknown
        );
        assert_eq!(
            check_known_hosts_text(&text, "jail.example", 22, &blob(ED2)),
            Verdict::Revoked
        );
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let text = format!(
            "\u{0}\n#c\n@cert-authority * {ED2}\nhost ssh-ed25519 !!!\nhost\n{ED}\njail {ED}"
        );
        assert_eq!(
            check_known_hosts_text(&text, "jail", 22, &blob(ED)),
            Verdict::Trusted
        );
    }

    #[test]
    fn key_type_must_match_blob() {
        assert!(parse_key_line(&ED.replace("ssh-ed25519", "ssh-rsa")).is_none());
    }

    #[test]
    fn star_is_a_wildcard_against_a_literal_star() {
        // Found by fuzz/fuzz_targets/known_hosts.rs: a `*` in the pattern met a
        // `*` in the name, was taken as a literal, and its backtrack point was lost.
        assert!(glob(b"*a", b"*ba"));
        assert!(glob(b"**********", b"************KJ**"));
        assert!(host_matches(
            "istp2564dJaXDDwbZC4Al9G*********A*******************,**********",
            "************KJ**"
        ));
        assert!(!glob(b"*a", b"*b"));
    }

    #[test]
    fn type_length_near_u32_max_is_rejected_without_overflow() {
        // A blob claiming a 0xffffffff-byte type name: `4 + len` panicked
        // ("attempt to add with overflow") in debug builds on 32-bit targets.
        for len in [u32::MAX, u32::MAX - 3, u32::MAX - 4] {
            let mut blob = len.to_be_bytes().to_vec();
            blob.extend_from_slice(b"ssh-ed25519");
            let line = format!("ssh-ed25519 {}", Base64::encode_string(&blob));
            assert_eq!(parse_key_line(&line), None);
        }
    }

    #[test]
    fn glob_is_linear() {
        assert!(glob(b"a*b*c*d", b"aXXbYYcZZd"));
        assert!(!glob(
            &[b'*'; 64].iter().chain(b"x").copied().collect::<Vec<_>>(),
            &[b'a'; 4096]
        ));
    }
}
