//! Build-time configuration check. A firmware builder sets `JAILBIRD_DEFAULT_*`
//! (the compiled-in defaults, read by `src/config.rs` `defaults`) and
//! `JAILBIRD_MAX_CHANNELS` / `JAILBIRD_COPY_BUF_BYTES` (read by `src/limits.rs`)
//! in the environment of `cargo build`; the source reads them with
//! `option_env!`. This script checks every one of them first, so a malformed or
//! misspelt value fails the build with one line naming the variable, instead of
//! shipping a binary that fails on the device.
//!
//! The checks mirror the run-time parser in `src/config.rs` (roughly: the
//! binary parses the values again at run time with the real parser).

use std::env;

/// A check: `Ok` or what is wrong with the value.
type Check = fn(&str) -> Result<(), String>;

/// Every build-time variable and its check. An empty `JAILBIRD_DEFAULT_*`
/// counts as unset (as an empty variable does at run time).
const VARS: &[(&str, Check)] = &[
    ("JAILBIRD_MAX_CHANNELS", |v| number(v, 1, 1024)),
    ("JAILBIRD_COPY_BUF_BYTES", |v| number(v, 1024, 256 * 1024)),
    ("JAILBIRD_DEFAULT_DESTINATION", destination),
    ("JAILBIRD_DEFAULT_PORT", |v| number(v, 1, 65535)),
    ("JAILBIRD_DEFAULT_USER", user),
    ("JAILBIRD_DEFAULT_REMOTE_FORWARD", remote_forward),
    ("JAILBIRD_DEFAULT_LOCAL_FORWARD", local_forward),
    ("JAILBIRD_DEFAULT_STATE", absolute_path),
    ("JAILBIRD_DEFAULT_KNOWN_HOSTS", absolute_path),
    ("JAILBIRD_DEFAULT_HOST_KEY", host_key),
    ("JAILBIRD_DEFAULT_STRICT_HOST_KEY_CHECKING", |v| match v {
        "yes" | "accept-new" => Ok(()),
        _ => Err("expected yes or accept-new".into()),
    }),
    ("JAILBIRD_DEFAULT_SERVER_ALIVE_INTERVAL", |v| {
        number(v, 0, 86_400)
    }),
    ("JAILBIRD_DEFAULT_SERVER_ALIVE_COUNT_MAX", |v| {
        number(v, 1, 1000)
    }),
    ("JAILBIRD_DEFAULT_CONNECT_TIMEOUT", |v| number(v, 1, 86_400)),
];

/// Jails in a destination list (`MAX_JAILS` in src/limits.rs).
const MAX_JAILS: usize = 8;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for (name, _) in VARS {
        println!("cargo::rerun-if-env-changed={name}");
    }
    // For `jailbird info`.
    let target = env::var("TARGET").unwrap_or_default();
    println!("cargo::rustc-env=JAILBIRD_BUILD_TARGET={target}");

    let mut errors = Vec::new();
    let set = |name: &str| matches!(env::var(name), Ok(v) if !v.is_empty());
    for (name, check) in VARS {
        let Some(raw) = env::var_os(name) else {
            continue;
        };
        let Some(value) = raw.to_str() else {
            errors.push(format!("{name}: not valid UTF-8"));
            continue;
        };
        // src/limits.rs has no "empty means unset": an empty limit is an error.
        if value.is_empty() && name.starts_with("JAILBIRD_DEFAULT_") {
            continue;
        }
        if let Err(why) = check(value) {
            errors.push(format!("{name}={value:?}: {why}"));
        }
    }
    if set("JAILBIRD_DEFAULT_REMOTE_FORWARD") && set("JAILBIRD_DEFAULT_LOCAL_FORWARD") {
        errors.push(
            "JAILBIRD_DEFAULT_REMOTE_FORWARD and JAILBIRD_DEFAULT_LOCAL_FORWARD are both set: one jailbird holds one tunnel".into(),
        );
    }
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("JAILBIRD_DEFAULT_") && !VARS.iter().any(|(n, _)| *n == key) {
            let known: Vec<&str> = VARS.iter().map(|(n, _)| *n).collect();
            errors.push(format!(
                "{key}: unknown build-time variable (known: {})",
                known.join(", ")
            ));
        }
    }
    for e in &errors {
        println!("cargo::error={e}");
    }
}

fn feature(name: &str) -> bool {
    env::var_os(format!(
        "CARGO_FEATURE_{}",
        name.to_uppercase().replace('-', "_")
    ))
    .is_some()
}

fn number(v: &str, min: u64, max: u64) -> Result<(), String> {
    match v.parse::<u64>() {
        Ok(n) if v.bytes().all(|b| b.is_ascii_digit()) && (min..=max).contains(&n) => Ok(()),
        _ => Err(format!("expected a whole number {min}..={max}")),
    }
}

fn port(v: &str, what: &str, min: u16) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(p) if p >= min && v.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("{what} {v:?}: expected a port number {min}-65535")),
    }
}

fn user(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    ok.then_some(())
        .ok_or_else(|| format!("bad user name {v:?} (letters, digits, . _ -)"))
}

fn host(v: &str) -> Result<(), String> {
    let ok = !v.is_empty()
        && v.len() <= 253
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(&b));
    ok.then_some(()).ok_or_else(|| format!("bad host {v:?}"))
}

fn unbracket(s: &str) -> &str {
    s.strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s)
}

