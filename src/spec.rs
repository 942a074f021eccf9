//! The pure parsers of every configuration value a user or a firmware builder
//! writes: destinations, `-R`/`-L` specs, ports, seconds, yes/no, host keys,
//! paths. The device parses flags and environment with them at run time, and
//! `build.rs` includes this very file (`#[path = "src/spec.rs"]`) to check the
//! compiled-in `JAILBIRD_DEFAULT_*` values, so a value the build accepts is
//! exactly a value the device accepts.
//!
//! Hence: std only, no crate dependencies, no cargo features (a caller applies
//! those: the syntax is the same whether or not a capability is built in).

use std::fmt;

/// Jails in a destination list.
pub const MAX_JAILS: usize = 8;
/// Largest number of seconds an interval or timeout option takes (one day).
pub const MAX_OPTION_SECS: u64 = 86_400;
/// Largest ServerAliveCountMax.
pub const MAX_ALIVE_COUNT: u64 = 1000;
/// Longest host name (DNS).
pub const MAX_HOST_BYTES: usize = 253;
/// Longest unix socket path a jail can bind (sun_path is 108 bytes with the NUL).
pub const MAX_SOCKET_PATH_BYTES: usize = 100;
/// Longest file path accepted in a compiled-in default.
pub const MAX_PATH_BYTES: usize = 4096;

/// A configuration problem: one line naming the option and what was wrong.
#[derive(Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

pub fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// One jail sshd to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jail {
    pub user: String,
    pub host: String,
    pub port: u16,
}

impl fmt::Display for Jail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", bracket(&self.host), self.port)
    }
}

/// `-R [BIND:]PORT:TARGET_HOST:TARGET_PORT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteForward {
    /// A unix socket path on the jail (`-R /path.sock:host:port`); `%h` and `%i`
    /// are expanded once the device key is known (see `expand_socket_path`).
    pub socket: Option<String>,
    /// Address the jail binds; `None` sends `localhost`, as OpenSSH does.
    pub bind: Option<String>,
    pub port: u16,
    pub target_host: String,
    pub target_port: u16,
}

impl RemoteForward {
    /// The bind address sent in the `tcpip-forward` request.
    pub fn bind_address(&self) -> &str {
        self.bind.as_deref().unwrap_or("localhost")
    }
}

/// `-L [BIND:]PORT:HOST:HOSTPORT`: the agent listens on BIND:PORT and opens a
/// `direct-tcpip` channel to HOST:HOSTPORT through the jail per connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalForward {
    /// Local address to listen on (`127.0.0.1` unless given; `*` is every interface).
    pub bind: String,
    /// Local port; 0 lets the kernel pick (reported in the `tunnel up` line).
    pub port: u16,
    /// Where the jail connects, as the jail resolves it.
    pub host: String,
    pub host_port: u16,
}

impl LocalForward {
    /// The address to bind, with `*` meaning every IPv4 interface.
    pub fn bind_address(&self) -> &str {
        if self.bind == "*" {
            "0.0.0.0"
        } else {
            &self.bind
        }
    }
}

/// A whole number in `min..=max` (surrounding blanks allowed, as in an env file).
pub fn parse_number(s: &str, what: &str, min: u64, max: u64) -> Result<u64, ConfigError> {
    let t = s.trim();
    match t.parse::<u64>() {
        Ok(n) if t.bytes().all(|b| b.is_ascii_digit()) && (min..=max).contains(&n) => Ok(n),
        _ => Err(bad(format!(
            "{what} {s:?}: expected a whole number {min}..={max}"
        ))),
    }
}

pub fn parse_port(s: &str, what: &str) -> Result<u16, ConfigError> {
    let t = s.trim();
    match t.parse::<u16>() {
        Ok(p) if t.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(bad(format!("{what} {s:?}: expected a port number 0-65535"))),
    }
}

