//! The state-file decoder: `identity::decode_bytes` must never panic, and a
//! state it accepts must survive encode -> decode unchanged.
//!
//! Each input is tried twice: as a whole file image, and as a postcard body
//! wrapped in a valid header and CRC-32C trailer (a fuzzer cannot forge the
//! CRC, so without the second view it would never get past the checksum).
#![no_main]

use jailbird::identity::{self, FORMAT_VERSION, FORMAT_VERSION_V1, MAGIC, State, StdIo};
use jailbird::limits::{
    MAX_ENROLLED_JAILS, MAX_PIN_NAME_BYTES, MAX_PINNED_HOSTS, MAX_STATE_FILE_BYTES,
};
use libfuzzer_sys::fuzz_target;

const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

fuzz_target!(|data: &[u8]| {
    check(data);
    // Both format versions this agent reads (1: no enrolment, 2: with one).
    for version in [FORMAT_VERSION_V1, FORMAT_VERSION] {
        let mut image = Vec::with_capacity(data.len() + 9);
        image.extend_from_slice(&MAGIC);
        image.push(version);
        image.extend_from_slice(data);
        image.extend_from_slice(&CRC.checksum(data).to_le_bytes());
        check(&image);
    }
});

fn encode(state: &State) -> Vec<u8> {
    let mut out = Vec::new();
    identity::encode(state, &mut StdIo(&mut out)).expect("a decoded state must encode again");
    out
}

fn check(bytes: &[u8]) {
    let decoded = identity::decode_bytes(bytes);
    // The streaming decoder must agree with the slice decoder.
    let streamed = identity::decode(&mut StdIo(bytes));
    match (&decoded, &streamed) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "decode and decode_bytes disagree"),
        (Err(_), Err(_)) => {}
        _ => panic!("decode and decode_bytes disagree: {decoded:?} vs {streamed:?}"),
    }
    if let Err(e) = &decoded {
        let msg = e.to_string();
        assert!(!msg.is_empty() && !msg.contains('\n'), "error {msg:?}");
        return;
    }
    let state = decoded.unwrap();
    assert!(bytes.len() <= MAX_STATE_FILE_BYTES);
    assert!(state.pins.len() <= MAX_PINNED_HOSTS);
    for pin in &state.pins {
        assert!(pin.jail.len() <= MAX_PIN_NAME_BYTES);
        assert_eq!(
            state.pin_for(&pin.jail).map(|p| p.jail.as_str()),
            Some(pin.jail.as_str())
        );
    }

    // The version byte says whether there is an enrolment, and it is bounded.
    assert_eq!(bytes[4] == FORMAT_VERSION, state.enrolment.is_some());
    if let Some(e) = &state.enrolment {
        assert!(e.jails.len() <= MAX_ENROLLED_JAILS);
    }

    let first = encode(&state);
    assert_eq!(first[4], bytes[4], "re-encoded under another version");
    assert!(
        first.len() <= MAX_STATE_FILE_BYTES,
        "re-encoded state too large"
    );
    let again = identity::decode_bytes(&first).expect("re-encoded state must decode");
    assert_eq!(again, state, "state changed through encode -> decode");
    assert_eq!(encode(&again), first, "encoding is not stable");
    // Not asserted: that `bytes` starts with `first`. postcard accepts overlong
    // varints (e.g. a pin count of 0x80 0x00), so a hand-made image may decode
    // to a state whose canonical encoding differs; the CRC still covers it.

    // What the agent does with a loaded state must not panic either.
    let key = state.private_key();
    let _ = identity::fingerprint(key.public_key());
    let _ = format!("{state:?}");
}