/// `HOST:PORT` or `[V6]:PORT`, split at the last colon outside brackets.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']')?;
        return Some((h, p.strip_prefix(':')?));
    }
    let (h, p) = s.rsplit_once(':')?;
    (!h.contains(':')).then_some((h, p))
}

/// `[USER@]HOST[:PORT]` or `[USER@][V6ADDR]:PORT`, comma-separated.
fn destination(v: &str) -> Result<(), String> {
    let entries: Vec<&str> = v
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if entries.is_empty() {
        return Err("names no jail (expected [USER@]HOST[:PORT][,...])".into());
    }
    if entries.len() > MAX_JAILS {
        return Err(format!("more than {MAX_JAILS} jails (MAX_JAILS)"));
    }
    for e in entries {
        let hostport = match e.rsplit_once('@') {
            Some((u, h)) => {
                user(u).map_err(|w| format!("{e:?}: {w}"))?;
                h
            }
            None => e,
        };
        let h = if hostport.starts_with('[') || hostport.matches(':').count() == 1 {
            let (h, p) = split_host_port(hostport)
                .ok_or_else(|| format!("{e:?}: expected HOST:PORT or [V6ADDR]:PORT"))?;
            port(p, &format!("{e:?}: port"), 1)?;
            h
        } else {
            hostport
        };
        host(h).map_err(|w| format!("{e:?}: {w}"))?;
    }
    Ok(())
}

/// Colon-separated fields outside `[...]`.
fn fields(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0u32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// `[BIND:]PORT:TARGET_HOST:TARGET_PORT` or `/remote/path.sock:TARGET_HOST:TARGET_PORT`.
fn remote_forward(v: &str) -> Result<(), String> {
    if v.starts_with('/') {
        if !feature("streamlocal") {
            return Err("a unix-socket forward needs the cargo feature streamlocal".into());
        }
        let mut it = v.rsplitn(3, ':');
        let (Some(p), Some(h), Some(path)) = (it.next(), it.next(), it.next()) else {
            return Err("expected /remote/path.sock:TARGET_HOST:TARGET_PORT".into());
        };
        if path.len() > 100 {
            return Err("socket path longer than 100 bytes".into());
        }
        host(unbracket(h))?;
        port(p, "target port", 1)?;
        return Ok(());
    }
    let f = fields(v);
    let rest = match f.len() {
        3 => &f[..],
        4 => {
            let bind = unbracket(f[0]);
            if !bind.is_empty() && bind != "*" {
                host(bind).map_err(|w| format!("bind address: {w}"))?;
            }
            &f[1..]
        }
        _ => return Err("expected [BIND:]PORT:TARGET_HOST:TARGET_PORT".into()),
    };
    port(rest[0], "listen port", 0)?;
    host(unbracket(rest[1]))?;
    port(rest[2], "target port", 1)?;
    Ok(())
}

/// `[BIND:]PORT:HOST:HOSTPORT`.
fn local_forward(v: &str) -> Result<(), String> {
    if !feature("local-forward") {
        return Err("a local forward needs the cargo feature local-forward".into());
    }
    let f = fields(v);
    let rest = match f.len() {
        3 => &f[..],
        4 => {
            let bind = unbracket(f[0]);
            let ok =
                matches!(bind, "" | "localhost" | "*") || bind.parse::<std::net::IpAddr>().is_ok();
            if !ok {
                return Err(format!(
                    "bind address {bind:?} must be an IP address, localhost or *"
                ));
            }
            &f[1..]
        }
        _ => return Err("expected [BIND:]PORT:HOST:HOSTPORT".into()),
    };
    port(rest[0], "listen port", 0)?;
    host(unbracket(rest[1]))?;
    port(rest[2], "host port", 1)?;
    Ok(())
}

fn absolute_path(v: &str) -> Result<(), String> {
    if !v.starts_with('/') {
        return Err("expected an absolute path".into());
    }
    if v.len() > 4096 || v.contains(['\n', '\0']) {
        return Err("not a usable path".into());
    }
    Ok(())
}

/// `TYPE BASE64 [COMMENT]`, the blob naming the same type (as `hostkey::parse_key_line` checks).
fn host_key(v: &str) -> Result<(), String> {
    let mut it = v.split_ascii_whitespace();
    let (Some(ty), Some(b64)) = (it.next(), it.next()) else {
        return Err("expected \"TYPE BASE64\" of an OpenSSH public key".into());
    };
    let needs = match ty {
        "ssh-ed25519" | "ecdsa-sha2-nistp256" => None,
        "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => Some("nistp384-521"),
        "ssh-rsa" => Some("rsa"),
        _ => return Err(format!("unsupported key type {ty:?}")),
    };
    if let Some(f) = needs.filter(|f| !feature(f)) {
        return Err(format!("a {ty} host key needs the cargo feature {f}"));
    }
    let blob = base64(b64).ok_or("the key is not valid base64")?;
    let len = blob
        .get(..4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize);
    match len.and_then(|n| blob.get(4..4 + n)) {
        Some(name) if name == ty.as_bytes() => Ok(()),
        _ => Err(format!("the key blob is not a {ty} key")),
    }
}

/// Standard base64 with padding.
fn base64(s: &str) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let s = s.as_bytes();
    if s.is_empty() || !s.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    for chunk in s.chunks(4) {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = n << 6 | val(c)?;
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}
