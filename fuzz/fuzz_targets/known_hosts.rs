//! known_hosts parsing: `check_known_hosts_text`, `host_matches`, `parse_key_line`.
//!
//! Input (UTF-8): `TEXT[\0HOST[\0PORT[\0KEYLINE]]]`. A plain known_hosts file
//! is a valid input on its own: the jail is then `jail.example:22` and its key
//! the first key in TEXT. Nothing may panic, and:
//! - an accepted key line prints back to the same blob;
//! - a line naming exactly this jail (plain or `|1|` hashed) and its key makes
//!   any file trust it, unless the file revokes that key;
//! - an `@revoked` line for the key always wins;
//! - glob patterns match as a reference (quadratic, non-greedy) matcher says.
#![no_main]

use base64ct::{Base64, Encoding};
use jailbird::hostkey::{
    Verdict, blob_fingerprint, check_known_hosts_text, host_matches, known_hosts_name,
    parse_key_line,
};
use libfuzzer_sys::fuzz_target;

const DEFAULT_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let mut fields = input.splitn(4, '\0');
    let text = fields.next().unwrap_or("");
    let host = fields.next().unwrap_or("jail.example");
    let port = fields
        .next()
        .map_or(22, |p| p.trim().parse::<u16>().unwrap_or(22));
    let keyline = fields
        .next()
        .map(str::to_string)
        .or_else(|| first_key(text))
        .unwrap_or_else(|| DEFAULT_KEY.to_string());

    // The key: a parsed line, or the raw bytes (a key no entry can name).
    let parsed = parse_key_line(&keyline);
    let blob = parsed
        .clone()
        .unwrap_or_else(|| keyline.as_bytes().to_vec());
    let verdict = check_known_hosts_text(text, host, port, &blob);
    if let Verdict::Mismatch(fps) = &verdict {
        assert!(!fps.is_empty());
        for fp in fps {
            assert!(fp.starts_with("SHA256:") && fp.len() == 7 + 43, "{fp:?}");
        }
    }

    if let Some(blob) = &parsed {
        let line = reprint(&keyline, blob);
        // An @revoked line for the key wins over anything before it.
        let revoked = format!("{text}\n@revoked * {line}\n");
        assert_eq!(
            check_known_hosts_text(&revoked, host, port, blob),
            Verdict::Revoked
        );
        let name = known_hosts_name(host, port);
        if plain_host(host) {
            let want = if verdict == Verdict::Revoked {
                Verdict::Revoked
            } else {
                Verdict::Trusted
            };
            let plain = format!("{name} {line}\n{text}");
            assert_eq!(
                check_known_hosts_text(&plain, host, port, blob),
                want,
                "{plain:?}"
            );
            let digest = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, data);
            let salt = digest.as_ref();
            // ssh-keygen -H hashes the lowercased name (and ssh looks it up so).
            let tag = ring::hmac::sign(
                &ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt),
                name.to_ascii_lowercase().as_bytes(),
            );
            let hashed = format!(
                "|1|{}|{} {line}\n{text}",
                Base64::encode_string(salt),
                Base64::encode_string(tag.as_ref())
            );
            assert_eq!(
                check_known_hosts_text(&hashed, host, port, blob),
                want,
                "{hashed:?}"
            );
            assert!(host_matches(&name, &name));
        }
    }

    // host_matches on every pattern list in TEXT, against the jail's name.
    let name = known_hosts_name(host, port);
    for line in text.lines().take(16) {
        let line = line.trim();
        let line = match line.strip_prefix('@') {
            Some(m) => m
                .split_once(char::is_whitespace)
                .map_or("", |(_, r)| r.trim_start()),
            None => line,
        };
        let patterns = line.split(char::is_whitespace).next().unwrap_or("");
        check_patterns(patterns, &name);
        check_patterns(patterns, host);
        if let Some((_, key)) = line.split_once(char::is_whitespace)
            && let Some(b) = parse_key_line(key)
        {
            let _ = reprint(key, &b);
            assert!(blob_fingerprint(&b).starts_with("SHA256:"));
        }
    }
    check_patterns(text, host);
});

/// The key of the first line of `text` that has one.
fn first_key(text: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let l = l.trim().trim_start_matches('@');
        let mut words = l.split_ascii_whitespace();
        if l.starts_with("revoked") || l.starts_with("cert-authority") {
            words.next();
        }
        words.next()?;
        let key = format!("{} {}", words.next()?, words.next()?);
        parse_key_line(&key).map(|_| key)
    })
}

/// Checks what parse_key_line accepted and prints it back as "TYPE BASE64".
fn reprint(keyline: &str, blob: &[u8]) -> String {
    let mut words = keyline.split_ascii_whitespace();
    let ty = words.next().expect("accepted line has a type");
    let b64 = words.next().expect("accepted line has a key");
    let len = u32::from_be_bytes(blob[..4].try_into().unwrap()) as usize;
    assert_eq!(&blob[4..4 + len], ty.as_bytes());
    let printed = Base64::encode_string(blob);
    assert_eq!(printed, b64, "accepted a non-canonical base64 key");
    let line = format!("{ty} {printed}");
    assert_eq!(parse_key_line(&line).as_deref(), Some(blob));
    line
}

/// A host name config.rs would accept for a jail.
fn plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(&b))
}

fn check_patterns(patterns: &str, name: &str) {
    let got = host_matches(patterns, name);
    if patterns.starts_with("|1|") {
        return;
    }
    // Globs are ASCII case-insensitive.
    assert_eq!(
        host_matches(&patterns.to_ascii_uppercase(), name),
        got,
        "{patterns:?} {name:?}"
    );
    // The reference is quadratic: keep each execution fast.
    if patterns.len().saturating_mul(name.len() + 1) > 1 << 16 {
        return;
    }
    let mut matched = false;
    let mut negated = false;
    for p in patterns.split(',') {
        match p.strip_prefix('!') {
            Some(neg) => negated |= glob_reference(neg.as_bytes(), name.as_bytes()),
            None => matched |= glob_reference(p.as_bytes(), name.as_bytes()),
        }
    }
    assert_eq!(got, matched && !negated, "{patterns:?} {name:?}");
}

/// `*` and `?` glob by dynamic programming over (pattern, name) prefixes.
fn glob_reference(pat: &[u8], s: &[u8]) -> bool {
    // m[j]: pat[..i] matches s[..j].
    let mut m = vec![false; s.len() + 1];
    m[0] = true;
    for &c in pat {
        let mut next = vec![false; s.len() + 1];
        if c == b'*' {
            let mut any = false;
            for j in 0..=s.len() {
                any |= m[j];
                next[j] = any;
            }
        } else {
            for j in 1..=s.len() {
                next[j] = m[j - 1] && (c == b'?' || c.eq_ignore_ascii_case(&s[j - 1]));
            }
        }
        m = next;
    }
    m[s.len()]
}
