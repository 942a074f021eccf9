//! Host certificates: `hostcert::check` on any certificate ssh-key decodes, and
//! `CaLines::parse` on any known_hosts text.
//!
//! Input: the certificate's wire bytes (also tried as known_hosts text). Nothing
//! may panic, and:
//! - a certificate whose CA is trusted by no source is never accepted;
//! - an accepted certificate is a host certificate whose CA signature verifies;
//! - on a set clock it is within its validity window and nothing is left to
//!   check; on an unset clock its window is handed back to be checked later.
#![no_main]

use jailbird::hostcert::{
    Authorities, CLOCK_EPOCH_SECS, CaLines, check, clock_is_set, window_failure,
};
use libfuzzer_sys::fuzz_target;
use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::{Certificate, PublicKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = CaLines::parse(text);
    }
    let Ok(cert) = Certificate::from_bytes(data) else {
        return;
    };
    let Ok(ca) = PublicKey::from(cert.signature_key().clone()).to_bytes() else {
        return;
    };
    let trusted = CaLines {
        cas: vec![("*".into(), ca.clone())],
        revoked: Vec::new(),
    };
    let untrusted = Authorities {
        fleet: &[],
        known_hosts: None,
    };
    let (after, before) = (cert.valid_after(), cert.valid_before());
    for now in [0, CLOCK_EPOCH_SECS, after, before, after.saturating_add(1), u64::MAX] {
        assert!(check(&cert, untrusted, "jail.example", 22, now).is_err());
        for cas in [
            Authorities {
                fleet: &[],
                known_hosts: Some(&trusted),
            },
            Authorities {
                fleet: std::slice::from_ref(&ca),
                known_hosts: None,
            },
        ] {
            let Ok(ok) = check(&cert, cas, "jail.example", 22, now) else {
                continue;
            };
            assert_eq!(cert.cert_type(), CertType::Host);
            assert!(cert.verify_signature().is_ok());
            if clock_is_set(now) {
                assert_eq!(window_failure(after, before, now), None);
                assert_eq!(ok.unchecked_window, None);
            } else {
                assert_eq!(ok.unchecked_window, Some((after, before)));
            }
        }
    }
});
