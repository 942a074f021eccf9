//! Zero-touch enrolment, the device's half of the claim wire format
//! (version 1): the request it sends to the jail's claim account (token,
//! MAC, optional id, its own sshd host keys) and a bounded parser for the
//! answer (an enrolment, or a refusal with its reason). Pure functions but
//! for reading the MAC and the host-key file; the SSH exchange is
//! `session::claim`, the retry loop the supervisor's.

use crate::identity::{EnrolledJail, Enrolment};
use crate::limits::{
    MAX_CLAIM_ANSWER_BYTES, MAX_CLAIM_ANSWER_LINES, MAX_CLAIM_HOST_KEYS, MAX_CLAIM_REQUEST_BYTES,
    MAX_DEVICE_HOST_KEY_FILE_BYTES, MAX_DIR_SCAN_ENTRIES, MAX_ENROLLED_JAILS,
};
use crate::spec::{parse_key_line, split_host_port, valid_device_id, valid_host, valid_user};
use std::fmt;
use std::io::Read as _;
use std::path::Path;

/// The command the claim account's forced command sees as `SSH_ORIGINAL_COMMAND`.
pub const COMMAND: &str = "jailbird-claim 1";
/// First line of a request and of an answer.
const HELLO: &str = "jailbird-claim 1";

/// The refusal reasons of the wire format: the word, and in words for the
/// one log line and the status file.
const REASONS: [(&str, &str); 10] = [
    ("unknown", "no such token"),
    ("expired", "the token has expired"),
    ("used-up", "the token is used up"),
    ("revoked", "the token was revoked"),
    (
        "wrong-pool",
        "the token is for another pool than this jail's",
    ),
    (
        "mac-prefix",
        "this device's MAC is outside the token's MAC prefix",
    ),
    ("malformed", "the jail could not parse the request"),
    (
        "conflict",
        "this device id, MAC or key is already enrolled to another device",
    ),
    (
        "rate-limited",
        "too many refusals from this address recently",
    ),
    ("unavailable", "the registry is unavailable"),
];

/// Why the registry refused a claim (the answer's `refused REASON`): the
/// word, sanitised (`[a-z0-9-]`, at most 32), and its words if it is one of
/// the wire format's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reason {
    word: heapless::String<32>,
    words: Option<&'static str>,
}

impl Reason {
    /// The reason a jail's `refused WORD` names.
    pub fn from_word(w: &str) -> Reason {
        let mut word = heapless::String::new();
        for c in w
            .chars()
            .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
        {
            if word.push(c).is_err() {
                break;
            }
        }
        let words = REASONS.iter().find(|r| r.0 == w).map(|r| r.1);
        Reason { word, words }
    }

    /// The word (sanitised).
    pub fn word(&self) -> &str {
        &self.word
    }

    /// `unavailable`: the registry is unreachable; retried like a network failure.
    pub fn is_unavailable(&self) -> bool {
        self.word == "unavailable"
    }
}

impl fmt::Display for Reason {
    /// The reason in words, for the one log line and the status file.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.words {
            Some(w) => f.write_str(w),
            None => write!(f, "reason \"{}\" (unknown to this jailbird)", self.word),
        }
    }
}

/// What the jail answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    Accepted(Box<Enrolment>),
    Refused(Reason),
}

/// Why an answer is unusable: what was wrong and on which line (1-based;
/// 0: the answer as a whole). Static words, so nothing the jail sent is
/// echoed into a log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadAnswer {
    pub line: usize,
    pub what: &'static str,
}

impl fmt::Display for BadAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: ", self.line)?;
        }
        f.write_str(self.what)
    }
}

fn bad<T>(line: usize, what: &'static str) -> Result<T, BadAnswer> {
    Err(BadAnswer { line, what })
}

