//! `warden claim create | ls | revoke` and `warden claim-serve`, the claim
//! account's forced command on a jail: zero-touch enrolment.
//!
//! The wire format (version 1) is fixed and shared with the agent
//! (docs/fleet.md "Claims: zero-touch enrolment"): a request of at most
//! [`MAX_REQUEST_BYTES`] and [`MAX_REQUEST_LINES`] on stdin, an answer of at
//! most [`MAX_ANSWER_BYTES`] and [`MAX_ANSWER_LINES`] on stdout. The request
//! is parsed by a pure function ([`parse_request`]); the answer is rendered
//! from typed values, each checked again as its type ([`render_accepted`]).

use super::Ctx;
use crate::cli::ClaimCmd;
use crate::error::Error;
use crate::render::{dash, json, table};
use crate::store::conn::{Conn, Mode};
use crate::store::{
    self, Accepted, ClaimRequest, Claimant, MAX_CLAIM_EXPIRY_SECS, NewClaim, Refusal,
};
use crate::types::{self, DeviceId, HostPort, Mac, MacPrefix, Name, PublicKey, UserName, quote};
use std::io::Read;
use std::time::Duration;

/// The first line of every request and answer.
pub const WIRE_HEADER: &str = "jailbird-claim 1";
/// The largest request read (bytes); one more byte is `malformed`.
pub const MAX_REQUEST_BYTES: usize = 4096;
/// The most lines a request may have.
pub const MAX_REQUEST_LINES: usize = 16;
/// The largest answer written (bytes).
pub const MAX_ANSWER_BYTES: usize = 8192;
/// The most lines an answer may have.
pub const MAX_ANSWER_LINES: usize = 24;
/// The most `jail` lines an answer carries (the pool's first jails).
pub const MAX_ANSWER_JAILS: usize = 8;
/// The most `host-key` lines a request may carry.
pub const MAX_REQUEST_HOST_KEYS: usize = store::MAX_HOST_KEYS;
/// The longest token text a request may present.
pub const MAX_TOKEN_TEXT: usize = 128;
/// How long claim-serve waits for the whole request (a client that never
/// sends EOF is refused `malformed` then).
pub const CLAIM_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest `$SSH_USER_AUTH` file read.
pub const MAX_USER_AUTH_BYTES: u64 = 16 * 1024;

pub fn run(ctx: &Ctx, cmd: &ClaimCmd) -> Result<String, Error> {
    match cmd {
        ClaimCmd::Create {
            pool,
            uses,
            expires,
            labels,
            mac_prefix,
            target,
        } => create(
            ctx,
            pool,
            *uses,
            expires,
            labels,
            mac_prefix.as_deref(),
            target.as_deref(),
        ),
        ClaimCmd::Ls => ls(ctx),
        ClaimCmd::Revoke { id } => {
            let id = Name::parse("claim", id)?;
            ctx.admin(|c| store::claim_revoke(c, &id))?;
            Ok(format!(
                "claim {id} revoked: refused from its next use on\n"
            ))
        }
    }
}

/// The token alone on the first line, its id on the second (what it is
/// goes to stderr, so stdout stays two lines for scripts).
fn create(
    ctx: &Ctx,
    pool: &str,
    uses: i64,
    expires: &str,
    labels: &[String],
    mac_prefix: Option<&str>,
    target: Option<&str>,
) -> Result<String, Error> {
    let n = new_claim("--", pool, uses, expires, labels, mac_prefix, target)?;
    let (secret, id) = create_claim(ctx, &n)?;
    eprintln!(
        "# claim {id}: pool {}, {uses} use(s), until {}; the token is shown once, only its hash is kept",
        n.pool,
        store::rfc3339(n.expires)
    );
    Ok(format!("{secret}\n{id}\n"))
}