/// Whole seconds, 0 to [`MAX_OPTION_SECS`].
pub fn parse_secs(s: &str, what: &str) -> Result<u64, ConfigError> {
    parse_number(s, what, 0, MAX_OPTION_SECS)
}

pub fn parse_yes_no(s: &str, what: &str) -> Result<bool, ConfigError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "1" => Ok(true),
        "no" | "false" | "0" => Ok(false),
        _ => Err(bad(format!("{what}={s:?}: expected yes or no"))),
    }
}

/// StrictHostKeyChecking: `true` for accept-new.
pub fn parse_strict(s: &str) -> Result<bool, ConfigError> {
    match s.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" => Ok(false),
        "accept-new" => Ok(true),
        "no" | "off" | "false" | "ask" => Err(bad(format!(
            "StrictHostKeyChecking={s}: not supported (jailbird never trusts an unchecked host key); use yes or accept-new"
        ))),
        _ => Err(bad(format!(
            "StrictHostKeyChecking={s:?}: expected yes or accept-new"
        ))),
    }
}

/// Splits `HOST:PORT` or `[V6]:PORT` at the last colon outside brackets.
pub fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once(']')?;
        return Some((h, p.strip_prefix(':')?));
    }
    let (h, p) = s.rsplit_once(':')?;
    (!h.contains(':')).then_some((h, p))
}

pub fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= MAX_HOST_BYTES
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:%".contains(&b))
}

pub fn valid_user(u: &str) -> bool {
    !u.is_empty()
        && u.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A device id as a claim request or answer carries it (`--device-id`):
/// 1 to 64 of `A-Z a-z 0-9 . _ -`, not starting with `-` or `.`.
pub fn valid_device_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && !id.starts_with(['-', '.'])
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Parses `[USER@]HOST`, `[USER@]HOST:PORT` or `[USER@][V6ADDR]:PORT`.
pub fn parse_destination(
    s: &str,
    default_user: &str,
    default_port: u16,
) -> Result<Jail, ConfigError> {
    let (user, hostport) = match s.rsplit_once('@') {
        Some((u, h)) => (u, h),
        None => (default_user, s),
    };
    if !valid_user(user) {
        return Err(bad(format!("destination {s:?}: bad user name {user:?}")));
    }
    let (host, port) = if hostport.starts_with('[') || hostport.matches(':').count() == 1 {
        let (h, p) = split_host_port(hostport).ok_or_else(|| {
            bad(format!(
                "destination {s:?}: expected HOST:PORT or [V6ADDR]:PORT"
            ))
        })?;
        (h, parse_port(p, &format!("destination {s:?}: port"))?)
    } else {
        (hostport, default_port)
    };
    if !valid_host(host) {
        return Err(bad(format!("destination {s:?}: bad host name {host:?}")));
    }
    if port == 0 {
        return Err(bad(format!("destination {s:?}: port 0")));
    }
    Ok(Jail {
        user: user.into(),
        host: host.into(),
        port,
    })
}

/// A comma-separated list of destinations, tried in turn: 1 to [`MAX_JAILS`].
pub fn parse_destinations(
    list: &str,
    default_user: &str,
    default_port: u16,
) -> Result<Vec<Jail>, ConfigError> {
    let mut jails = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if jails.len() == MAX_JAILS {
            return Err(bad(format!("more than {MAX_JAILS} jails in {list:?}")));
        }
        jails.push(parse_destination(entry, default_user, default_port)?);
    }
    if jails.is_empty() {
        return Err(bad(format!("destination {list:?} names no jail")));
    }
    Ok(jails)
}

/// Splits a forward spec at colons outside `[...]`: up to four fields.
fn spec_fields<'a>(s: &'a str, flag: &str) -> Result<Vec<&'a str>, ConfigError> {
    let mut out = Vec::with_capacity(4);
    let (mut depth, mut start) = (0u8, 0);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth = depth.saturating_add(1),
            ']' => depth = depth.saturating_sub(1),
            ':' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if out.len() == 4 {
            return Err(bad(format!("{flag} {s:?}: too many ':' fields")));
        }
    }
    out.push(&s[start..]);
    Ok(out)
}

