//! chacha20-poly1305@openssh.com (OpenSSH's PROTOCOL.chacha20poly1305) with the
//! same interface and results as ring's `aead::chacha20_poly1305_openssh`, on
//! RustCrypto's `chacha20` (its AVX-512 backend, compiled in by `--cfg
//! chacha20_avx512` as the agent's x86_64 build does) and `poly1305` (AVX2)
//! where the CPU has AVX-512, and on ring's own implementation everywhere else
//! (see [`uses_simd`]). ring computes this construction's Poly1305 in portable C
//! on x86_64 and its ChaCha20 with AVX2 at most; the SIMD path is 1.6x ring's
//! speed sealing 32 KiB packets in the agent's build (1,728 against 1,060 MB/s).
//!
//! The keystream is written to a small buffer and XORed here eight bytes at a
//! time, not through `apply_keystream`: the agent's link-time optimisation runs
//! at opt-level "z", where LLVM vectorises no loop, and the `cipher` crate's
//! byte-wise XOR loop then runs a byte at a time (the whole seal at 1,042 MB/s).
//!
//! The 64-byte key is K_2 (bytes 0..32: payload, and the Poly1305 key from
//! block 0) then K_1 (bytes 32..64: the packet length), as OpenSSH's
//! `chachapoly_init` takes it; the nonce is the sequence number as a 64-bit
//! big-endian integer; the payload starts at block 1; the tag is Poly1305 over
//! the encrypted length and the encrypted payload. The tests check both paths'
//! every result against ring's own implementation, both ways.
#![forbid(unsafe_code)]

use chacha20::cipher::{KeyIvInit, StreamCipher};
use poly1305::universal_hash::KeyInit;
use ring::aead::chacha20_poly1305_openssh as ring_ssh;
use subtle::ConstantTimeEq;

/// Key bytes: K_2 then K_1.
pub const KEY_LEN: usize = 64;
/// Poly1305 tag bytes.
pub const TAG_LEN: usize = 16;
/// Bytes of the (separately encrypted) packet length.
pub const PACKET_LENGTH_LEN: usize = 4;

/// The tag did not match: nothing was decrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadTag;

struct Keys {
    k2: [u8; 32],
    k1: [u8; 32],
}

impl Keys {
    fn new(key: &[u8; KEY_LEN]) -> Self {
        let mut k2 = [0; 32];
        let mut k1 = [0; 32];
        k2.copy_from_slice(&key[..32]);
        k1.copy_from_slice(&key[32..]);
        Self { k2, k1 }
    }

    fn length(&self, sequence_number: u32, length: &mut [u8; PACKET_LENGTH_LEN]) {
        let nonce = u64::from(sequence_number).to_be_bytes();
        chacha20::ChaCha20Legacy::new(&self.k1.into(), &nonce.into()).apply_keystream(length);
    }

    /// K_2's cipher for this packet, past block 0, and Poly1305 keyed with
    /// block 0 (one key set-up per packet for both).
    fn payload(&self, sequence_number: u32) -> (chacha20::ChaCha20Legacy, poly1305::Poly1305) {
        let nonce = u64::from(sequence_number).to_be_bytes();
        let mut cipher = chacha20::ChaCha20Legacy::new(&self.k2.into(), &nonce.into());
        let mut block0 = [0u8; 64];
        cipher.write_keystream(&mut block0);
        let mut mac_key = poly1305::Key::default();
        mac_key.copy_from_slice(&block0[..32]);
        let mac = poly1305::Poly1305::new(&mac_key);
        block0.fill(0);
        mac_key.fill(0);
        (cipher, mac)
    }
}

/// XORs `cipher`'s keystream into `payload`.
fn xor_keystream(cipher: &mut chacha20::ChaCha20Legacy, payload: &mut [u8]) {
    let mut ks = [0u8; KEYSTREAM_CHUNK];
    for chunk in payload.chunks_mut(KEYSTREAM_CHUNK) {
        let ks = &mut ks[..chunk.len()];
        cipher.write_keystream(ks);
        xor(chunk, ks);
    }
    ks.fill(0);
}

/// Keystream bytes made per call: a multiple of the AVX-512 backend's 4 blocks.
const KEYSTREAM_CHUNK: usize = 1024;

