//! The HTTP CONNECT proxy's answer parser (`proxy::parse_answer`), and the
//! `--proxy` URL parser (`spec::parse_proxy_url`) on the same bytes as UTF-8.
//!
//! Input: raw bytes, as a proxy (or anything listening where the proxy should
//! be) might send them. Nothing may panic; a verdict on some bytes must stand
//! for every longer input (the agent reads the answer in pieces and consumes
//! exactly the head); a complete head is within MAX_PROXY_HEAD_BYTES, and no
//! prefix of it is complete. An accepted URL never prints its credentials; an
//! error is one line and never shows the password.
#![no_main]

use jailbird::limits::MAX_PROXY_HEAD_BYTES;
use jailbird::proxy::{Answer, BadAnswer, parse_answer};
use jailbird::spec::{ProxyUrl, parse_proxy_url, redact_userinfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_answer(data);
    if let Ok(s) = std::str::from_utf8(data) {
        check_url(s);
    }
});

fn check_answer(data: &[u8]) {
    let verdict = parse_answer(data);
    let mut longer = data.to_vec();
    longer.extend_from_slice(b"\r\n\r\nHTTP/1.1 200 OK\r\n\r\nSSH-2.0-x\r\n");
    match &verdict {
        Ok(Answer::Incomplete) => {
            assert!(data.len() < MAX_PROXY_HEAD_BYTES, "incomplete at the limit");
            let _ = parse_answer(&longer);
        }
        Ok(Answer::Complete {
            status,
            reason,
            head_len,
        }) => {
            assert!(*head_len <= data.len().min(MAX_PROXY_HEAD_BYTES));
            assert!((100..=999).contains(status));
            assert!(reason.len() <= 64 && reason.bytes().all(|b| (0x20..0x7f).contains(&b)));
            assert_eq!(parse_answer(&data[..*head_len]), verdict, "head alone");
            assert_eq!(parse_answer(&longer), verdict, "more bytes changed it");
            // No prefix of the head is complete (or an error).
            let step = (*head_len / 256).max(1);
            for n in (0..*head_len).step_by(step).chain([head_len - 1]) {
                assert_eq!(
                    parse_answer(&data[..n]),
                    Ok(Answer::Incomplete),
                    "prefix {n}"
                );
            }
        }
        Err(e) => {
            let again = parse_answer(&longer);
            match (e, &again) {
                (BadAnswer::NotHttp(_), Err(BadAnswer::NotHttp(_))) => {}
                (BadAnswer::TooLong, Err(BadAnswer::TooLong)) => {}
                (BadAnswer::Malformed(a), Err(BadAnswer::Malformed(b))) => assert_eq!(a, b),
                _ => panic!("{e:?} became {again:?} with more bytes"),
            }
            if let BadAnswer::NotHttp(start) = e {
                assert!(
                    start.len() <= 32 * 4 + 3 && start.bytes().all(|b| (0x20..0x7f).contains(&b))
                );
            }
        }
    }
}

fn check_url(s: &str) {
    match parse_proxy_url(s, "--proxy") {
        Ok(p) => {
            assert_ne!(p.port, 0);
            let shown = format!("{p} {p:?}");
            assert!(!shown.contains('\n'));
            if let Some(c) = &p.credentials {
                assert!(!c.user.is_empty() && !c.user.contains(':'));
                assert!(
                    !c.user
                        .chars()
                        .chain(c.password.chars())
                        .any(char::is_control)
                );
                // Printed, it is exactly the same proxy printed without
                // credentials but for the fixed mark: nothing of them shows.
                let bare = ProxyUrl {
                    credentials: None,
                    ..p.clone()
                };
                assert_eq!(format!("{p}"), format!("{bare}"));
                assert_eq!(
                    format!("{p:?}"),
                    format!("{bare:?}").replace(
                        "credentials: None",
                        "credentials: Some(Credentials(not shown))"
                    )
                );
            }
            // Printed without credentials, it parses back to the same place.
            let again = parse_proxy_url(&p.to_string(), "--proxy").expect("printed form");
            assert_eq!((again.host, again.port), (p.host, p.port));
        }
        Err(e) => {
            assert!(!e.0.is_empty() && !e.0.contains('\n'), "{e}");
            // The value is shown only as redact_userinfo shows it, and that
            // never holds the part before the last '@' (the user and password).
            let shown = redact_userinfo(s);
            assert!(
                e.0.starts_with(&format!("--proxy {shown:?}: ")),
                "{s:?}: {e}"
            );
            // Redacted by structure: everything between the scheme's `://` and
            // the last `@` (the user and password) is gone, whatever it holds.
            if let Some((scheme, rest)) = s.split_once("://") {
                if let Some((_, host)) = rest.rsplit_once('@') {
                    let want = if scheme.is_empty() {
                        format!("***@{host}")
                    } else {
                        format!("{scheme}://***@{host}")
                    };
                    assert_eq!(shown, want, "{s:?}");
                    assert!(!host.contains('@') && !scheme.contains("://"));
                }
            }
        }
    }
}
