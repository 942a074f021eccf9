//! Typed values at the edge: every id, MAC, name, port range, duration, target
//! and key is parsed here once, so a malformed one never reaches SQL.

use crate::error::Error;
use std::fmt;

/// The longest device id (contract: `[A-Za-z0-9._-]{1,64}`).
pub const MAX_ID_CHARS: usize = 64;
/// The longest pool, jail or operator name.
pub const MAX_NAME_CHARS: usize = 64;
/// The longest public key line accepted (an RSA-8192 line is ~1.4 KB).
pub const MAX_KEY_LINE_BYTES: usize = 4096;

fn id_like(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && s != "."
        && s != ".."
}

/// Quotes a user-supplied word for an error message: control characters are
/// escaped, so a newline in input cannot split the one-line message.
pub fn quote(s: &str) -> String {
    format!("{:?}", s)
}

/// A device id: `[A-Za-z0-9._-]{1,64}` (seed 004's `234DNJE4`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(String);

impl DeviceId {
    pub fn parse(s: &str) -> Result<Self, Error> {
        if id_like(s, MAX_ID_CHARS) {
            Ok(Self(s.to_string()))
        } else {
            Err(Error::invalid(format!(
                "device id {}: want 1-{MAX_ID_CHARS} of A-Z a-z 0-9 . _ -",
                quote(s)
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A pool, jail or operator name (same alphabet as a device id).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    pub fn parse(what: &str, s: &str) -> Result<Self, Error> {
        if id_like(s, MAX_NAME_CHARS) {
            Ok(Self(s.to_string()))
        } else {
            Err(Error::invalid(format!(
                "{what} name {}: want 1-{MAX_NAME_CHARS} of A-Z a-z 0-9 . _ -",
                quote(s)
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A MAC address, stored as lowercase `aa:bb:cc:dd:ee:ff`. Accepts the common
/// forms: `AA:BB:..`, `aa-bb-..`, `aabb.ccdd.eeff` (Cisco) and `aabbccddeeff`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(String);

impl Mac {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::invalid(format!(
                "MAC {}: want six hex octets, e.g. 92:be:bf:83:6e:b3",
                quote(s)
            ))
        };
        let t = s.trim();
        let hex: String = if t.len() == 17 && (t.contains(':') || t.contains('-')) {
            let sep = t.as_bytes()[2];
            if !matches!(sep, b':' | b'-') {
                return Err(bad());
            }
            let parts: Vec<&str> = t.split(sep as char).collect();
            if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
                return Err(bad());
            }
            parts.concat()
        } else if t.len() == 14 && t.contains('.') {
            let parts: Vec<&str> = t.split('.').collect();
            if parts.len() != 3 || parts.iter().any(|p| p.len() != 4) {
                return Err(bad());
            }
            parts.concat()
        } else if t.len() == 12 {
            t.to_string()
        } else {
            return Err(bad());
        };
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let hex = hex.to_ascii_lowercase();
        let octets: Vec<&str> = (0..6).map(|i| &hex[2 * i..2 * i + 2]).collect();
        Ok(Self(octets.join(":")))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The leading octets of a MAC (`claim create --mac-prefix`): 1-5 octets,
/// stored as lowercase `aa:bb:cc`; accepts `AA:BB:CC`, `aa-bb-cc`, `aabbcc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MacPrefix(String);

/// Octets a MAC prefix may have (a whole MAC is no prefix).
pub const MAX_MAC_PREFIX_OCTETS: usize = 5;

impl MacPrefix {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = || {
            Error::invalid(format!(
                "MAC prefix {}: want 1-{MAX_MAC_PREFIX_OCTETS} hex octets, e.g. b8:27:eb",
                quote(s)
            ))
        };
        if s.len() > 3 * MAX_MAC_PREFIX_OCTETS {
            return Err(bad());
        }
        let hex: String = if s.contains([':', '-']) {
            let parts: Vec<&str> = s.split([':', '-']).collect();
            if parts.iter().any(|p| p.len() != 2) {
                return Err(bad());
            }
            parts.concat()
        } else {
            s.to_string()
        };
        if hex.is_empty()
            || !hex.len().is_multiple_of(2)
            || hex.len() > 2 * MAX_MAC_PREFIX_OCTETS
            || !hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(bad());
        }
        let hex = hex.to_ascii_lowercase();
        let octets: Vec<&str> = (0..hex.len() / 2).map(|i| &hex[2 * i..2 * i + 2]).collect();
        Ok(Self(octets.join(":")))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Whether `mac` starts with these octets.
    pub fn matches(&self, mac: &Mac) -> bool {
        mac.as_str().starts_with(&format!("{}:", self.0))
    }
}

impl fmt::Display for MacPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A port range `LO-HI` for a pool (1024..=65535, LO <= HI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

/// The pool range when `--ports` is not given (contract).
pub const DEFAULT_PORTS: PortRange = PortRange {
    lo: 10000,
    hi: 19999,
};

impl PortRange {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid(format!("port range {}: {why}", quote(s)));
        let (lo, hi) = s.split_once('-').ok_or_else(|| bad("want LO-HI"))?;
        let port = |p: &str| -> Result<u16, Error> {
            if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("want LO-HI, two port numbers"));
            }
            p.parse::<u16>().map_err(|_| bad("a port is above 65535"))
        };
        let (lo, hi) = (port(lo)?, port(hi)?);
        if lo < 1024 {
            return Err(bad(
                "ports below 1024 need root on the jail; start at 1024 or above",
            ));
        }
        if lo > hi {
            return Err(bad("LO is above HI"));
        }
        Ok(Self { lo, hi })
    }
    pub fn overlaps(&self, o: &PortRange) -> bool {
        self.lo <= o.hi && o.lo <= self.hi
    }
    pub fn contains(&self, p: u16) -> bool {
        (self.lo..=self.hi).contains(&p)
    }
    pub fn size(&self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.lo, self.hi)
    }
}

/// A duration: `90s`, `15m`, `2h` or `1d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, Error> {
    let bad = || {
        Error::invalid(format!(
            "duration {}: want e.g. 90s, 15m, 2h or 1d",
            quote(s)
        ))
    };
    let unit = s.chars().last().ok_or_else(bad)?;
    let n = &s[..s.len() - unit.len_utf8()];
    if n.is_empty() || n.len() > 9 || !n.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n: u64 = n.parse().map_err(|_| bad())?;
    let secs = match unit {
        's' => n,
        'm' => n * 60,
        'h' => n * 3600,
        'd' => n * 86400,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(bad());
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// `HOST[:PORT]` (or `[V6]:PORT`): where devices dial a jail, or a device's
/// target. `default_port` applies when none is given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn parse(what: &str, s: &str, default_port: Option<u16>) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid(format!("{what} {}: {why}", quote(s)));
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (h, after) = rest.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(bad("want [V6ADDR]:PORT")),
            }
        } else {
            match s.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h, Some(p)),
                Some(_) => return Err(bad("an IPv6 address needs brackets: [V6ADDR]:PORT")),
                None => (s, None),
            }
        };
        if host.is_empty()
            || host.len() > 253
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
        {
            return Err(bad("not a host name or address"));
        }
        let port = match port {
            Some(p) => {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.len() > 5 {
                    return Err(bad("port is not a number"));
                }
                match p.parse::<u16>() {
                    Ok(0) | Err(_) => return Err(bad("port must be 1-65535")),
                    Ok(n) => n,
                }
            }
            None => default_port.ok_or_else(|| bad("want HOST:PORT"))?,
        };
        Ok(Self {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", jailbird::spec::bracket(&self.host), self.port)
    }
}

/// An OpenSSH public key: its type and wire blob, checked by the agent's own
/// parser (`jailbird::hostkey::parse_key_line`), and its SHA256 fingerprint as
/// sshd's `%f` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: String,
    pub base64: String,
    pub fingerprint: String,
}

/// Key types a device or jail may present (plain keys; certificates come later).
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

impl PublicKey {
    pub fn parse(what: &str, s: &str) -> Result<Self, Error> {
        let shown: String = s.chars().take(40).collect();
        let bad = |why: &str| Error::invalid(format!("{what} {}: {why}", quote(&shown)));
        if s.len() > MAX_KEY_LINE_BYTES {
            return Err(bad("longer than any public key line"));
        }
        if s.contains(['\n', '\r', '\0']) {
            return Err(bad("holds a line break or NUL"));
        }
        let mut it = s.split_ascii_whitespace();
        let kind = it
            .next()
            .ok_or_else(|| bad("empty; want \"TYPE BASE64\""))?;
        if !KEY_TYPES.contains(&kind) {
            return Err(bad("unknown key type (want e.g. ssh-ed25519 AAAA...)"));
        }
        let b64 = it
            .next()
            .ok_or_else(|| bad("no base64 key after the type"))?;
        let blob = jailbird::hostkey::parse_key_line(&format!("{kind} {b64}"))
            .ok_or_else(|| bad("base64 is not a key of the type it names"))?;
        if kind == "ssh-ed25519" && blob.len() != 4 + 11 + 4 + 32 {
            return Err(bad("an ed25519 key is 32 bytes"));
        }
        Ok(Self {
            kind: kind.to_string(),
            base64: b64.to_string(),
            fingerprint: jailbird::hostkey::blob_fingerprint(&blob),
        })
    }

    /// `TYPE BASE64` without a comment.
    pub fn line(&self) -> String {
        format!("{} {}", self.kind, self.base64)
    }
}

/// The longest `--reason` (characters).
pub const MAX_REASON_CHARS: usize = 512;

/// A `--reason`: 1 to 512 printable characters.
pub fn check_reason(reason: Option<&str>) -> Result<(), Error> {
    match reason {
        Some(r)
            if r.chars().any(char::is_control)
                || r.chars().count() > MAX_REASON_CHARS
                || r.trim().is_empty() =>
        {
            Err(Error::invalid(format!(
                "--reason: 1 to {MAX_REASON_CHARS} printable characters"
            )))
        }
        _ => Ok(()),
    }
}

/// A local account name on a jail host (the tunnel, operator, claim or
/// command account): `[A-Za-z0-9._-]{1,32}`, not starting with `-`. The one
/// check every account name passes, from the CLI and from the registry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(String);

/// The longest account name accepted (Linux `useradd` allows 32).
pub const MAX_USER_CHARS: usize = 32;

impl UserName {
    pub fn parse(what: &str, s: &str) -> Result<Self, Error> {
        let ok = !s.is_empty()
            && s.len() <= MAX_USER_CHARS
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            && !s.starts_with(['-', '.']);
        if ok {
            Ok(Self(s.to_string()))
        } else {
            Err(Error::invalid(format!(
                "{what} {}: not a user name (1-{MAX_USER_CHARS} of A-Z a-z 0-9 . _ -, not starting with - or .)",
                quote(s)
            )))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A port a device may listen on: 1-65535, from any integer the registry
/// holds (never `as u16`: 65536 + 6379 is not 6379).
pub fn port_from_i64(n: i64) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p != 0)
}

/// An OpenSSH SHA256 fingerprint as sshd's `%f` prints it:
/// `SHA256:` and 43 characters of unpadded base64.
pub fn is_fingerprint(s: &str) -> bool {
    s.strip_prefix("SHA256:").is_some_and(|b| {
        b.len() == 43
            && b.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/')
    })
}

/// Text from the registry or a user (a reason, an audit detail) made safe to
/// print on one line: control characters, including CR and LF, come out as
/// escapes, so a stored value cannot forge a second line of a listing.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// One word for a POSIX shell (`sh`, `. file`, a printed command line):
/// left bare when it holds only characters no shell treats specially,
/// otherwise single-quoted, with `'` written as `'\''`. Nothing inside
/// single quotes is expanded: `$(...)`, backticks and newlines stay text.
pub fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@+=:,./_-".contains(&b))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

macro_rules! serialize_as_text {
    ($($t:ty),*) => {$(
        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    )*};
}
serialize_as_text!(DeviceId, Name, Mac, UserName, HostPort, PublicKey);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.base64)
    }
}

