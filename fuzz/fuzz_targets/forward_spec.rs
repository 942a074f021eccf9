//! The forward-spec parsers (`-R`, `-L`) and the socket-path expansion.
//!
//! Input: `SPEC` or `SPEC\0HOSTNAME` (UTF-8). SPEC goes to both parsers and is
//! the template for `expand_socket_path`; HOSTNAME stands in for `%h`.
//! Nothing may panic; an accepted spec must satisfy the invariants the agent
//! relies on and print back to a spec that parses to the same value.
#![no_main]

use jailbird::config::{
    LocalForward, RemoteForward, expand_socket_path, parse_local_forward, parse_remote_forward,
};
use libfuzzer_sys::fuzz_target;

/// A device id as `identity::device_id` makes it: 16 lowercase hex digits.
const DEVICE_ID: &str = "0123456789abcdef";

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let (spec, hostname) = input.split_once('\0').unwrap_or((input, "jaildev"));

    let remote = parse_remote_forward(spec);
    match &remote {
        Ok(r) => check_remote(spec, r),
        Err(e) => one_line(&e.0),
    }
    let local = parse_local_forward(spec);
    match &local {
        Ok(l) => check_local(spec, l),
        Err(e) => one_line(&e.0),
    }
    // -L accepts a subset of what -R accepts (its bind must be an address).
    if let Ok(l) = &local {
        let r = remote
            .as_ref()
            .expect("an -L spec must also be a valid -R spec");
        assert_eq!(
            (r.port, r.target_host.as_str(), r.target_port),
            (l.port, l.host.as_str(), l.host_port)
        );
    }

    check_expand(spec, hostname);
});

fn one_line(msg: &str) {
    assert!(
        !msg.is_empty() && !msg.contains('\n'),
        "error is not one line: {msg:?}"
    );
}

fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(&b))
}

fn bracket(s: &str) -> String {
    if s.contains(':') {
        format!("[{s}]")
    } else {
        s.to_string()
    }
}

fn check_remote(spec: &str, r: &RemoteForward) {
    assert_ne!(r.target_port, 0, "{spec:?}");
    assert!(valid_host(&r.target_host), "{spec:?} -> {r:?}");
    let printed = match &r.socket {
        Some(path) => {
            assert!(
                path.starts_with('/') && path.len() <= 100,
                "{spec:?} -> {r:?}"
            );
            assert!(!path.contains(['\0', '\n']), "{spec:?} -> {r:?}");
            assert!(r.bind.is_none() && r.port == 0, "{spec:?} -> {r:?}");
            assert!(!r.target_host.contains(':'), "{spec:?} -> {r:?}");
            format!("{path}:{}:{}", r.target_host, r.target_port)
        }
        None => {
            assert!(!spec.starts_with('/'));
            let bind = match r.bind.as_deref() {
                Some(b) => {
                    assert!(b == "*" || valid_host(b), "{spec:?} -> {r:?}");
                    format!("{}:", bracket(b))
                }
                None => String::new(),
            };
            format!(
                "{bind}{}:{}:{}",
                r.port,
                bracket(&r.target_host),
                r.target_port
            )
        }
    };
    let again = parse_remote_forward(&printed)
        .unwrap_or_else(|e| panic!("{spec:?} -> {r:?} printed as {printed:?}: {e}"));
    assert_eq!(&again, r, "{spec:?} printed as {printed:?}");
    assert!(!r.bind_address().is_empty());
}

fn check_local(spec: &str, l: &LocalForward) {
    assert_ne!(l.host_port, 0, "{spec:?}");
    assert!(valid_host(&l.host), "{spec:?} -> {l:?}");
    assert!(
        l.bind_address().parse::<std::net::IpAddr>().is_ok(),
        "{spec:?} -> bind {:?}",
        l.bind_address()
    );
    let printed = format!(
        "{}:{}:{}:{}",
        bracket(&l.bind),
        l.port,
        bracket(&l.host),
        l.host_port
    );
    let again = parse_local_forward(&printed)
        .unwrap_or_else(|e| panic!("{spec:?} -> {l:?} printed as {printed:?}: {e}"));
    assert_eq!(&again, l, "{spec:?} printed as {printed:?}");
}

/// `%h` and `%i` replaced in one left-to-right pass.
fn expand_reference(template: &str, hostname: &str, device_id: &str) -> String {
    let mut out = String::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('%', Some('h')) => {
                chars.next();
                out.push_str(hostname);
            }
            ('%', Some('i')) => {
                chars.next();
                out.push_str(device_id);
            }
            _ => out.push(c),
        }
    }
    out
}

fn check_expand(template: &str, hostname: &str) {
    let out = expand_socket_path(template, hostname, DEVICE_ID);
    if !template.contains('%') {
        assert_eq!(out, template);
    }
    // A device id never contains '%' or starts with 'i', so no `%i` survives.
    assert!(!out.contains("%i"), "{template:?} {hostname:?} -> {out:?}");
    // Replacement is sequential (all %h, then all %i): it matches a single pass
    // unless a hostname brings its own '%' or the template has a literal "%%"
    // in front of a token (both outside what a real hostname or path has).
    if !hostname.contains('%') && !template.contains("%%") {
        assert_eq!(
            out,
            expand_reference(template, hostname, DEVICE_ID),
            "{template:?} {hostname:?}"
        );
    }
    // Arbitrary substitutions must not panic either.
    let _ = expand_socket_path(template, hostname, hostname);
}