/// An HTTP CONNECT proxy (`--proxy http://[USER:PASS@]HOST:PORT`). Printing
/// it (`Display`, `Debug`) never shows the credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    pub host: String,
    pub port: u16,
    /// For `Proxy-Authorization: Basic`, percent-decoded.
    pub credentials: Option<Credentials>,
}

/// A proxy user and password. `Debug` prints neither.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(not shown)")
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl fmt::Display for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}:{}", bracket(&self.host), self.port)
    }
}

/// Parses `http://[USER[:PASS]@]HOST:PORT[/]` (USER and PASS percent-encoded
/// where they hold `@`, `:` or `%`). Errors name `what` and show the value
/// with its user and password replaced by `***`.
pub fn parse_proxy_url(s: &str, what: &str) -> Result<ProxyUrl, ConfigError> {
    let err = |why: &str| bad(format!("{what} {:?}: {why}", redact_userinfo(s)));
    let form = "expected http://[USER:PASS@]HOST:PORT";
    let (scheme, rest) = s.trim().split_once("://").ok_or_else(|| err(form))?;
    if scheme.eq_ignore_ascii_case("https") {
        return Err(err(
            "TLS to the proxy is not supported: use http:// (the SSH link through it is end-to-end encrypted either way)",
        ));
    }
    if !scheme.eq_ignore_ascii_case("http") {
        return Err(err("only http:// (HTTP CONNECT) proxies are supported"));
    }
    let (userinfo, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let hostport = hostport.strip_suffix('/').unwrap_or(hostport);
    if hostport.contains(['/', '?', '#']) {
        return Err(err("a proxy URL has no path, query or fragment"));
    }
    let (host, port) = split_host_port(hostport).ok_or_else(|| err(form))?;
    let port = match port.parse::<u16>() {
        Ok(p) if p != 0 && port.bytes().all(|b| b.is_ascii_digit()) => p,
        _ => return Err(err("expected a port number 1-65535")),
    };
    if !valid_host(host) {
        return Err(err("bad host name"));
    }
    let credentials = userinfo.map(parse_userinfo).transpose().map_err(err)?;
    Ok(ProxyUrl {
        host: host.into(),
        port,
        credentials,
    })
}

/// `USER[:PASS]`, percent-decoded; Basic auth allows no `:` in the user and
/// nothing here allows control characters.
fn parse_userinfo(u: &str) -> Result<Credentials, &'static str> {
    let (user, password) = u.split_once(':').unwrap_or((u, ""));
    let decode = |s: &str| -> Result<String, &'static str> {
        let mut out = Vec::with_capacity(s.len());
        let mut b = s.bytes();
        while let Some(c) = b.next() {
            if c != b'%' {
                out.push(c);
                continue;
            }
            let hex = |c: Option<u8>| (c? as char).to_digit(16);
            match (hex(b.next()), hex(b.next())) {
                (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                _ => return Err("a % in the user or password is not followed by two hex digits"),
            }
        }
        let s = String::from_utf8(out).map_err(|_| "the user or password is not UTF-8")?;
        if s.chars().any(char::is_control) {
            return Err("control characters in the user or password");
        }
        Ok(s)
    };
    let user = decode(user)?;
    if user.is_empty() || user.contains(':') {
        return Err("the user is empty or holds a colon (Basic authentication allows neither)");
    }
    Ok(Credentials {
        user,
        password: decode(password)?,
    })
}

/// `s` with everything before the last `@` of a URL's authority replaced by
/// `***`, for error messages.
pub fn redact_userinfo(s: &str) -> String {
    let (scheme, rest) = s.split_once("://").map_or(("", s), |(a, b)| (a, b));
    match rest.rsplit_once('@') {
        Some((_, host)) if scheme.is_empty() => format!("***@{host}"),
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => s.to_string(),
    }
}

