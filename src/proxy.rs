//! Reaching the jail through an HTTP CONNECT proxy (`--proxy`, feature
//! `proxy`): the request, a bounded parser of the proxy's answer (a pure
//! function over bytes, fuzzed by fuzz/fuzz_targets/proxy_answer.rs), and the
//! exchange on the TCP stream to the proxy, after which the stream is the
//! jail's and goes to russh exactly as a direct one does. The URL itself is
//! parsed in `spec.rs` ([`ProxyUrl`]); the jail's host key is checked against
//! the jail's name and port as always, never the proxy's.

use crate::limits::MAX_PROXY_HEAD_BYTES;
use crate::spec::{Jail, ProxyUrl, bracket};

/// The CONNECT request asking `proxy` for a tunnel to `jail`. It carries the
/// credentials (Basic): it is written to the proxy and never logged.
pub fn connect_request(proxy: &ProxyUrl, jail: &Jail) -> String {
    let target = format!("{}:{}", bracket(&jail.host), jail.port);
    let mut r = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
    if let Some(c) = &proxy.credentials {
        use base64ct::Encoding;
        let pair = format!("{}:{}", c.user, c.password);
        r.push_str("Proxy-Authorization: Basic ");
        r.push_str(&base64ct::Base64::encode_string(pair.as_bytes()));
        r.push_str("\r\n");
    }
    r.push_str("\r\n");
    r
}

/// What the bytes received so far say.
#[derive(Debug, PartialEq, Eq)]
pub enum Answer {
    /// The head has not ended yet (fewer than [`MAX_PROXY_HEAD_BYTES`] so far).
    Incomplete,
    /// The head ends after `head_len` bytes (at most [`MAX_PROXY_HEAD_BYTES`]);
    /// whatever follows is the jail's.
    Complete {
        status: u16,
        /// The reason phrase, printable ASCII only, at most 64 characters.
        reason: String,
        head_len: usize,
    },
}

/// An answer that cannot be an HTTP/1.x response head.
#[derive(Debug, PartialEq, Eq)]
pub enum BadAnswer {
    /// It does not begin with `HTTP/1.`: its first bytes, escaped.
    NotHttp(String),
    /// The status line or a header line is malformed: which.
    Malformed(&'static str),
    /// No end of the head within [`MAX_PROXY_HEAD_BYTES`].
    TooLong,
}

/// Parses the start of a proxy's answer. Only the first
/// [`MAX_PROXY_HEAD_BYTES`] bytes are looked at. The verdict on a prefix
/// stands for every longer input: once `Complete` or an error, more bytes
/// change nothing (the reader consumes exactly `head_len` bytes).
pub fn parse_answer(buf: &[u8]) -> Result<Answer, BadAnswer> {
    const PREFIX: &[u8] = b"HTTP/1.";
    let buf = &buf[..buf.len().min(MAX_PROXY_HEAD_BYTES)];
    let n = buf.len().min(PREFIX.len());
    if buf[..n] != PREFIX[..n] {
        return Err(BadAnswer::NotHttp(escaped(buf, 32)));
    }
    let mut status: Option<(u16, &[u8])> = None;
    let mut start = 0;
    while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
        let end = start + nl;
        let line = &buf[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match status {
            None => status = Some(status_line(line)?),
            Some((code, reason)) if line.is_empty() => {
                return Ok(Answer::Complete {
                    status: code,
                    reason: printable(reason, 64),
                    head_len: end + 1,
                });
            }
            Some(_) => header_line(line)?,
        }
        start = end + 1;
    }
    if buf.len() >= MAX_PROXY_HEAD_BYTES {
        Err(BadAnswer::TooLong)
    } else {
        Ok(Answer::Incomplete)
    }
}

/// `HTTP/1.x NNN[ reason]`: the code and the reason's bytes.
fn status_line(line: &[u8]) -> Result<(u16, &[u8]), BadAnswer> {
    let bad = BadAnswer::Malformed("status line");
    let ok = line.len() >= 12
        && line[7].is_ascii_digit()
        && line[8] == b' '
        && (b'1'..=b'9').contains(&line[9])
        && line[10..12].iter().all(u8::is_ascii_digit)
        && (line.len() == 12 || line[12] == b' ')
        && !has_controls(line);
    if !ok {
        return Err(bad);
    }
    let code = line[9..12]
        .iter()
        .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    Ok((code, line.get(13..).unwrap_or(&[])))
}

/// `Name: value`, or a folded continuation (starting with a blank).
fn header_line(line: &[u8]) -> Result<(), BadAnswer> {
    let folded = matches!(line.first(), Some(b' ' | b'\t'));
    let named = line.iter().position(|&b| b == b':').is_some_and(|i| i > 0);
    if (folded || named) && !has_controls(line) {
        Ok(())
    } else {
        Err(BadAnswer::Malformed("header line"))
    }
}

/// Control bytes other than a tab.
fn has_controls(line: &[u8]) -> bool {
    line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f)
}