/// Parses `claim create`'s values (the CLI's and the API's): uses and
/// expiry within their bounds; errors name each value `{flag}NAME` (the
/// CLI's `--uses`, the API body's `uses`).
pub fn new_claim(
    flag: &str,
    pool: &str,
    uses: i64,
    expires: &str,
    labels: &[String],
    mac_prefix: Option<&str>,
    target: Option<&str>,
) -> Result<NewClaim, Error> {
    let pool = Name::parse("pool", pool)?;
    if !(1..=store::MAX_CLAIM_USES).contains(&uses) {
        return Err(Error::invalid(format!(
            "{flag}uses {uses}: want 1-{}",
            store::MAX_CLAIM_USES
        )));
    }
    let d = types::parse_duration(expires)?;
    if d.as_secs() > MAX_CLAIM_EXPIRY_SECS {
        return Err(Error::invalid(format!(
            "{flag}expires {}: at most {}d",
            quote(expires),
            MAX_CLAIM_EXPIRY_SECS / 86_400
        )));
    }
    Ok(NewClaim {
        pool,
        uses,
        expires: store::now() + d.as_secs() as i64,
        labels: store::parse_labels(labels)?,
        mac_prefix: mac_prefix.map(MacPrefix::parse).transpose()?,
        target: target
            .map(|t| HostPort::parse(&format!("{flag}target"), t, None))
            .transpose()?,
    })
}

/// Creates a claim: its token (shown once) and id.
pub fn create_claim(ctx: &Ctx, n: &NewClaim) -> Result<(String, Name), Error> {
    ctx.admin(|c| store::claim_create(c, n))
}

/// Every claim, newest first.
pub fn list(ctx: &Ctx) -> Result<Vec<store::Claim>, Error> {
    ctx.admin(store::claims)
}

/// Revokes claim `id`.
pub fn revoke(ctx: &Ctx, id: &Name) -> Result<(), Error> {
    ctx.admin(|c| store::claim_revoke(c, id))
}

fn ls(ctx: &Ctx) -> Result<String, Error> {
    let cs = ctx.admin(store::claims)?;
    if ctx.json {
        return Ok(json(&cs));
    }
    let at = store::now();
    let rows: Vec<Vec<String>> = cs
        .iter()
        .map(|c| {
            let labels: Vec<String> = c
                .labels
                .iter()
                .map(|(k, v)| types::one_line(&format!("{k}={v}")))
                .collect();
            vec![
                c.id.to_string(),
                c.pool.to_string(),
                format!("{}/{}", c.uses_left, c.uses_total),
                c.expires.clone(),
                dash(&c.mac_prefix),
                if labels.is_empty() {
                    "-".into()
                } else {
                    labels.join(",")
                },
                c.unusable(at).map_or("usable", Refusal::as_str).to_string(),
            ]
        })
        .collect();
    Ok(table(
        &[
            "CLAIM",
            "POOL",
            "LEFT",
            "EXPIRES",
            "MAC-PREFIX",
            "LABELS",
            "STATE",
        ],
        &rows,
    ))
}