/// Puts an IPv6 address in brackets for a `host:port` spec.
pub fn bracket(s: &str) -> String {
    if s.contains(':') && !s.starts_with('[') {
        format!("[{s}]")
    } else {
        s.into()
    }
}

pub fn unbracket(s: &str) -> &str {
    s.strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s)
}

/// A socket path the jail can bind: absolute, short enough, no NUL or line break.
pub fn valid_socket_path(p: &str) -> bool {
    p.starts_with('/') && p.len() <= MAX_SOCKET_PATH_BYTES && !p.contains(['\0', '\n', '\r'])
}

/// Parses `-R /remote/path.sock:TARGET_HOST:TARGET_PORT` (the syntax; whether
/// unix-socket forwards are built in is the caller's question).
pub fn parse_socket_forward(s: &str) -> Result<RemoteForward, ConfigError> {
    let mut it = s.rsplitn(3, ':');
    let (Some(port), Some(host), Some(path)) = (it.next(), it.next(), it.next()) else {
        return Err(bad(format!(
            "-R {s:?}: expected /remote/path.sock:TARGET_HOST:TARGET_PORT"
        )));
    };
    let target_host = unbracket(host);
    if !valid_host(target_host) {
        return Err(bad(format!("-R {s:?}: bad target host {target_host:?}")));
    }
    let target_port = parse_port(port, &format!("-R {s:?}: target port"))?;
    if target_port == 0 || !valid_socket_path(path) {
        return Err(bad(format!("-R {s:?}: bad socket path or target port")));
    }
    Ok(RemoteForward {
        socket: Some(path.into()),
        bind: None,
        port: 0,
        target_host: target_host.into(),
        target_port,
    })
}

/// Expands `%h` (this device's hostname) and `%i` (its device id: the first 16
/// hex digits of the SHA-256 of its public key) in a socket path.
pub fn expand_socket_path(template: &str, hostname: &str, device_id: &str) -> String {
    template.replace("%h", hostname).replace("%i", device_id)
}

/// A `-R` bind address: empty (none), `*`, or a host.
pub fn parse_remote_bind(b: &str, what: &str) -> Result<Option<String>, ConfigError> {
    match unbracket(b) {
        "" => Ok(None),
        b if b == "*" || valid_host(b) => Ok(Some(b.to_string())),
        b => Err(bad(format!("{what}: bad bind address {b:?}"))),
    }
}

/// Parses `-R [BIND:]PORT:TARGET_HOST:TARGET_PORT` or `-R /path.sock:HOST:PORT`.
pub fn parse_remote_forward(s: &str) -> Result<RemoteForward, ConfigError> {
    if s.starts_with('/') {
        return parse_socket_forward(s);
    }
    let f = spec_fields(s, "-R")?;
    let (bind, rest) = match f.len() {
        3 => (None, &f[..]),
        4 => (parse_remote_bind(f[0], &format!("-R {s:?}"))?, &f[1..]),
        _ => {
            return Err(bad(format!(
                "-R {s:?}: expected [BIND:]PORT:TARGET_HOST:TARGET_PORT"
            )));
        }
    };
    let port = parse_port(rest[0], &format!("-R {s:?}: listen port"))?;
    let target_host = unbracket(rest[1]);
    if !valid_host(target_host) {
        return Err(bad(format!("-R {s:?}: bad target host {target_host:?}")));
    }
    let target_port = parse_port(rest[2], &format!("-R {s:?}: target port"))?;
    if target_port == 0 {
        return Err(bad(format!("-R {s:?}: target port 0")));
    }
    Ok(RemoteForward {
        socket: None,
        bind,
        port,
        target_host: target_host.into(),
        target_port,
    })
}

