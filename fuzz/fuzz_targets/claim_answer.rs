//! The claim answer parser (`claim::parse_answer`): what a jail's claim
//! account printed, as raw bytes.
//!
//! Nothing may panic. The oracle is structural, from an independent reading
//! of the same bytes: an accepted answer is `jailbird-claim 1` and `ok`
//! followed by `key value` lines; each field of the enrolment is the value
//! of its line (the jails in order, each key's SHA-256 that of the blob its
//! line names) and passes the checks a stored enrolment must pass; a refusal
//! is exactly two lines and its reason a short `[a-z0-9-]` word; an error is
//! one short line without control characters.
#![no_main]

use jailbird::claim::{Answer, parse_answer};
use jailbird::limits::{MAX_CLAIM_ANSWER_BYTES, MAX_CLAIM_ANSWER_LINES, MAX_ENROLLED_JAILS};
use jailbird::spec::parse_key_line;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_answer(data) {
        Err(e) => {
            let shown = e.to_string();
            assert!(!shown.is_empty() && shown.len() <= 200, "error {shown:?}");
            assert!(!shown.chars().any(char::is_control), "error {shown:?}");
            // The line named exists in the input.
            assert!(e.line <= data.split(|&b| b == b'\n').count(), "{shown} of {data:?}");
        }
        Ok(answer) => check_accepted_shape(data, &answer),
    }
});

/// The answer as plain lines, read without the parser.
fn lines(data: &[u8]) -> Vec<&str> {
    assert!(data.len() <= MAX_CLAIM_ANSWER_BYTES, "accepted above the bound");
    assert!(
        data.iter().all(|&b| b == b'\n' || (0x20..0x7f).contains(&b)),
        "accepted a byte outside printable ASCII"
    );
    let text = std::str::from_utf8(data).unwrap();
    let body = text.strip_suffix('\n').expect("accepted without a final newline");
    let lines: Vec<&str> = body.split('\n').collect();
    assert!(lines.len() <= MAX_CLAIM_ANSWER_LINES);
    assert_eq!(lines[0], "jailbird-claim 1");
    lines
}

fn check_accepted_shape(data: &[u8], answer: &Answer) {
    let lines = lines(data);
    match answer {
        Answer::Refused(r) => {
            assert_eq!(lines.len(), 2, "refusal with more lines");
            let word = lines[1].strip_prefix("refused ").expect("refused line");
            let shown = r.word();
            assert!(shown.len() <= 32 && shown.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
            // Every character kept is the wire word's, in order.
            let mut rest = word.chars();
            assert!(shown.chars().all(|c| rest.any(|w| w == c)), "{word:?} -> {shown:?}");
            assert!(!r.to_string().contains('\n'));
        }
        Answer::Accepted(e) => {
            assert_eq!(lines[1], "ok");
            assert_eq!(e.problem(), None, "accepted an enrolment a state file may not hold");
            let value = |key: &str| -> Vec<&str> {
                lines[2..]
                    .iter()
                    .filter_map(|l| l.strip_prefix(key).and_then(|v| v.strip_prefix(' ')))
                    .collect()
            };
            // Every line after `ok` is one of the five keys.
            let known = ["device", "port", "user", "target", "jail"];
            for l in &lines[2..] {
                assert!(known.iter().any(|k| l.split(' ').next() == Some(k)), "{l:?}");
            }
            assert_eq!(value("device"), [e.device.as_str()]);
            assert_eq!(value("port"), [e.port.to_string().as_str()]);
            assert_eq!(value("user"), [e.user.as_str()]);
            let target = value("target");
            assert_eq!(target.len(), 1);
            assert!(target[0].ends_with(&format!(":{}", e.target_port)));
            assert!(target[0].contains(e.target_host.as_str()));
            let jails = value("jail");
            assert_eq!(jails.len(), e.jails.len());
            assert!((1..=MAX_ENROLLED_JAILS).contains(&jails.len()));
            for (line, j) in jails.iter().zip(&e.jails) {
                let w: Vec<&str> = line.split(' ').collect();
                assert_eq!(w.len(), 4, "{line:?}");
                assert_eq!(w[0].trim_start_matches('[').trim_end_matches(']'), j.host.as_str());
                assert_eq!(w[1], j.port.to_string());
                let blob = parse_key_line(&format!("{} {}", w[2], w[3])).expect("key parsed");
                let sha = ring::digest::digest(&ring::digest::SHA256, &blob);
                assert_eq!(sha.as_ref(), &j.key_sha256[..], "pinned another key than the line's");
            }
            for (i, a) in e.jails.iter().enumerate() {
                assert!(e.jails[..i].iter().all(|b| (&b.host, b.port) != (&a.host, a.port)));
            }
        }
    }
}