/// Parses a claim answer (at most [`MAX_CLAIM_ANSWER_BYTES`] and
/// [`MAX_CLAIM_ANSWER_LINES`] lines, ASCII, every line ending in LF).
/// Every value is checked into its type here; unknown keys, repeated keys and
/// missing ones are errors.
pub fn parse_answer(bytes: &[u8]) -> Result<Answer, BadAnswer> {
    if bytes.len() > MAX_CLAIM_ANSWER_BYTES {
        return bad(0, "larger than 8192 bytes");
    }
    if !bytes
        .iter()
        .all(|&b| b == b'\n' || (0x20..0x7f).contains(&b))
    {
        return bad(
            0,
            "a byte that is not printable ASCII (binary, or not an answer)",
        );
    }
    let Some(body) = std::str::from_utf8(bytes)
        .ok()
        .and_then(|t| t.strip_suffix('\n'))
    else {
        return bad(0, "truncated: empty, or the last line has no newline");
    };
    let lines: heapless::Vec<&str, MAX_CLAIM_ANSWER_LINES> = match body
        .split('\n')
        .try_fold(heapless::Vec::new(), |mut v, l| v.push(l).map(|()| v))
    {
        Ok(v) => v,
        Err(_) => return bad(0, "more than 24 lines"),
    };
    if lines[0] != HELLO {
        return bad(1, "not \"jailbird-claim 1\"");
    }
    match lines.get(1).copied() {
        Some("ok") => parse_accepted(&lines[2..]).map(|e| Answer::Accepted(Box::new(e))),
        Some(l) if l.starts_with("refused ") => {
            let word = &l["refused ".len()..];
            if word.is_empty() || word.contains(' ') {
                return bad(2, "a refusal without one reason word");
            }
            if lines.len() > 2 {
                return bad(3, "a line after the refusal");
            }
            Ok(Answer::Refused(Reason::from_word(word)))
        }
        Some(_) => bad(2, "neither \"ok\" nor \"refused REASON\""),
        None => bad(0, "truncated: no \"ok\" or \"refused\" line"),
    }
}

/// The lines after `ok` (the answer's line 3 on): device, port, user,
/// target once each, 1 to [`MAX_ENROLLED_JAILS`] jails.
fn parse_accepted(lines: &[&str]) -> Result<Enrolment, BadAnswer> {
    let mut device = None;
    let mut port = None;
    let mut user = None;
    let mut target = None;
    let mut jails: heapless::Vec<EnrolledJail, MAX_ENROLLED_JAILS> = heapless::Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 3;
        let Some((key, value)) = line.split_once(' ') else {
            return bad(n, "no value");
        };
        let twice = match key {
            "device" => device.is_some(),
            "port" => port.is_some(),
            "user" => user.is_some(),
            "target" => target.is_some(),
            _ => false,
        };
        if twice {
            return bad(n, "a key given twice");
        }
        match key {
            "device" => match heapless::String::try_from(value) {
                Ok(d) if valid_device_id(value) => device = Some(d),
                _ => return bad(n, "not a device id"),
            },
            "port" => {
                port = Some(parse_port(value).ok_or(BadAnswer {
                    line: n,
                    what: "port not 1..=65535",
                })?)
            }
            "user" => match heapless::String::try_from(value) {
                Ok(u) if valid_user(value) => user = Some(u),
                _ => return bad(n, "not a user name"),
            },
            "target" => {
                let t = split_host_port(value)
                    .filter(|(h, _)| valid_host(h))
                    .and_then(|(h, p)| Some((heapless::String::try_from(h).ok()?, parse_port(p)?)));
                match t {
                    Some(t) => target = Some(t),
                    None => return bad(n, "target not HOST:PORT"),
                }
            }
            "jail" => {
                let jail = parse_jail(value).ok_or(BadAnswer {
                    line: n,
                    what: "jail not HOST PORT KEYTYPE BASE64 of a key this jailbird reads",
                })?;
                if jails
                    .iter()
                    .any(|j| j.host == jail.host && j.port == jail.port)
                {
                    return bad(n, "a jail named twice");
                }
                if jails.push(jail).is_err() {
                    return bad(n, "more than 8 jails");
                }
            }
            _ => return bad(n, "unknown key"),
        }
    }
    let (Some(device), Some(port), Some(user), Some((target_host, target_port))) =
        (device, port, user, target)
    else {
        return bad(0, "truncated: device, port, user or target missing");
    };
    if jails.is_empty() {
        return bad(0, "truncated: no jail");
    }
    Ok(Enrolment {
        device,
        port,
        user,
        target_host,
        target_port,
        jails,
    })
}

/// A port 1..=65535 in plain decimal.
fn parse_port(s: &str) -> Option<u16> {
    match s.parse::<u16>() {
        Ok(p) if p != 0 && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0') => Some(p),
        _ => None,
    }
}