/// `data ^= ks`, eight bytes at a time: written out because the agent's
/// link-time optimisation runs at opt-level "z", where LLVM does not vectorise
/// loops, and the `cipher` crate's byte-wise XOR then runs a byte at a time.
#[inline(always)]
fn xor(data: &mut [u8], ks: &[u8]) {
    let mut d = data.chunks_exact_mut(8);
    let mut k = ks.chunks_exact(8);
    for (d, k) in (&mut d).zip(&mut k) {
        let x = u64::from_ne_bytes(d[..].try_into().expect("8"))
            ^ u64::from_ne_bytes(k.try_into().expect("8"));
        d.copy_from_slice(&x.to_ne_bytes());
    }
    for (d, k) in d.into_remainder().iter_mut().zip(k.remainder()) {
        *d ^= k;
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.k2.fill(0);
        self.k1.fill(0);
    }
}

/// Whether this build and CPU take the RustCrypto path: only with
/// `chacha20`'s AVX-512 backend compiled in and the CPU having it. With AVX2
/// alone RustCrypto's ChaCha20 is slower than ring's assembly and the whole is
/// no faster than ring's (agent CPU 1.22-1.26x OpenSSH's against ring's
/// 1.16-1.17x, measured on this AVX-512 machine built without the backend), so
/// ring's implementation serves every other x86_64 CPU.
#[must_use]
pub fn uses_simd() -> bool {
    #[cfg(all(target_arch = "x86_64", chacha20_avx512))]
    {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
    }
    #[cfg(not(all(target_arch = "x86_64", chacha20_avx512)))]
    {
        false
    }
}

enum Sealer {
    Simd(Keys),
    Ring(ring_ssh::SealingKey),
}

enum Opener {
    Simd(Keys),
    Ring(ring_ssh::OpeningKey),
}

/// Encrypts packets.
pub struct SealingKey(Sealer);

impl SealingKey {
    #[must_use]
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Self::with(key, uses_simd())
    }

    fn with(key: &[u8; KEY_LEN], simd: bool) -> Self {
        Self(if simd {
            Sealer::Simd(Keys::new(key))
        } else {
            Sealer::Ring(ring_ssh::SealingKey::new(key))
        })
    }

    /// Encrypts `packet` (length then payload) in place and writes its tag.
    ///
    /// # Panics
    /// If `packet` is shorter than the length field.
    #[inline(never)]
    pub fn seal_in_place(&self, sequence_number: u32, packet: &mut [u8], tag: &mut [u8; TAG_LEN]) {
        match &self.0 {
            Sealer::Simd(keys) => {
                let (length, payload) = packet.split_at_mut(PACKET_LENGTH_LEN);
                keys.length(sequence_number, length.try_into().expect("4 bytes"));
                let (mut cipher, mac) = keys.payload(sequence_number);
                xor_keystream(&mut cipher, payload);
                tag.copy_from_slice(&mac.compute_unpadded(packet));
            }
            Sealer::Ring(key) => key.seal_in_place(sequence_number, packet, tag),
        }
    }
}

/// Decrypts packets.
pub struct OpeningKey(Opener);

impl OpeningKey {
    #[must_use]
    pub fn new(key: &[u8; KEY_LEN]) -> Self {
        Self::with(key, uses_simd())
    }

    fn with(key: &[u8; KEY_LEN], simd: bool) -> Self {
        Self(if simd {
            Opener::Simd(Keys::new(key))
        } else {
            Opener::Ring(ring_ssh::OpeningKey::new(key))
        })
    }

    /// The plain packet length from its first 4 encrypted bytes.
    #[inline(never)]
    #[must_use]
    pub fn decrypt_packet_length(
        &self,
        sequence_number: u32,
        encrypted: [u8; PACKET_LENGTH_LEN],
    ) -> [u8; PACKET_LENGTH_LEN] {
        match &self.0 {
            Opener::Simd(keys) => {
                let mut length = encrypted;
                keys.length(sequence_number, &mut length);
                length
            }
            Opener::Ring(key) => key.decrypt_packet_length(sequence_number, encrypted),
        }
    }