/// Up to `max` characters of `b`, printable ASCII kept, anything else `?`.
fn printable(b: &[u8], max: usize) -> String {
    b.iter()
        .take(max)
        .map(|&c| {
            if (0x20..0x7f).contains(&c) {
                c as char
            } else {
                '?'
            }
        })
        .collect()
}

/// The first `max` bytes of `b`, escaped (`\xNN`) where not printable ASCII.
fn escaped(b: &[u8], max: usize) -> String {
    let mut s: String = b
        .iter()
        .take(max)
        .flat_map(|&c| std::ascii::escape_default(c))
        .map(char::from)
        .collect();
    if b.len() > max {
        s.push_str("...");
    }
    s
}

/// The one line an operator sees for a proxy's answer other than 2xx.
pub fn refusal(proxy: &ProxyUrl, jail: &Jail, status: u16, reason: &str) -> String {
    let answer = format!("{status} {reason}");
    let answer = answer.trim_end();
    let head = format!("proxy {proxy} answered CONNECT to jail {jail} with {answer}");
    match status {
        407 if proxy.credentials.is_some() => {
            format!("{head}: it refused the user and password given in the proxy URL")
        }
        407 => format!("{head}: it wants a user and password (--proxy http://USER:PASS@HOST:PORT)"),
        403 => format!("{head}: its rules do not allow a tunnel to that host and port"),
        500..=599 => format!("{head}: it could not reach the jail"),
        _ => head,
    }
}

/// The line for an answer that is not HTTP, malformed or too long.
pub fn bad_answer(proxy: &ProxyUrl, jail: &Jail, bad: &BadAnswer) -> String {
    let head = format!("proxy {proxy} answered CONNECT to jail {jail} with");
    match bad {
        BadAnswer::NotHttp(start) => format!("{head} something that is not HTTP: \"{start}\""),
        BadAnswer::Malformed(what) => format!("{head} a malformed HTTP {what}"),
        BadAnswer::TooLong => {
            format!("{head} a head longer than {MAX_PROXY_HEAD_BYTES} bytes (MAX_PROXY_HEAD_BYTES)")
        }
    }
}