/// Parses one claim request (the wire format, version 1). The error names
/// what was wrong, for the audit trail (the device hears `malformed`).
pub fn parse_request(bytes: &[u8]) -> Result<ClaimRequest, String> {
    if bytes.len() > MAX_REQUEST_BYTES {
        return Err(format!("longer than {MAX_REQUEST_BYTES} bytes"));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| "not ASCII".to_string())?;
    if let Some(b) = text
        .bytes()
        .find(|b| !(b.is_ascii_graphic() || *b == b' ' || *b == b'\n'))
    {
        return Err(format!("byte 0x{b:02x} is not printable ASCII"));
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    let lines: Vec<&str> = body.split('\n').collect();
    if lines.len() > MAX_REQUEST_LINES {
        return Err(format!("more than {MAX_REQUEST_LINES} lines"));
    }
    if lines.first() != Some(&WIRE_HEADER) {
        return Err(format!("line 1 is not {WIRE_HEADER:?}"));
    }
    let mut token: Option<String> = None;
    let mut mac: Option<Mac> = None;
    let mut id: Option<DeviceId> = None;
    let mut host_keys: Vec<PublicKey> = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(1) {
        let n = i + 1;
        let (key, value) = line
            .split_once(' ')
            .ok_or_else(|| format!("line {n}: want KEY VALUE"))?;
        if value.is_empty() || value.starts_with(' ') || value.ends_with(' ') {
            return Err(format!("line {n}: {key}: empty or padded value"));
        }
        let once = |given: bool| {
            if given {
                Err(format!("line {n}: {key} given twice"))
            } else {
                Ok(())
            }
        };
        match key {
            "token" => {
                once(token.is_some())?;
                if value.len() > MAX_TOKEN_TEXT || value.contains(' ') {
                    return Err(format!("line {n}: token: not a token"));
                }
                token = Some(value.to_string());
            }
            "mac" => {
                once(mac.is_some())?;
                mac = Some(Mac::parse(value).map_err(|e| format!("line {n}: {e}"))?);
            }
            "id" => {
                once(id.is_some())?;
                id = Some(DeviceId::parse(value).map_err(|e| format!("line {n}: {e}"))?);
            }
            "host-key" => {
                if host_keys.len() == MAX_REQUEST_HOST_KEYS {
                    return Err(format!(
                        "line {n}: more than {MAX_REQUEST_HOST_KEYS} host-key lines"
                    ));
                }
                let k =
                    PublicKey::parse("host-key", value).map_err(|e| format!("line {n}: {e}"))?;
                if host_keys.contains(&k) {
                    return Err(format!("line {n}: host-key given twice"));
                }
                host_keys.push(k);
            }
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(format!("line {n}: unknown key {}", quote(&shown)));
            }
        }
    }
    let token = token.ok_or("no token line")?;
    let mac = mac.ok_or("no mac line")?;
    Ok(ClaimRequest {
        token,
        mac,
        id,
        host_keys,
    })
}

/// The answer to an accepted claim, every value checked again as its type
/// on the way out; an answer that would break the format is an error.
pub fn render_accepted(a: &Accepted) -> Result<String, Error> {
    let d = &a.device;
    let id = DeviceId::parse(d.id.as_str())?;
    let port =
        types::port_from_i64(i64::from(d.port)).ok_or_else(|| Error::runtime("answer: port 0"))?;
    let user = UserName::parse("answer user", a.user.as_str())?;
    let target = HostPort::parse("answer target", &d.target.to_string(), None)?;
    let mut s =
        format!("{WIRE_HEADER}\nok\ndevice {id}\nport {port}\nuser {user}\ntarget {target}\n");
    if a.jails.is_empty() {
        return Err(Error::runtime("answer: the pool has no jail"));
    }
    for j in a.jails.iter().take(MAX_ANSWER_JAILS) {
        let addr = HostPort::parse("answer jail", &j.address.to_string(), None)?;
        let key = PublicKey::parse("answer jail host key", &j.host_key.line())?;
        s.push_str(&format!(
            "jail {} {} {}\n",
            addr.host,
            addr.port,
            key.line()
        ));
    }
    check_answer(&s)?;
    Ok(s)
}

/// The answer to a refused claim.
pub fn render_refused(why: Refusal) -> String {
    format!("{WIRE_HEADER}\nrefused {why}\n")
}

/// The answer's bounds: ASCII lines, at most so many bytes and lines.
fn check_answer(s: &str) -> Result<(), Error> {
    let ok = s.len() <= MAX_ANSWER_BYTES
        && s.lines().count() <= MAX_ANSWER_LINES
        && s.bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\n');
    if ok {
        Ok(())
    } else {
        Err(Error::runtime("answer: outside the wire format's bounds"))
    }
}

