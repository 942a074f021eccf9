//! Where the jail's host key may be found trustworthy: a pinned key, a
//! known_hosts file, accept-new, each looked up in the one order of
//! [`super::Lookup`]; and a refusal to run with none of them where nothing
//! could have been pinned earlier either.

use super::{KeySource, Lookup};
use crate::cli::{Args, env};
use crate::defaults;
use crate::hostkey::TrustSources;
use crate::options::Options;
use crate::spec::{self, ConfigError, bad, parse_strict};
use std::path::PathBuf;

/// The trust sources for `jailbird run`; takes what it uses out of the flags.
pub(super) fn resolve_trust(
    l: &Lookup,
    args: &mut Args,
    o: &mut Options,
    key: &KeySource,
) -> Result<TrustSources, ConfigError> {
    let so = &l.ssh_options;
    let known_hosts = l
        .get_or_ssh(
            args.known_hosts.take().or(o.user_known_hosts.take()),
            &[env::KNOWN_HOSTS, env::SSH_KNOWN_HOSTS_FILE],
            so.user_known_hosts.clone(),
        )
        .or_else(|| defaults::KNOWN_HOSTS.map(Into::into))
        .or_else(|| {
            defaults::KNOWN_HOSTS_MOUNT
                .filter(|p| std::path::Path::new(p).is_file())
                .map(Into::into)
        })
        .map(PathBuf::from);
    let pinned = match l
        .get(args.host_key.take(), &[env::HOST_KEY])
        .or_else(|| defaults::HOST_KEY.map(Into::into))
    {
        Some(k) => Some(parse_host_key(&k, "--host-key")?),
        None => None,
    };
    let host_cas = match l
        .get(args.host_ca.take(), &[env::HOST_CA])
        .or_else(|| defaults::HOST_CA.map(Into::into))
    {
        Some(k) => vec![parse_host_key(&k, "--host-ca")?],
        None => Vec::new(),
    };
    let accept_new = parse_strict(
        &l.get_or_ssh(
            o.strict.take(),
            &[env::STRICT_HOST_KEY_CHECKING],
            so.strict.clone(),
        )
        .unwrap_or_else(|| defaults::STRICT_HOST_KEY_CHECKING.into()),
    )?;
    if pinned.is_none()
        && known_hosts.is_none()
        && host_cas.is_empty()
        && !accept_new
        && matches!(key, KeySource::OpenSsh(_))
    {
        // Without a state file there is nowhere to have pinned a key earlier either.
        return Err(bad(
            "no way to check the jail's host key: give --known-hosts, --host-key, --host-ca, or -o StrictHostKeyChecking=accept-new",
        ));
    }
    Ok(TrustSources {
        pinned,
        known_hosts,
        accept_new,
        host_cas,
    })
}

/// `--host-key` with this build's key types: the syntax is [`spec::parse_host_key`]'s.
pub fn parse_host_key(s: &str, what: &str) -> Result<Vec<u8>, ConfigError> {
    let ty = s.split_ascii_whitespace().next().unwrap_or("");
    let built_in = |f: &str| match f {
        "rsa" => cfg!(feature = "rsa"),
        "nistp384-521" => cfg!(feature = "nistp384-521"),
        _ => false,
    };
    if let Ok(Some(f)) = spec::key_type_feature(ty)
        && !built_in(f)
    {
        return Err(bad(format!(
            "{what}: a {ty} host key needs the cargo feature {f}, not built into this jailbird"
        )));
    }
    spec::parse_host_key(s, what)
}