/// Asks the proxy on `stream` for a tunnel to `jail` and reads its answer
/// before `deadline`, consuming exactly the answer's head: on `Ok` the next
/// byte on `stream` is the jail's. An error is one line for the log.
#[cfg(feature = "proxy")]
pub async fn handshake(
    stream: &mut tokio::net::TcpStream,
    proxy: &ProxyUrl,
    jail: &Jail,
    deadline: tokio::time::Instant,
) -> Result<(), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        stream
            .write_all(connect_request(proxy, jail).as_bytes())
            .await?;
        // Peek, then consume only what belongs to the head: the jail's SSH
        // banner may arrive in the same segment as the proxy's answer.
        let mut head = vec![0u8; MAX_PROXY_HEAD_BYTES];
        let mut have = 0;
        loop {
            let n = stream.peek(&mut head[have..]).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            let answer = parse_answer(&head[..have + n]);
            let take = match &answer {
                Ok(Answer::Complete { head_len, .. }) => *head_len,
                Ok(Answer::Incomplete) => have + n,
                Err(_) => have,
            };
            stream.read_exact(&mut head[have..take]).await?;
            have = take;
            match answer {
                Ok(Answer::Incomplete) => {}
                Ok(Answer::Complete { status, reason, .. }) => {
                    return Ok(Some(Ok((status, reason))));
                }
                Err(bad) => return Ok(Some(Err(bad))),
            }
        }
    };
    match tokio::time::timeout_at(deadline, exchange).await {
        Err(_) => Err(format!(
            "proxy {proxy} did not answer CONNECT to jail {jail} in time (ConnectTimeout)"
        )),
        Ok(Err(e)) => Err(format!("proxy {proxy} (CONNECT to jail {jail}): {e}")),
        Ok(Ok(None)) => Err(format!(
            "proxy {proxy} closed the connection before answering CONNECT to jail {jail}"
        )),
        Ok(Ok(Some(Err(bad)))) => Err(bad_answer(proxy, jail, &bad)),
        Ok(Ok(Some(Ok((status, _))))) if (200..300).contains(&status) => Ok(()),
        Ok(Ok(Some(Ok((status, reason))))) => Err(refusal(proxy, jail, status, &reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::parse_proxy_url;

    fn jail() -> Jail {
        Jail {
            user: "u".into(),
            host: "jail.example".into(),
            port: 8022,
        }
    }

    #[test]
    fn request_carries_target_host_and_basic_auth() {
        let p = parse_proxy_url("http://Aladdin:open%20sesame@proxy:3128", "--proxy").unwrap();
        assert_eq!(
            connect_request(&p, &jail()),
            "CONNECT jail.example:8022 HTTP/1.1\r\nHost: jail.example:8022\r\n\
             Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
        let p = parse_proxy_url("http://proxy:3128", "--proxy").unwrap();
        let v6 = Jail {
            host: "2001:db8::1".into(),
            ..jail()
        };
        assert_eq!(
            connect_request(&p, &v6),
            "CONNECT [2001:db8::1]:8022 HTTP/1.1\r\nHost: [2001:db8::1]:8022\r\n\r\n"
        );
    }

    #[test]
    fn complete_answers() {
        let a = b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-OpenSSH\r\n";
        assert_eq!(
            parse_answer(a),
            Ok(Answer::Complete {
                status: 200,
                reason: "Connection established".into(),
                head_len: 39
            })
        );
        let a = b"HTTP/1.0 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n  folded\r\nContent-Length: 5\r\n\r\nbody!";
        let Ok(Answer::Complete {
            status, head_len, ..
        }) = parse_answer(a)
        else {
            panic!()
        };
        assert_eq!((status, &a[head_len..]), (407, &b"body!"[..]));
        // Bare LF line ends and a status line without a reason.
        assert_eq!(
            parse_answer(b"HTTP/1.1 200\n\n"),
            Ok(Answer::Complete {
                status: 200,
                reason: String::new(),
                head_len: 14
            })
        );
    }

    #[test]
    fn every_prefix_of_a_good_answer_is_incomplete() {
        let a = b"HTTP/1.1 403 Forbidden\r\nServer: squid\r\nX-Squid-Error: ERR_ACCESS_DENIED 0\r\n\r\n";
        for n in 0..a.len() {
            assert_eq!(parse_answer(&a[..n]), Ok(Answer::Incomplete), "{n}");
        }
        assert!(matches!(
            parse_answer(a),
            Ok(Answer::Complete { status: 403, .. })
        ));
    }

    #[test]
    fn garbage_is_refused_at_once() {
        assert_eq!(
            parse_answer(b"SSH-2.0-OpenSSH_9.2\r\n"),
            Err(BadAnswer::NotHttp("SSH-2.0-OpenSSH_9.2\\r\\n".into()))
        );
        assert!(matches!(
            parse_answer(b"\x16\x03\x01"),
            Err(BadAnswer::NotHttp(_))
        ));
        for bad in [
            &b"HTTP/1.1 20 OK\r\n"[..],
            b"HTTP/1.1 abc OK\r\n",
            b"HTTP/1.1 200OK\r\n",
            b"HTTP/1.1  200 OK\r\n",
            b"HTTP/1.1 099 x\r\n",
            b"HTTP/1.1 200 O\x00K\r\n",
        ] {
            assert_eq!(
                parse_answer(bad),
                Err(BadAnswer::Malformed("status line")),
                "{}",
                escaped(bad, 99)
            );
        }
        assert_eq!(
            parse_answer(b"HTTP/1.1 200 OK\r\nno colon here\r\n"),
            Err(BadAnswer::Malformed("header line"))
        );
        assert_eq!(
            parse_answer(b"HTTP/1.1 200 OK\r\n: empty name\r\n"),
            Err(BadAnswer::Malformed("header line"))
        );
    }

    #[test]
    fn an_endless_head_is_cut_at_the_limit() {
        let mut a = b"HTTP/1.1 200 OK\r\n".to_vec();
        while a.len() + 25 < MAX_PROXY_HEAD_BYTES {
            a.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(parse_answer(&a), Ok(Answer::Incomplete));
        a.resize(MAX_PROXY_HEAD_BYTES, b'a');
        assert_eq!(parse_answer(&a), Err(BadAnswer::TooLong));
        // The end of the head just past the limit is not seen.
        a.extend_from_slice(b"\r\n\r\n");
        assert_eq!(parse_answer(&a), Err(BadAnswer::TooLong));
    }

    #[test]
    fn lines_name_the_cause_and_never_the_credentials() {
        let with = parse_proxy_url("http://bob:hunter2@proxy:3128", "--proxy").unwrap();
        let without = parse_proxy_url("http://proxy:3128", "--proxy").unwrap();
        let j = jail();
        let l = refusal(&with, &j, 407, "Proxy Authentication Required");
        assert!(
            l.contains("407") && l.contains("refused the user and password"),
            "{l}"
        );
        assert!(refusal(&without, &j, 407, "").contains("wants a user and password"));
        let l = refusal(&with, &j, 403, "Forbidden");
        assert!(
            l.contains("403 Forbidden") && l.contains("jail.example:8022"),
            "{l}"
        );
        let l = bad_answer(&with, &j, &BadAnswer::TooLong);
        assert!(l.contains("8192"), "{l}");
        for l in [
            l,
            refusal(&with, &j, 407, ""),
            format!("{with} {with:?}"),
            bad_answer(&with, &j, &BadAnswer::NotHttp("x".into())),
        ] {
            assert!(!l.contains("bob") && !l.contains("hunter2"), "{l}");
            assert!(!l.contains('\n'), "{l}");
        }
    }
}