/// The client's address from `$SSH_CONNECTION` (`CLIENT PORT SERVER PORT`),
/// checked as an IP address; `local` when there is none (run by hand).
pub fn source_from(conn: Option<&str>) -> Result<String, String> {
    let Some(c) = conn else {
        return Ok("local".into());
    };
    let first = c.split(' ').next().unwrap_or("");
    first
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_string())
        .map_err(|_| "SSH_CONNECTION holds no client address".to_string())
}

/// The key sshd authenticated, from the `$SSH_USER_AUTH` file's text
/// (`ExposeAuthInfo yes`): exactly one `publickey TYPE BASE64` line.
pub fn key_from_user_auth(text: &str) -> Result<PublicKey, String> {
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("publickey "))
        .collect();
    match keys.as_slice() {
        [one] => PublicKey::parse("SSH_USER_AUTH", one).map_err(|e| e.to_string()),
        [] => Err("SSH_USER_AUTH names no public key (ExposeAuthInfo yes?)".into()),
        _ => Err("SSH_USER_AUTH names more than one public key".into()),
    }
}

fn read_user_auth() -> Result<PublicKey, String> {
    let path = std::env::var_os("SSH_USER_AUTH")
        .ok_or("no SSH_USER_AUTH (the claim account's sshd block needs ExposeAuthInfo yes)")?;
    let mut text = String::new();
    std::fs::File::open(&path)
        .and_then(|f| f.take(MAX_USER_AUTH_BYTES).read_to_string(&mut text))
        .map_err(|e| format!("SSH_USER_AUTH: {e}"))?;
    key_from_user_auth(&text)
}

/// Stdin, at most one byte more than a request may have, within the timeout.
fn read_request() -> Option<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        let mut buf = Vec::with_capacity(MAX_REQUEST_BYTES + 1);
        let r = std::io::stdin()
            .lock()
            .take(MAX_REQUEST_BYTES as u64 + 1)
            .read_to_end(&mut buf);
        let _ = tx.send(r.map(|_| buf));
    });
    rx.recv_timeout(CLAIM_READ_TIMEOUT).ok()?.ok()
}

/// `warden claim-serve --jail NAME`: one claim, answered on stdout. Exit 0
/// for `ok`, 1 for a refusal (printed before; nothing else on stdout).
pub fn serve(ctx: &Ctx, jail: &str) -> Result<String, Error> {
    let jail = Name::parse("jail", jail)?;
    let refuse = |why: Refusal, detail: &str| -> Result<String, Error> {
        use std::io::Write;
        if !detail.is_empty() {
            eprintln!(
                "warden claim-serve: refused {why}: {}",
                types::one_line(detail)
            );
        }
        let mut so = std::io::stdout().lock();
        let _ = so
            .write_all(render_refused(why).as_bytes())
            .and_then(|_| so.flush());
        Err(Error::Child(1))
    };
    // Misconfiguration of the jail, not the device's fault: `unavailable`
    // (it retries) and the reason on stderr.
    let source = match source_from(std::env::var("SSH_CONNECTION").ok().as_deref()) {
        Ok(s) => s,
        Err(why) => return refuse(Refusal::Unavailable, &why),
    };
    let key = match read_user_auth() {
        Ok(k) => k,
        Err(why) => return refuse(Refusal::Unavailable, &why),
    };
    let who = Claimant {
        key: &key,
        source: &source,
    };
    let mut c = match Conn::open(&ctx.db, Mode::Admin) {
        Ok(c) => c,
        Err(_) => return refuse(Refusal::Unavailable, "registry unreachable"),
    };
    let outcome = answer(&mut c, &jail, &who);
    c.fix_ownership();
    match outcome {
        Ok(Ok(a)) => render_accepted(&a).or_else(|_| {
            // Enrolled, but the answer would not be well-formed: say
            // nothing a device could act on.
            refuse(Refusal::Unavailable, "answer failed its check")
        }),
        Ok(Err((why, detail))) => refuse(why, &detail),
        // The registry's own words stay on the jail (a device needs only
        // "unavailable"): a permission the claim role lacks shows in its log.
        Err(_) => refuse(Refusal::Unavailable, "registry failed"),
    }
}