/// `HOST PORT KEYTYPE BASE64`: the jail's address and its host key, kept as
/// the SHA-256 of the key blob (what a pin compares).
fn parse_jail(value: &str) -> Option<EnrolledJail> {
    let mut words = value.split(' ');
    let (Some(raw_host), Some(port), Some(_), Some(_), None) = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    ) else {
        return None;
    };
    // "KEYTYPE BASE64", as parse_key_line reads it.
    let key = &value[raw_host.len() + port.len() + 2..];
    let host = raw_host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(raw_host);
    if !valid_host(host) {
        return None;
    }
    let port = parse_port(port)?;
    let blob = parse_key_line(key)?;
    let mut sha = [0u8; 32];
    sha.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, &blob).as_ref());
    Some(EnrolledJail {
        host: heapless::String::try_from(host).ok()?,
        port,
        key_sha256: sha,
    })
}

/// Where the MAC in a request came from (said in a log line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mac {
    /// `aa:bb:cc:dd:ee:ff`, lowercase.
    pub address: String,
    pub interface: String,
    /// True when the interface holds the default route.
    pub default_route: bool,
}

/// The interface of the default route in a /proc/net/route text, if any.
pub fn default_route_interface(route: &str) -> Option<&str> {
    route.lines().skip(1).find_map(|l| {
        let mut f = l.split_whitespace();
        let (iface, dest) = (f.next()?, f.next()?);
        let flags = u32::from_str_radix(f.nth(1)?, 16).ok()?;
        let mask = f.nth(3)?;
        // RTF_UP, destination and mask 0.0.0.0.
        (dest == "00000000" && mask == "00000000" && flags & 1 == 1).then_some(iface)
    })
}