/// Parses `-L [BIND:]PORT:HOST:HOSTPORT` (the syntax; whether local forwards
/// are built in is the caller's question).
pub fn parse_local_forward(s: &str) -> Result<LocalForward, ConfigError> {
    let f = spec_fields(s, "-L")?;
    let (bind, rest) = match f.len() {
        3 => (None, &f[..]),
        4 => (Some(unbracket(f[0])), &f[1..]),
        _ => {
            return Err(bad(format!("-L {s:?}: expected [BIND:]PORT:HOST:HOSTPORT")));
        }
    };
    let bind = match bind {
        None | Some("") | Some("localhost") => "127.0.0.1".to_string(),
        Some("*") => "*".to_string(),
        Some(b) if b.parse::<std::net::IpAddr>().is_ok() => b.to_string(),
        Some(b) => {
            return Err(bad(format!(
                "-L {s:?}: bind address {b:?} must be an IP address, localhost or *"
            )));
        }
    };
    let port = parse_port(rest[0], &format!("-L {s:?}: listen port"))?;
    let host = unbracket(rest[1]);
    if !valid_host(host) {
        return Err(bad(format!("-L {s:?}: bad host {host:?}")));
    }
    let host_port = parse_port(rest[2], &format!("-L {s:?}: host port"))?;
    if host_port == 0 {
        return Err(bad(format!("-L {s:?}: host port 0")));
    }
    Ok(LocalForward {
        bind,
        port,
        host: host.into(),
        host_port,
    })
}

/// An absolute file path (for compiled-in defaults).
pub fn parse_absolute_path(s: &str, what: &str) -> Result<(), ConfigError> {
    if !s.starts_with('/') {
        return Err(bad(format!("{what} {s:?}: expected an absolute path")));
    }
    if s.len() > MAX_PATH_BYTES || s.contains(['\n', '\r', '\0']) {
        return Err(bad(format!("{what} {s:?}: not a usable path")));
    }
    Ok(())
}

/// Standard (padded) base64, as OpenSSH writes key lines.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
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
    let last = s.len() / 4 - 1;
    for (i, chunk) in s.chunks(4).enumerate() {
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i != last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            n = n << 6 | val(c)?;
        }
        // Canonical only (as OpenSSH and base64ct): the bits padding leaves
        // over must be zero, so one key has one spelling.
        if n & ((1 << (2 * pad)) - 1) != 0 {
            return None;
        }
        n <<= 6 * pad as u32;
        out.extend_from_slice(&n.to_be_bytes()[1..4 - pad]);
    }
    Some(out)
}

/// Parses `"TYPE BASE64 [comment]"` into the key's wire blob, checking that the
/// type named matches the type inside the blob.
pub fn parse_key_line(s: &str) -> Option<Vec<u8>> {
    let mut it = s.split_ascii_whitespace();
    let ty = it.next()?;
    let blob = base64_decode(it.next()?)?;
    // The blob starts with its own type as an SSH string.
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    // checked: `4 + len` overflows a 32-bit usize (ARMv6/v7) for len near u32::MAX.
    (blob.get(4..4usize.checked_add(len)?)? == ty.as_bytes()).then_some(blob)
}

/// The cargo feature a host key type needs (`None`: always built in), or an
/// error for a type jailbird never supports.
pub fn key_type_feature(ty: &str) -> Result<Option<&'static str>, ConfigError> {
    match ty {
        "ssh-ed25519" | "ecdsa-sha2-nistp256" => Ok(None),
        "ecdsa-sha2-nistp384" | "ecdsa-sha2-nistp521" => Ok(Some("nistp384-521")),
        "ssh-rsa" => Ok(Some("rsa")),
        _ => Err(bad(format!("unsupported key type {ty:?}"))),
    }
}