/// The claim from stdin, decided and recorded.
#[allow(clippy::type_complexity)]
fn answer(
    c: &mut Conn,
    jail: &Name,
    who: &Claimant,
) -> Result<Result<Accepted, (Refusal, String)>, Error> {
    if store::rate_limited(c, who.source)? {
        store::claim_refused(c, Refusal::RateLimited, None, who, "")?;
        return Ok(Err((Refusal::RateLimited, String::new())));
    }
    let parsed = match read_request() {
        Some(bytes) => parse_request(&bytes),
        None => Err(format!(
            "no request within {} s",
            CLAIM_READ_TIMEOUT.as_secs()
        )),
    };
    let req = match parsed {
        Ok(r) => r,
        Err(why) => {
            store::claim_refused(c, Refusal::Malformed, None, who, &why)?;
            return Ok(Err((Refusal::Malformed, why)));
        }
    };
    match store::claim_serve(c, jail, &req, who)? {
        Ok(a) => Ok(Ok(a)),
        Err((why, claim, detail)) => {
            store::claim_refused(c, why, claim.as_ref(), who, &detail)?;
            Ok(Err((why, detail)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAINwBRt0Qxuq56ihKXUbgbbFcD2ZEH/yqNpNyWsKYU9sk";
    const K2: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIPnQZbLoMoBPjNxRMBlbH2HRxRXYIJEW5cabRNHNfot";
    const TOKEN: &str = "wdc_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn good() -> String {
        format!("{WIRE_HEADER}\ntoken {TOKEN}\nmac B8:27:EB:12:34:56\nhost-key {K1}\n")
    }

    #[test]
    fn a_request_parses() {
        let r = parse_request(good().as_bytes()).unwrap();
        assert_eq!(r.token, TOKEN);
        assert_eq!(r.mac.as_str(), "b8:27:eb:12:34:56");
        assert_eq!(r.id, None);
        assert_eq!(r.device_id().unwrap().as_str(), "b827eb123456");
        assert_eq!(r.host_keys.len(), 1);
        let with_id = format!("{}id dev-7\nhost-key {K2}", good());
        let r = parse_request(with_id.as_bytes()).unwrap();
        assert_eq!(r.device_id().unwrap().as_str(), "dev-7");
        assert_eq!(r.host_keys.len(), 2);
    }

    /// Every malformed request is refused, each for its own reason.
    #[test]
    fn malformed_requests() {
        let g = good();
        let many_keys: String = (0..5).map(|_| format!("host-key {K1}\n")).collect();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "line 1"),
            ("jailbird-claim 2\n".into(), "line 1"),
            (g.replace(WIRE_HEADER, "JAILBIRD-CLAIM 1"), "line 1"),
            (format!("\n{g}"), "line 1"),
            (
                format!("{WIRE_HEADER}\nmac b8:27:eb:12:34:56\n"),
                "no token",
            ),
            (format!("{WIRE_HEADER}\ntoken {TOKEN}\n"), "no mac"),
            (format!("{g}token {TOKEN}\n"), "twice"),
            (format!("{g}mac b8:27:eb:12:34:57\n"), "twice"),
            (format!("{g}id a\nid b\n"), "twice"),
            (format!("{g}{many_keys}"), "host-key"),
            (format!("{g}host-key {K1}\n"), "twice"),
            (format!("{g}color blue\n"), "unknown key"),
            (format!("{g}\n"), "KEY VALUE"),
            (format!("{g}id\n"), "KEY VALUE"),
            (format!("{g}id  x\n"), "padded"),
            (format!("{g}id x \n"), "padded"),
            (format!("{g}id ../../etc\n"), "device id"),
            (format!("{g}id x;rm\n"), "device id"),
            (g.replace("B8:27:EB:12:34:56", "b8:27:eb:12:34"), "MAC"),
            (g.replace("B8:27:EB:12:34:56", "zz:27:eb:12:34:56"), "MAC"),
            (g.replace(K1, "ssh-ed25519 AAAA"), "host-key"),
            (g.replace(K1, "ssh-dss AAAAB3NzaC1kc3M="), "host-key"),
            (g.replace('\n', "\r\n"), "0x0d"),
            (format!("{g}\0"), "0x00"),
            (format!("{g}id caf\u{e9}\n"), "0x"),
            (g.replace(TOKEN, &"x".repeat(MAX_TOKEN_TEXT + 1)), "token"),
            (format!("{g}{}", "id x\n".repeat(16)), "lines"),
            (
                format!("{g}id {}\n", "a".repeat(MAX_REQUEST_BYTES)),
                "bytes",
            ),
        ];
        for (input, why) in cases {
            let e = parse_request(input.as_bytes()).expect_err(&format!("{input:?} parsed"));
            assert!(e.contains(why), "{input:?}: {e} (want {why:?})");
            assert!(!e.contains('\n'), "{e:?}");
        }
        // Not UTF-8 at all.
        let mut b = good().into_bytes();
        b.push(0xff);
        assert!(parse_request(&b).is_err());
    }

    /// Fuzz-ish: every truncation, and a few thousand byte flips and
    /// splices of a good request, either parse into checked values or are
    /// refused; nothing panics, and what parses re-checks as its types.
    #[test]
    fn mutated_requests_never_panic() {
        let g = format!("{}id dev-7\nhost-key {K2}\n", good()).into_bytes();
        for n in 0..=g.len() {
            let _ = parse_request(&g[..n]);
        }
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = b" \n\0\r\t:-._/=+AZaz09\x7f\xff";
        for _ in 0..20_000 {
            let mut m = g.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % m.len();
                match next() % 3 {
                    0 => m[at] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        m.remove(at);
                    }
                    _ => {
                        let from = (next() as usize) % g.len();
                        let len = (next() as usize) % 40;
                        let piece = &g[from..(from + len).min(g.len())];
                        m.splice(at..at, piece.iter().copied());
                    }
                }
                if m.is_empty() {
                    m.push(b'\n');
                }
            }
            if let Ok(r) = parse_request(&m) {
                assert!(r.token.len() <= MAX_TOKEN_TEXT && !r.token.contains([' ', '\n']));
                assert_eq!(Mac::parse(r.mac.as_str()).unwrap(), r.mac);
                if let Some(id) = &r.id {
                    DeviceId::parse(id.as_str()).unwrap();
                }
                assert!(r.host_keys.len() <= MAX_REQUEST_HOST_KEYS);
            }
        }
    }

    #[test]
    fn refusals_and_sources() {
        assert_eq!(
            render_refused(Refusal::UsedUp),
            "jailbird-claim 1\nrefused used-up\n"
        );
        assert_eq!(source_from(None).unwrap(), "local");
        assert_eq!(
            source_from(Some("192.0.2.7 50022 127.0.0.1 22")).unwrap(),
            "192.0.2.7"
        );
        assert_eq!(source_from(Some("::1 50022 ::1 22")).unwrap(), "::1");
        assert!(source_from(Some("evil;rm 1 2 3")).is_err());
        assert!(source_from(Some("")).is_err());
    }

    #[test]
    fn the_key_sshd_authenticated() {
        let k = key_from_user_auth(&format!("publickey {K1}\n")).unwrap();
        assert_eq!(k.line(), K1);
        assert!(key_from_user_auth("").is_err());
        assert!(key_from_user_auth("password\n").is_err());
        assert!(key_from_user_auth(&format!("publickey {K1}\npublickey {K2}\n")).is_err());
        assert!(key_from_user_auth("publickey ssh-ed25519 AAAA\n").is_err());
    }
}
