//! Build-time configuration check. A firmware builder sets `JAILBIRD_DEFAULT_*`
//! (the compiled-in defaults, read by `src/config.rs` `defaults`) and
//! `JAILBIRD_MAX_CHANNELS` / `JAILBIRD_COPY_BUF_BYTES` (read by `src/limits.rs`)
//! in the environment of `cargo build`. Each value is checked here by the very
//! parser the device runs (`src/spec.rs`, included below), so a malformed or
//! misspelt value fails the build with one line naming the variable instead of
//! shipping a binary that fails on the device.

#[path = "src/spec.rs"]
#[allow(dead_code)]
mod spec;

use spec::ConfigError;
use std::env;

type Check = fn(&str) -> Result<(), ConfigError>;

/// Every build-time variable and its check (the run-time parser of that value).
const VARS: &[(&str, Check)] = &[
    ("JAILBIRD_MAX_CHANNELS", |v| {
        spec::parse_number(v, "value", 1, 1024).map(drop)
    }),
    ("JAILBIRD_COPY_BUF_BYTES", |v| {
        spec::parse_number(v, "value", 1024, 256 * 1024).map(drop)
    }),
    ("JAILBIRD_DEFAULT_DESTINATION", |v| {
        spec::parse_destinations(v, "user", 22).map(drop)
    }),
    ("JAILBIRD_DEFAULT_PORT", |v| {
        spec::parse_number(v, "port", 1, 65535).map(drop)
    }),
    ("JAILBIRD_DEFAULT_USER", |v| {
        spec::parse_destination(&format!("{v}@h"), "", 22).map(drop)
    }),
    ("JAILBIRD_DEFAULT_REMOTE_FORWARD", remote_forward),
    ("JAILBIRD_DEFAULT_LOCAL_FORWARD", local_forward),
    ("JAILBIRD_DEFAULT_STATE", |v| {
        spec::parse_absolute_path(v, "path")
    }),
    ("JAILBIRD_DEFAULT_KNOWN_HOSTS", |v| {
        spec::parse_absolute_path(v, "path")
    }),
    ("JAILBIRD_DEFAULT_HOST_KEY", host_key),
    ("JAILBIRD_DEFAULT_STRICT_HOST_KEY_CHECKING", |v| {
        spec::parse_strict(v).map(drop)
    }),
    ("JAILBIRD_DEFAULT_SERVER_ALIVE_INTERVAL", |v| {
        spec::parse_secs(v, "seconds").map(drop)
    }),
    ("JAILBIRD_DEFAULT_SERVER_ALIVE_COUNT_MAX", |v| {
        spec::parse_number(v, "count", 1, spec::MAX_ALIVE_COUNT).map(drop)
    }),
    ("JAILBIRD_DEFAULT_CONNECT_TIMEOUT", |v| {
        spec::parse_number(v, "seconds", 1, spec::MAX_OPTION_SECS).map(drop)
    }),
];

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=src/spec.rs");
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
        // An empty default counts as unset (as an empty variable does at run
        // time); src/limits.rs has no "empty means unset": an empty limit is an error.
        if value.is_empty() && name.starts_with("JAILBIRD_DEFAULT_") {
            continue;
        }
        if let Err(why) = check(value) {
            errors.push(format!("{name}={value:?}: {why}"));
        }
    }
    if set("JAILBIRD_DEFAULT_REMOTE_FORWARD") && set("JAILBIRD_DEFAULT_LOCAL_FORWARD") {
        errors.push("JAILBIRD_DEFAULT_REMOTE_FORWARD and JAILBIRD_DEFAULT_LOCAL_FORWARD are both set: one jailbird holds one tunnel".into());
    }
    for (key, _) in env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("JAILBIRD_DEFAULT_") && !VARS.iter().any(|(n, _)| *n == key) {
            errors.push(format!(
                "{key}: unknown build-time variable (see board/README.md)"
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

fn needs(f: &str, what: &str) -> Result<(), ConfigError> {
    match feature(f) {
        true => Ok(()),
        false => Err(spec::bad(format!("{what} needs the cargo feature {f}"))),
    }
}

fn remote_forward(v: &str) -> Result<(), ConfigError> {
    if v.starts_with('/') {
        needs("streamlocal", "a unix-socket forward")?;
    }
    spec::parse_remote_forward(v).map(drop)
}

fn local_forward(v: &str) -> Result<(), ConfigError> {
    needs("local-forward", "a local forward")?;
    spec::parse_local_forward(v).map(drop)
}

fn host_key(v: &str) -> Result<(), ConfigError> {
    let ty = v.split_ascii_whitespace().next().unwrap_or("");
    if let Some(f) = spec::key_type_feature(ty)? {
        needs(f, &format!("a {ty} host key"))?;
    }
    spec::parse_host_key(v, "host key").map(drop)
}