/// `--host-key "TYPE BASE64"`: the blob, for a type jailbird supports.
pub fn parse_host_key(s: &str, what: &str) -> Result<Vec<u8>, ConfigError> {
    let ty = s.split_ascii_whitespace().next().unwrap_or("");
    key_type_feature(ty).map_err(|e| bad(format!("{what} {s:?}: {e}")))?;
    parse_key_line(s).ok_or_else(|| {
        bad(format!(
            "{what} {s:?}: expected \"TYPE BASE64\" of an OpenSSH public key"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // build.rs checks compiled-in defaults with these very functions, so each
    // of these holds at build time and on the device alike.

    #[test]
    fn a_socket_path_with_a_line_break_is_refused() {
        assert!(parse_remote_forward("/run/dev.sock:127.0.0.1:22").is_ok());
        assert!(parse_remote_forward("/run/de\nv.sock:127.0.0.1:22").is_err());
        assert!(parse_remote_forward(&format!("/{}:127.0.0.1:22", "a".repeat(100))).is_err());
    }

    #[test]
    fn numbers_allow_surrounding_blanks_only() {
        assert_eq!(parse_port(" 22", "p").unwrap(), 22);
        assert_eq!(parse_number("22 ", "n", 1, 65535).unwrap(), 22);
        for bad in ["+22", "2 2", "", "-1", "65536", "0x16"] {
            assert!(parse_port(bad, "p").is_err(), "{bad:?}");
        }
        assert!(parse_number("0", "n", 1, 10).is_err());
        assert!(parse_secs("86401", "s").is_err());
    }

    #[test]
    fn key_line_length_cannot_overflow() {
        // A blob whose length field is u32::MAX: `4 + len` would wrap on 32-bit.
        let blob = [0xffu8, 0xff, 0xff, 0xff, b's', b's', b'h'];
        let line = format!("ssh-ed25519 {}", encode(&blob));
        assert_eq!(parse_key_line(&line), None);
        assert!(parse_host_key(&line, "k").is_err());
    }

    #[test]
    fn key_lines_parse() {
        let good =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVlH0kwQ3cXS5pOBa1ql8lAvdqtmhvZyX7ELmXrHNXl c";
        assert_eq!(parse_key_line(good).unwrap().len(), 51);
        assert!(parse_host_key("ssh-dss AAAA", "k").is_err());
        assert!(
            parse_key_line(
                "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGVlH0kwQ3cXS5pOBa1ql8lAvdqtmhvZyX7ELmXrHNXl"
            )
            .is_none()
        );
        assert_eq!(base64_decode("AA=A"), None);
        // Non-canonical: the bits left over by the padding are not zero.
        assert_eq!(base64_decode("AE=="), None);
        assert_eq!(base64_decode("AA=="), Some(vec![0]));
        assert_eq!(base64_decode("AAB="), None);
        assert_eq!(base64_decode("AAE="), Some(vec![0, 1]));
        assert_eq!(base64_decode("AAA="), Some(vec![0, 0]));
        assert_eq!(
            parse_key_line("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAInkVzrm0SdG6UOoqKLsabgH="),
            None
        );
    }

    #[test]
    fn destinations() {
        let j = parse_destinations("a@h1:2200, h2", "tun", 22).unwrap();
        assert_eq!(
            (j[0].user.as_str(), j[0].port, j[1].user.as_str(), j[1].port),
            ("a", 2200, "tun", 22)
        );
        assert!(parse_destinations(",", "tun", 22).is_err());
        assert!(parse_destinations(&["h"; MAX_JAILS + 1].join(","), "tun", 22).is_err());
        assert!(parse_destinations(&["h"; MAX_JAILS].join(","), "tun", 22).is_ok());
    }

    fn encode(b: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in b.chunks(3) {
            let n = (u32::from(c[0]) << 16)
                | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
                | u32::from(*c.get(2).unwrap_or(&0));
            for i in 0..4 {
                if i <= c.len() {
                    s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    s.push('=');
                }
            }
        }
        s
    }
}