/// A MAC address as /sys/class/net/IF/address holds it, if it is a real
/// one: six lowercase hex octets, not all zero, not multicast.
pub fn real_mac(s: &str) -> Option<String> {
    let s = s.trim().to_ascii_lowercase();
    let octets: Vec<u8> = s
        .split(':')
        .map(|o| {
            (o.len() == 2)
                .then(|| u8::from_str_radix(o, 16).ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    (octets.len() == 6 && octets.iter().any(|&b| b != 0) && octets[0] & 1 == 0).then_some(s)
}

/// This device's MAC: that of the interface holding the default route (from
/// /proc/net/route), else of the first non-loopback interface in
/// /sys/class/net (by name) with a real address.
pub fn device_mac() -> Option<Mac> {
    let read = |p: &str| -> Option<String> {
        let mut s = String::new();
        std::fs::File::open(p)
            .ok()?
            .take(64 * 1024)
            .read_to_string(&mut s)
            .ok()?;
        Some(s)
    };
    let of =
        |iface: &str| read(&format!("/sys/class/net/{iface}/address")).and_then(|a| real_mac(&a));
    if let Some(route) = read("/proc/net/route")
        && let Some(iface) = default_route_interface(&route)
        && !iface.contains('/')
        && let Some(address) = of(iface)
    {
        return Some(Mac {
            address,
            interface: iface.to_string(),
            default_route: true,
        });
    }
    // The first by name, without sorting the directory.
    let mut first: Option<Mac> = None;
    for entry in std::fs::read_dir("/sys/class/net")
        .ok()?
        .flatten()
        .take(MAX_DIR_SCAN_ENTRIES)
    {
        let Ok(iface) = entry.file_name().into_string() else {
            continue;
        };
        if iface == "lo" || first.as_ref().is_some_and(|m| m.interface <= iface) {
            continue;
        }
        if let Some(address) = of(&iface) {
            first = Some(Mac {
                address,
                interface: iface,
                default_route: false,
            });
        }
    }
    first
}

/// The device's own sshd host keys from `path` as `TYPE BASE64` (comments
/// dropped), at most [`MAX_CLAIM_HOST_KEYS`]. A missing file is `Ok(empty)`
/// (the caller warns); an unreadable or malformed one is an error line.
pub fn device_host_keys(path: &Path) -> Result<Vec<String>, String> {
    let what = |e: &dyn fmt::Display| format!("--device-host-key {}: {e}", path.display());
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(what(&e)),
    };
    let mut text = String::new();
    file.take(MAX_DEVICE_HOST_KEY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| what(&e))?;
    if text.len() as u64 > MAX_DEVICE_HOST_KEY_FILE_BYTES {
        return Err(what(&format!(
            "larger than {MAX_DEVICE_HOST_KEY_FILE_BYTES} bytes"
        )));
    }
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut w = line.split_ascii_whitespace();
        let (Some(ty), Some(b64)) = (w.next(), w.next()) else {
            return Err(what(&format!("line {}: expected TYPE BASE64", n + 1)));
        };
        let key = format!("{ty} {b64}");
        if parse_key_line(&key).is_none() {
            return Err(what(&format!(
                "line {}: not an OpenSSH public key (for dropbear: dropbearkey -y -f KEY | grep ^ssh-)",
                n + 1
            )));
        }
        if keys.len() == MAX_CLAIM_HOST_KEYS {
            return Err(what(&format!("more than {MAX_CLAIM_HOST_KEYS} keys")));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// The request: hello, token, MAC, optional id, host keys. Fails (naming no
/// secret) if it would exceed [`MAX_CLAIM_REQUEST_BYTES`].
pub fn request(
    token: &str,
    mac: &str,
    device_id: Option<&str>,
    host_keys: &[String],
) -> Result<Vec<u8>, String> {
    let mut r = String::with_capacity(MAX_CLAIM_REQUEST_BYTES);
    let mut line = |key: &str, value: &str| {
        for piece in [key, " ", value, "\n"] {
            r.push_str(piece);
        }
    };
    line("jailbird-claim", "1");
    line("token", token);
    line("mac", mac);
    if let Some(id) = device_id {
        line("id", id);
    }
    for k in host_keys.iter().take(MAX_CLAIM_HOST_KEYS) {
        line("host-key", k);
    }
    if r.len() > MAX_CLAIM_REQUEST_BYTES {
        return Err(format!(
            "the claim request would be larger than {MAX_CLAIM_REQUEST_BYTES} bytes (fewer or shorter --device-host-key keys)"
        ));
    }
    Ok(r.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILSxTfmlAiwH+ji2323IlcApfpKGCoZRmkEkr6czTshq";

    fn ok_answer(jails: &str) -> String {
        format!(
            "jailbird-claim 1\nok\ndevice b827eb123456\nport 2022\nuser tun-b827\ntarget 127.0.0.1:22\n{jails}"
        )
    }

    #[test]
    fn an_accepted_answer_becomes_an_enrolment() {
        let a = ok_answer(&format!(
            "jail jail-a.example 22 {KEY}\njail [fd00::1] 8022 {KEY}\n"
        ));
        let Answer::Accepted(e) = parse_answer(a.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (e.device.as_str(), e.port, e.user.as_str()),
            ("b827eb123456", 2022, "tun-b827")
        );
        assert_eq!((e.target_host.as_str(), e.target_port), ("127.0.0.1", 22));
        assert_eq!(e.jails.len(), 2);
        assert_eq!(
            (e.jails[1].host.as_str(), e.jails[1].port),
            ("fd00::1", 8022)
        );
        let blob = parse_key_line(KEY).unwrap();
        assert_eq!(
            e.jails[0].key_sha256[..],
            *ring::digest::digest(&ring::digest::SHA256, &blob).as_ref()
        );
        assert_eq!(e.problem(), None);
    }

    #[test]
    fn refusals_carry_their_reason() {
        for (word, words) in REASONS {
            let a = format!("jailbird-claim 1\nrefused {word}\n");
            let Answer::Refused(r) = parse_answer(a.as_bytes()).unwrap() else {
                panic!()
            };
            assert_eq!((r.word(), r.to_string().as_str()), (word, words));
            assert_eq!(r.is_unavailable(), word == "unavailable");
        }
        let a = b"jailbird-claim 1\nrefused Sp00ky\x1b[31m-x\n";
        assert!(parse_answer(a).is_err(), "control bytes");
        let a = b"jailbird-claim 1\nrefused Sp00ky-x_{}\n";
        let Answer::Refused(r) = parse_answer(a).unwrap() else {
            panic!()
        };
        assert_eq!(r.word(), "p00ky-x");
        assert_eq!(
            r.to_string(),
            "reason \"p00ky-x\" (unknown to this jailbird)"
        );
        let long = format!("jailbird-claim 1\nrefused {}\n", "a".repeat(100));
        let Answer::Refused(r) = parse_answer(long.as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(r.word().len(), 32);
    }

    #[test]
    fn broken_answers_are_refused_with_one_line() {
        let good = ok_answer(&format!("jail j 22 {KEY}\n"));
        assert!(parse_answer(good.as_bytes()).is_ok());
        let mut cases: Vec<(Vec<u8>, &str)> = vec![
            (vec![b'a'; MAX_CLAIM_ANSWER_BYTES + 1], "larger than"),
            (b"".to_vec(), "truncated"),
            (b"\x00\xff garbage".to_vec(), "not printable ASCII"),
            (b"HTTP/1.1 200 OK\n".to_vec(), "line 1: not"),
            (b"jailbird-claim 1\n".to_vec(), "truncated"),
            (b"jailbird-claim 1\nok\ndevice x\n".to_vec(), "truncated"),
            (good.as_bytes()[..good.len() - 1].to_vec(), "truncated"),
            (
                good.replace("port 2022", "port 0").into_bytes(),
                "line 4: port",
            ),
            (
                good.replace("port 2022", "port 65536").into_bytes(),
                "line 4: port",
            ),
            (
                good.replace("user tun-b827", "user a;b").into_bytes(),
                "line 5: not a user",
            ),
            (
                good.replace("target 127.0.0.1:22", "target x").into_bytes(),
                "line 6: target",
            ),
            (
                format!("{good}port 1\n").into_bytes(),
                "line 8: a key given twice",
            ),
            (
                format!("{good}shell /bin/sh\n").into_bytes(),
                "line 8: unknown key",
            ),
            (
                format!("{good}jail j 22 {KEY}\n").into_bytes(),
                "line 8: a jail named twice",
            ),
            (
                good.replace("AAAAC3", "AAAAC4").into_bytes(),
                "line 7: jail not",
            ),
            (
                b"jailbird-claim 1\nrefused expired\nok\n".to_vec(),
                "line 3: a line after",
            ),
            (b"jailbird-claim 1\nmaybe\n".to_vec(), "line 2: neither"),
            (
                b"jailbird-claim 1\r\nok\r\n".to_vec(),
                "not printable ASCII",
            ),
        ];
        let many: String = (0..=MAX_ENROLLED_JAILS)
            .map(|i| format!("jail j{i} 22 {KEY}\n"))
            .collect();
        cases.push((ok_answer(&many).into_bytes(), "more than 8 jails"));
        let lines = format!(
            "jailbird-claim 1\nok\n{}",
            "x y\n".repeat(MAX_CLAIM_ANSWER_LINES)
        );
        cases.push((lines.into_bytes(), "more than 24 lines"));
        for (input, want) in cases {
            let e = parse_answer(&input).unwrap_err().to_string();
            assert!(
                e.contains(want) && !e.contains('\n') && e.len() < 200,
                "{:?}: {e}",
                String::from_utf8_lossy(&input)
            );
        }
    }

    #[test]
    fn the_bounds_in_error_words_are_the_constants() {
        assert_eq!(MAX_CLAIM_ANSWER_BYTES, 8192);
        assert_eq!(MAX_CLAIM_ANSWER_LINES, 24);
        assert_eq!(MAX_ENROLLED_JAILS, 8);
    }

    #[test]
    fn the_default_route_names_the_interface() {
        let route = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                     wlan0\t0002A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                     eth0\t00000000\t0102A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n";
        assert_eq!(default_route_interface(route), Some("eth0"));
        assert_eq!(default_route_interface("Iface\n"), None);
        assert_eq!(
            real_mac("B8:27:EB:12:34:56\n").as_deref(),
            Some("b8:27:eb:12:34:56")
        );
        for fake in [
            "00:00:00:00:00:00",
            "01:00:5e:00:00:01",
            "b8:27:eb:12:34",
            "zz:27:eb:12:34:56",
        ] {
            assert_eq!(real_mac(fake), None, "{fake}");
        }
    }

    #[test]
    fn the_request_has_the_wire_shape() {
        let r = request(
            "tok",
            "b8:27:eb:12:34:56",
            Some("dev-1"),
            &[KEY.to_string()],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            format!(
                "jailbird-claim 1\ntoken tok\nmac b8:27:eb:12:34:56\nid dev-1\nhost-key {KEY}\n"
            )
        );
        let huge = vec!["k".repeat(MAX_CLAIM_REQUEST_BYTES)];
        let e = request("s3cret", "b8:27:eb:12:34:56", None, &huge).unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
    }
}