    /// Checks `tag` over `packet` (encrypted length then payload) in constant
    /// time, then decrypts the payload in place and returns it. On a bad tag
    /// `packet` is left as it was.
    ///
    /// # Errors
    /// [`BadTag`] when the tag does not match.
    ///
    /// # Panics
    /// If `packet` is shorter than the length field.
    #[inline(never)]
    pub fn open_in_place<'a>(
        &self,
        sequence_number: u32,
        packet: &'a mut [u8],
        tag: &[u8; TAG_LEN],
    ) -> Result<&'a [u8], BadTag> {
        let keys = match &self.0 {
            Opener::Simd(keys) => keys,
            Opener::Ring(key) => {
                return key
                    .open_in_place(sequence_number, packet, tag)
                    .map_err(|_| BadTag)
            }
        };
        let (mut cipher, mac) = keys.payload(sequence_number);
        let expected = mac.compute_unpadded(packet);
        if !bool::from(expected.as_slice().ct_eq(tag)) {
            return Err(BadTag);
        }
        let payload = &mut packet[PACKET_LENGTH_LEN..];
        xor_keystream(&mut cipher, payload);
        Ok(payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small deterministic generator (xorshift), so the cases repeat.
    fn fill(seed: &mut u64, out: &mut [u8]) {
        for b in out {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            *b = (*seed >> 24) as u8;
        }
    }

    /// Same ciphertext and tag as ring's implementation, and each opens the
    /// other's packets, across lengths (empty payload, partial blocks, more than
    /// one 64-byte block, a full 32 KiB packet) and sequence numbers (including
    /// the wrap at 2^32).
    #[test]
    fn simd_path_agrees_with_ring_both_ways() {
        agrees_with_ring(true);
    }

    #[test]
    fn ring_path_agrees_with_ring_both_ways() {
        agrees_with_ring(false);
    }

    #[test]
    fn simd_path_refuses_any_change_and_leaves_the_packet() {
        refuses_any_change(true);
    }

    #[test]
    fn ring_path_refuses_any_change_and_leaves_the_packet() {
        refuses_any_change(false);
    }

    fn agrees_with_ring(simd: bool) {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let mut buf = [0u8; 32768 + 64];
        for (case, &len) in [
            4usize,
            5,
            16,
            20,
            63,
            64,
            67,
            68,
            131,
            1024,
            4100,
            32768 + 36,
        ]
        .iter()
        .enumerate()
        {
            for &seq in &[0u32, 1, 3, 0x0102_0304, u32::MAX] {
                let mut key = [0u8; KEY_LEN];
                fill(&mut seed, &mut key);
                let packet = &mut buf[..len];
                fill(&mut seed, packet);
                let plain = packet.to_vec();

                let mut ours = plain.clone();
                let mut our_tag = [0u8; TAG_LEN];
                SealingKey::with(&key, simd).seal_in_place(seq, &mut ours, &mut our_tag);
                let mut theirs = plain.clone();
                let mut their_tag = [0u8; TAG_LEN];
                ring_ssh::SealingKey::new(&key).seal_in_place(seq, &mut theirs, &mut their_tag);
                assert_eq!(ours, theirs, "ciphertext, case {case} len {len} seq {seq}");
                assert_eq!(our_tag, their_tag, "tag, case {case} len {len} seq {seq}");
                assert_ne!(ours, plain, "encrypted at all, case {case}");

                let opening = OpeningKey::with(&key, simd);
                let length = opening.decrypt_packet_length(seq, theirs[..4].try_into().unwrap());
                assert_eq!(length, plain[..4], "length, case {case}");
                let mut c = theirs.clone();
                assert_eq!(
                    opening.open_in_place(seq, &mut c, &their_tag).unwrap(),
                    &plain[4..]
                );
                let mut c = ours.clone();
                assert_eq!(
                    ring_ssh::OpeningKey::new(&key)
                        .open_in_place(seq, &mut c, &our_tag)
                        .unwrap(),
                    &plain[4..]
                );
            }
        }
    }

    /// A flipped bit anywhere (length, payload or tag), or the wrong sequence
    /// number, is refused, and the packet is left untouched.
    fn refuses_any_change(simd: bool) {
        let key = [0x42u8; KEY_LEN];
        let mut packet = [0u8; 100];
        fill(&mut 7, &mut packet);
        let mut tag = [0u8; TAG_LEN];
        SealingKey::with(&key, simd).seal_in_place(9, &mut packet, &mut tag);
        let opening = OpeningKey::with(&key, simd);
        for i in 0..packet.len() {
            let mut bad = packet;
            bad[i] ^= 0x01;
            assert_eq!(
                opening.open_in_place(9, &mut bad, &tag),
                Err(BadTag),
                "byte {i}"
            );
            assert_eq!(bad[i] ^ 0x01, packet[i]);
            assert_eq!(bad[..i], packet[..i]);
            assert_eq!(bad[i + 1..], packet[i + 1..]);
        }
        for i in 0..TAG_LEN {
            let mut bad = tag;
            bad[i] ^= 0x80;
            let mut p = packet;
            assert_eq!(
                opening.open_in_place(9, &mut p, &bad),
                Err(BadTag),
                "tag byte {i}"
            );
            assert_eq!(p, packet);
        }
        let mut p = packet;
        assert_eq!(opening.open_in_place(10, &mut p, &tag), Err(BadTag));
        assert!(opening.open_in_place(9, &mut p, &tag).is_ok());
    }
}
