//! Fails the build on a build-time variable the device could not use: a value of
//! `JAILBIRD_DEFAULT_*` (read by src/defaults.rs) or `JAILBIRD_MAX_CHANNELS` /
//! `JAILBIRD_COPY_BUF_BYTES` (src/limits.rs) that the very parser the device runs refuses
//! (src/spec.rs, included below), or a misspelt name; one line names the variable.

#[path = "src/spec.rs"]
#[allow(dead_code)]
mod spec;

use spec::{ConfigError, MAX_ALIVE_COUNT, MAX_OPTION_SECS, bad};
use std::env;

type Check = fn(&str) -> Result<(), ConfigError>;

/// Every build-time variable and its check (the run-time parser of that value).
#[rustfmt::skip] // a table: one variable a line
const VARS: &[(&str, Check)] = &[
    ("JAILBIRD_MAX_CHANNELS", |v| number(v, "value", 1, 1024)),
    ("JAILBIRD_COPY_BUF_BYTES", |v| number(v, "value", 1024, 256 * 1024)),
    ("JAILBIRD_DEFAULT_DESTINATION", |v| spec::parse_destinations(v, "user", 22).map(drop)),
    ("JAILBIRD_DEFAULT_PORT", |v| number(v, "port", 1, 65535)),
    ("JAILBIRD_DEFAULT_USER", |v| spec::parse_destination(&format!("{v}@h"), "", 22).map(drop)),
    ("JAILBIRD_DEFAULT_REMOTE_FORWARD", remote_forward),
    ("JAILBIRD_DEFAULT_LOCAL_FORWARD", local_forward),
    ("JAILBIRD_DEFAULT_STATE", |v| spec::parse_absolute_path(v, "path")),
    ("JAILBIRD_DEFAULT_KNOWN_HOSTS", |v| spec::parse_absolute_path(v, "path")),
    ("JAILBIRD_DEFAULT_IDENTITY_MOUNT", |v| spec::parse_absolute_path(v, "path")),
    ("JAILBIRD_DEFAULT_KNOWN_HOSTS_MOUNT", |v| spec::parse_absolute_path(v, "path")),
    ("JAILBIRD_DEFAULT_HOST_KEY", host_key),
    ("JAILBIRD_DEFAULT_HOST_CA", host_key),
    ("JAILBIRD_DEFAULT_STRICT_HOST_KEY_CHECKING", |v| spec::parse_strict(v).map(drop)),
    ("JAILBIRD_DEFAULT_SERVER_ALIVE_INTERVAL", |v| spec::parse_secs(v, "seconds").map(drop)),
    ("JAILBIRD_DEFAULT_SERVER_ALIVE_COUNT_MAX", |v| number(v, "count", 1, MAX_ALIVE_COUNT)),
    ("JAILBIRD_DEFAULT_CONNECT_TIMEOUT", |v| number(v, "seconds", 1, MAX_OPTION_SECS)),
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
    let mut errors: Vec<String> = VARS.iter().filter_map(refused).collect();
    let set = |name: &str| matches!(env::var(name), Ok(v) if !v.is_empty());
    if set("JAILBIRD_DEFAULT_REMOTE_FORWARD") && set("JAILBIRD_DEFAULT_LOCAL_FORWARD") {
        errors.push("JAILBIRD_DEFAULT_REMOTE_FORWARD and JAILBIRD_DEFAULT_LOCAL_FORWARD are both set: one jailbird holds one tunnel".into());
    }
    errors.extend(unknown_defaults());
    for e in &errors {
        println!("cargo::error={e}");
    }
}

/// The error line for a variable set to a value its parser refuses.
fn refused(&(name, check): &(&str, Check)) -> Option<String> {
    let value = match env::var(name) {
        Err(env::VarError::NotPresent) => return None,
        Err(env::VarError::NotUnicode(_)) => return Some(format!("{name}: not valid UTF-8")),
        // An empty default is unset, as at run time; an empty limit is an error.
        Ok(v) if v.is_empty() && name.starts_with("JAILBIRD_DEFAULT_") => return None,
        Ok(v) => v,
    };
    let why = check(&value).err()?;
    Some(format!("{name}={value:?}: {why}"))
}

/// A misspelt `JAILBIRD_DEFAULT_*` name, which would otherwise be ignored.
fn unknown_defaults() -> impl Iterator<Item = String> {
    env::vars_os().filter_map(|(key, _)| {
        let key = key.to_string_lossy();
        (key.starts_with("JAILBIRD_DEFAULT_") && !VARS.iter().any(|(n, _)| *n == key))
            .then(|| format!("{key}: unknown build-time variable (see board/README.md)"))
    })
}

fn number(v: &str, what: &str, min: u64, max: u64) -> Result<(), ConfigError> {
    spec::parse_number(v, what, min, max).map(drop)
}

/// Refuses, when `needed`, a value this build lacks the cargo `feature` for.
fn needs(needed: bool, feature: &str, what: &str) -> Result<(), ConfigError> {
    let var = format!("CARGO_FEATURE_{}", feature.to_uppercase().replace('-', "_"));
    if needed && env::var_os(var).is_none() {
        return Err(bad(format!("{what} needs the cargo feature {feature}")));
    }
    Ok(())
}

fn remote_forward(v: &str) -> Result<(), ConfigError> {
    needs(v.starts_with('/'), "streamlocal", "a unix-socket forward")?;
    spec::parse_remote_forward(v).map(drop)
}

fn local_forward(v: &str) -> Result<(), ConfigError> {
    needs(true, "local-forward", "a local forward")?;
    spec::parse_local_forward(v).map(drop)
}

fn host_key(v: &str) -> Result<(), ConfigError> {
    let ty = v.split_ascii_whitespace().next().unwrap_or("");
    if let Some(f) = spec::key_type_feature(ty)? {
        needs(true, f, &format!("a {ty} host key"))?;
    }
    spec::parse_host_key(v, "host key").map(drop)
}