macro_rules! borrow_str {
    ($($t:ty),*) => {$(
        impl std::borrow::Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    )*};
}
borrow_str!(DeviceId, Name, Mac);

impl PartialEq<str> for DeviceId {
    fn eq(&self, o: &str) -> bool {
        self.0 == o
    }
}
impl PartialEq<str> for UserName {
    fn eq(&self, o: &str) -> bool {
        self.0 == o
    }
}
impl PartialEq<str> for Name {
    fn eq(&self, o: &str) -> bool {
        self.0 == o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_prefixes() {
        let p = MacPrefix::parse("B8-27-EB").unwrap();
        assert_eq!(p.as_str(), "b8:27:eb");
        assert_eq!(MacPrefix::parse("b827eb").unwrap(), p);
        assert!(p.matches(&Mac::parse("b8:27:eb:00:11:22").unwrap()));
        assert!(!p.matches(&Mac::parse("b8:27:ec:00:11:22").unwrap()));
        for bad in [
            "",
            "b",
            "b8:2",
            "b8::27",
            "zz",
            "b8:27:eb:00:11:22",
            "b8:27 eb",
        ] {
            assert!(MacPrefix::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn macs_in_common_forms_normalise() {
        for s in [
            "92:be:bf:83:6e:b3",
            "92:BE:BF:83:6E:B3",
            "92-be-bf-83-6e-b3",
            "92be.bf83.6eb3",
            "92BEBF836EB3",
            " 92:be:bf:83:6e:b3 ",
        ] {
            assert_eq!(Mac::parse(s).unwrap().as_str(), "92:be:bf:83:6e:b3", "{s}");
        }
        for s in [
            "92:be:bf:83:6e",
            "92:be:bf:83:6e:b3:00",
            "92:be:bf:83:6e:bg",
            "92:be-bf:83:6e:b3",
            "9:2be:bf:83:6e:b3",
            "",
            "92be.bf836eb3",
        ] {
            assert!(Mac::parse(s).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn ids_refuse_slashes_spaces_newlines() {
        assert!(DeviceId::parse("234DNJE4").is_ok());
        assert!(DeviceId::parse("a.b_c-d").is_ok());
        for s in ["", "a/b", "a b", "a\nb", "..", ".", &"x".repeat(65), "ä"] {
            assert!(DeviceId::parse(s).is_err(), "{s:?} accepted");
        }
        let e = DeviceId::parse("a\nb").unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
    }

    #[test]
    fn port_ranges() {
        assert_eq!(PortRange::parse("10000-19999").unwrap(), DEFAULT_PORTS);
        for s in [
            "19999-10000",
            "10000",
            "10000-70000",
            "80-90",
            "a-b",
            "-",
            "1024-",
        ] {
            assert!(PortRange::parse(s).is_err(), "{s:?} accepted");
        }
        let a = PortRange::parse("10000-10009").unwrap();
        assert!(a.overlaps(&PortRange::parse("10009-10020").unwrap()));
        assert!(!a.overlaps(&PortRange::parse("10010-10020").unwrap()));
        assert_eq!(a.size(), 10);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7200);
        assert_eq!(parse_duration("1d").unwrap().as_secs(), 86400);
        for s in ["", "m", "0s", "15", "15x", "-1m", "1.5h", "15mm"] {
            assert!(parse_duration(s).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn host_ports() {
        let h = HostPort::parse("target", "127.0.0.1:22", None).unwrap();
        assert_eq!(h.to_string(), "127.0.0.1:22");
        let h = HostPort::parse("address", "jail.example", Some(22)).unwrap();
        assert_eq!((h.host.as_str(), h.port), ("jail.example", 22));
        let h = HostPort::parse("address", "[::1]:8022", Some(22)).unwrap();
        assert_eq!(h.to_string(), "[::1]:8022");
        for s in [
            "", ":22", "a:0", "a:x", "::1:22", "a b:22", "a:22\n", "[::1",
        ] {
            assert!(HostPort::parse("t", s, Some(22)).is_err(), "{s:?} accepted");
        }
    }

    #[test]
    fn keys_parse_and_fingerprint_like_openssh() {
        // ssh-keygen -lf prints this fingerprint for this key.
        let k = PublicKey::parse(
            "key",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVlH0kwQ3cXS5pOBa1ql8lAvdqtmhvZyX7ELmXrHNXl c",
        )
        .unwrap();
        assert_eq!(k.kind, "ssh-ed25519");
        assert!(k.fingerprint.starts_with("SHA256:"));
        for s in [
            "",
            "ssh-ed25519",
            "ssh-ed25519 !!!",
            "ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIGVlH0kwQ3cXS5pOBa1ql8lAvdqtmhvZyX7ELmXrHNXl",
            "ssh-dss AAAA",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGVlH0kwQ3cXS5pOBa1ql8lAvdqtmhvZyX7ELmXrHNXl\nx",
        ] {
            assert!(PublicKey::parse("key", s).is_err(), "{s:?} accepted");
        }
    }
}
