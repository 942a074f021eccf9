//! The device identity file: an ed25519 seed plus jail host keys pinned by
//! `StrictHostKeyChecking=accept-new`.
//!
//! Layout: `JBRD` magic, one format-version byte, then a postcard body with a
//! CRC-32 trailer. Version 1 holds the seed and the pins; version 2 adds the
//! enrolment a claim token bought (`jailbird run --claim`). A state without an
//! enrolment is still written as version 1, so a device that never enrols
//! keeps a file older agents read; both versions are read. The codec works on `embedded_io` `Read`/`Write`, so the same
//! code serves a file, a raw flash partition or an in-memory buffer. Files are
//! written atomically (temp file in the same directory, fsync, rename, fsync of
//! the directory) with mode 0600, and an existing file that does not decode is
//! never touched.

use crate::limits::{
    MAX_DEVICE_ID_BYTES, MAX_ENROLLED_JAILS, MAX_HOST_BYTES, MAX_PIN_NAME_BYTES, MAX_PINNED_HOSTS,
    MAX_STATE_FILE_BYTES, MAX_USER_BYTES,
};
use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// First bytes of every state file.
pub const MAGIC: [u8; 4] = *b"JBRD";
/// Format version of a state without an enrolment (written so, and read).
pub const FORMAT_VERSION_V1: u8 = 1;
/// Format version of a state with an enrolment (written so, and read).
pub const FORMAT_VERSION: u8 = 2;
const HEADER_BYTES: usize = MAGIC.len() + 1;
/// The CRC-32C trailer, little-endian.
const CRC_BYTES: usize = 4;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// A jail host key pinned on first use: `host:port` and the SHA-256 of the key blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pin {
    /// `host:port` as the jail was named when it was pinned.
    pub jail: heapless::String<MAX_PIN_NAME_BYTES>,
    /// SHA-256 of the host key's wire encoding (what `SHA256:` fingerprints show).
    pub sha256: [u8; 32],
}

/// One jail of the pool a claim enrolled this device in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledJail {
    /// Host name or address (no brackets), checked by `spec::valid_host`.
    pub host: heapless::String<MAX_HOST_BYTES>,
    pub port: u16,
    /// SHA-256 of the jail's host key blob as the claim answer named it: the
    /// key is pinned for this jail.
    pub key_sha256: [u8; 32],
}

/// What an accepted claim answer gave this device: run with these as if
/// `-R PORT:TARGET USER@jail,...` had been given.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// The device id the registry knows this device by.
    pub device: heapless::String<MAX_DEVICE_ID_BYTES>,
    /// The `-R` port on every jail.
    pub port: u16,
    /// The account the device logs in as.
    pub user: heapless::String<MAX_USER_BYTES>,
    /// What forwarded connections go to (no brackets).
    pub target_host: heapless::String<MAX_HOST_BYTES>,
    pub target_port: u16,
    /// The pool's jails, in the answer's order.
    pub jails: heapless::Vec<EnrolledJail, MAX_ENROLLED_JAILS>,
}

impl Enrolment {
    /// Checks what a state file (or a peer) said again before it is used:
    /// names, ports and a jail count within bounds. `None`: all fine.
    pub fn problem(&self) -> Option<&'static str> {
        use crate::spec::{valid_host, valid_user};
        if !crate::spec::valid_device_id(&self.device) {
            return Some("bad device id");
        }
        if self.port == 0 || self.target_port == 0 {
            return Some("port 0");
        }
        if !valid_user(&self.user) {
            return Some("bad user name");
        }
        if !valid_host(&self.target_host) {
            return Some("bad target host");
        }
        if self.jails.is_empty() {
            return Some("no jails");
        }
        if self
            .jails
            .iter()
            .any(|j| !valid_host(&j.host) || j.port == 0)
        {
            return Some("bad jail address");
        }
        None
    }
}

/// What the state file holds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// ed25519 private seed of the device key.
    pub seed: [u8; 32],
    /// Host keys pinned by accept-new.
    pub pins: heapless::Vec<Pin, MAX_PINNED_HOSTS>,
    /// The claim's result (format version 2); `None` in a version 1 file.
    pub enrolment: Option<Enrolment>,
}

impl fmt::Debug for State {
    // The seed is secret: show the fingerprint only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("key", &fingerprint(self.private_key().public_key()))
            .field("pins", &self.pins.len())
            .field(
                "enrolled",
                &self.enrolment.as_ref().map(|e| e.device.as_str()),
            )
            .finish()
    }
}

impl State {
    /// A fresh identity from the system's random source.
    pub fn generate() -> Result<Self, StateError> {
        use ring::rand::SecureRandom;
        let mut seed = [0u8; 32];
        ring::rand::SystemRandom::new()
            .fill(&mut seed)
            .map_err(|_| StateError::NoRandom)?;
        Ok(State {
            seed,
            pins: heapless::Vec::new(),
            enrolment: None,
        })
    }

    /// The device's ed25519 private key.
    pub fn private_key(&self) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&self.seed))
    }

    /// The pin stored for `jail`, if any.
    pub fn pin_for(&self, jail: &str) -> Option<&Pin> {
        self.pins.iter().find(|p| p.jail.as_str() == jail)
    }

    /// Adds a pin; fails if the name is too long or the pin table is full.
    pub fn add_pin(&mut self, jail: &str, sha256: [u8; 32]) -> Result<(), StateError> {
        let mut name = heapless::String::new();
        name.push_str(jail)
            .map_err(|_| StateError::PinName(jail.into()))?;
        self.pins
            .push(Pin { jail: name, sha256 })
            .map_err(|_| StateError::PinsFull)
    }
}

/// Everything that can go wrong with the state file; each message names the problem.
#[derive(Debug)]
pub enum StateError {
    Io(std::io::Error),
    TooLarge,
    Truncated,
    BadMagic,
    Version(u8),
    Corrupt,
    NoRandom,
    PinName(String),
    PinsFull,
    /// Readable by group or others, or owned by another user (as OpenSSH refuses).
    Unprotected(String),
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Io(e) => write!(f, "{e}"),
            StateError::TooLarge => write!(
                f,
                "larger than {MAX_STATE_FILE_BYTES} bytes, not a jailbird state file"
            ),
            StateError::Truncated => write!(f, "truncated (shorter than its header)"),
            StateError::BadMagic => write!(f, "not a jailbird state file (bad magic)"),
            StateError::Version(v) => write!(
                f,
                "format version {v} is not supported by this jailbird (it reads versions {FORMAT_VERSION_V1} and {FORMAT_VERSION})"
            ),
            StateError::Corrupt => write!(f, "corrupt (checksum or encoding does not match)"),
            StateError::NoRandom => write!(f, "the system random source failed"),
            StateError::PinName(n) => write!(
                f,
                "jail name {n:?} is longer than {MAX_PIN_NAME_BYTES} bytes"
            ),
            StateError::PinsFull => write!(f, "already holds {MAX_PINNED_HOSTS} pinned jail keys"),
            StateError::Unprotected(why) => write!(f, "UNPROTECTED PRIVATE KEY FILE: {why}"),
        }
    }
}

/// An error about the state file at `path`, as one line for an operator.
#[derive(Debug)]
pub struct FileError {
    pub path: PathBuf,
    pub action: &'static str,
    pub error: StateError,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "state file {}: {}: {}",
            self.path.display(),
            self.action,
            self.error
        )
    }
}

impl std::error::Error for FileError {}

/// Encodes `state` to `w`: header, postcard body, CRC.
pub fn encode<W: embedded_io::Write>(state: &State, w: &mut W) -> Result<(), StateError>
where
    W::Error: Into<std::io::Error>,
{
    let mut buf = [0u8; MAX_STATE_FILE_BYTES];
    buf[..MAGIC.len()].copy_from_slice(&MAGIC);
    let room = MAX_STATE_FILE_BYTES - CRC_BYTES;
    let body = postcard::to_slice(state, &mut buf[HEADER_BYTES..room])
        .map_err(|_| StateError::TooLarge)?
        .len();
    // One layout for both versions: a version 1 body is a version 2 body
    // without its last byte, the `None` of the absent enrolment.
    let (version, body) = match state.enrolment {
        Some(_) => (FORMAT_VERSION, body),
        None => (FORMAT_VERSION_V1, body - 1),
    };
    buf[MAGIC.len()] = version;
    let end = HEADER_BYTES + body;
    let crc = CRC.checksum(&buf[HEADER_BYTES..end]);
    buf[end..end + CRC_BYTES].copy_from_slice(&crc.to_le_bytes());
    let len = end + CRC_BYTES;
    w.write_all(&buf[..len])
        .map_err(|e| StateError::Io(e.into()))?;
    w.flush().map_err(|e| StateError::Io(e.into()))
}

/// Decodes a state from `r`, reading at most [`MAX_STATE_FILE_BYTES`] into a fixed buffer.
pub fn decode<R: embedded_io::Read>(r: &mut R) -> Result<State, StateError>
where
    R::Error: Into<std::io::Error>,
{
    let mut buf = [0u8; MAX_STATE_FILE_BYTES + 1];
    let mut len = 0;
    loop {
        let n = r
            .read(&mut buf[len..])
            .map_err(|e| StateError::Io(e.into()))?;
        if n == 0 {
            break;
        }
        len += n;
        if len > MAX_STATE_FILE_BYTES {
            return Err(StateError::TooLarge);
        }
    }
    decode_bytes(&buf[..len])
}

/// Decodes a state from a complete byte image.
pub fn decode_bytes(bytes: &[u8]) -> Result<State, StateError> {
    if bytes.len() > MAX_STATE_FILE_BYTES {
        return Err(StateError::TooLarge);
    }
    if bytes.len() < HEADER_BYTES {
        return Err(StateError::Truncated);
    }
    if bytes[..MAGIC.len()] != MAGIC {
        return Err(StateError::BadMagic);
    }
    let version = bytes[MAGIC.len()];
    if version != FORMAT_VERSION_V1 && version != FORMAT_VERSION {
        return Err(StateError::Version(version));
    }
    let Some(split) = bytes
        .len()
        .checked_sub(CRC_BYTES)
        .filter(|&n| n >= HEADER_BYTES)
    else {
        return Err(StateError::Corrupt);
    };
    let (body, crc) = (&bytes[HEADER_BYTES..split], &bytes[split..]);
    if CRC.checksum(body).to_le_bytes() != crc {
        return Err(StateError::Corrupt);
    }
    // A version 1 body is read as version 2 with the enrolment's `None` added.
    let mut v1 = [0u8; MAX_STATE_FILE_BYTES];
    let body = if version == FORMAT_VERSION_V1 {
        v1[..body.len()].copy_from_slice(body);
        &v1[..=body.len()]
    } else {
        body
    };
    match postcard::take_from_bytes::<State>(body) {
        // Every byte used, and the version says whether there is an enrolment.
        Ok((s, [])) if s.enrolment.is_some() == (version == FORMAT_VERSION) => Ok(s),
        _ => Err(StateError::Corrupt),
    }
}

/// `embedded_io` view of a `std::io` reader or writer.
pub struct StdIo<T>(pub T);

impl<T> embedded_io::ErrorType for StdIo<T> {
    type Error = std::io::Error;
}

impl<T: std::io::Read> embedded_io::Read for StdIo<T> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        loop {
            match self.0.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }
}

impl<T: std::io::Write> embedded_io::Write for StdIo<T> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}

/// Loads the state at `path`. `Ok(None)` when the file does not exist.
pub fn load(path: &Path) -> Result<Option<State>, FileError> {
    let err = |error| FileError {
        path: path.into(),
        action: "cannot read",
        error,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(err(StateError::Io(e))),
    };
    check_protected(&file).map_err(err)?;
    decode(&mut StdIo(file)).map(Some).map_err(err)
}

/// Refuses a private key file that others could read or that belongs to
/// another user (root's is accepted), as OpenSSH does. Checks the open file,
/// so a path swapped after the check is not the one read.
pub fn check_protected(file: &std::fs::File) -> Result<(), StateError> {
    use std::os::unix::fs::MetadataExt;
    let m = file.metadata().map_err(StateError::Io)?;
    let mode = m.mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(StateError::Unprotected(format!(
            "mode {mode:04o} lets group or others read it; chmod 600 it"
        )));
    }
    // Root may use a service account's key (`jailbird key` on a device whose
    // service runs as `jailbird`); a rewrite keeps the file's owner (write_state).
    if let Some(euid) = effective_uid()
        && euid != 0
        && m.uid() != euid
        && m.uid() != 0
    {
        return Err(StateError::Unprotected(format!(
            "owned by uid {}, not by this user (uid {euid})",
            m.uid()
        )));
    }
    Ok(())
}

/// The effective uid, from /proc (no unsafe call); `None` without /proc.
pub fn effective_uid() -> Option<u32> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Pins `jail`'s host key into the state file shared by every agent using
/// `path`, keeping the other agents' pins and replacing this jail's (see
/// [`update`]). Returns the state now on disk.
pub fn save_pin(path: &Path, jail: &str, sha256: [u8; 32]) -> Result<State, FileError> {
    update(path, "cannot pin", &mut |state| {
        state.pins.retain(|p| p.jail.as_str() != jail);
        state.add_pin(jail, sha256)
    })
}

/// Stores the enrolment an accepted claim answer gave (see [`update`]);
/// the file becomes format version 2. Returns the state now on disk.
pub fn save_enrolment(path: &Path, enrolment: &Enrolment) -> Result<State, FileError> {
    update(path, "cannot store the enrolment", &mut |state| {
        state.enrolment = Some(enrolment.clone());
        Ok(())
    })
}

/// Changes the state file under an exclusive lock on `path.lock`: re-reads
/// it (other agents may share it), applies `change`, and writes the result
/// durably (nothing changed is trusted before this returns). Without a file
/// yet (an `--identity-file` agent), one is made.
fn update(
    path: &Path,
    action: &'static str,
    change: &mut dyn FnMut(&mut State) -> Result<(), StateError>,
) -> Result<State, FileError> {
    let err = |action, error| FileError {
        path: path.into(),
        action,
        error,
    };
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&lock_path)
        .map_err(|e| err("cannot lock", StateError::Io(e)))?;
    // Root's lock file is the state file's owner's too, or the service
    // could not lock (and pin) after root did.
    keep_owner(path, &lock).map_err(|e| err("cannot lock", e))?;
    lock.lock()
        .map_err(|e| err("cannot lock", StateError::Io(e)))?;
    let (mut state, replace) = match load(path)? {
        Some(s) => (s, true),
        None => (
            State::generate().map_err(|e| err("cannot create", e))?,
            false,
        ),
    };
    change(&mut state).map_err(|e| err(action, e))?;
    write_atomic(path, &state, replace)?;
    drop(lock);
    Ok(state)
}

/// Loads the state at `path`, creating a fresh identity if the file is absent.
/// Returns the state and whether it was created now.
pub fn load_or_create(path: &Path) -> Result<(State, bool), FileError> {
    if let Some(state) = load(path)? {
        return Ok((state, false));
    }
    let state = State::generate().map_err(|error| FileError {
        path: path.into(),
        action: "cannot create",
        error,
    })?;
    match write_atomic(path, &state, false) {
        Ok(()) => Ok((state, true)),
        // Another process created it between our look and our link: use theirs.
        Err(e) if matches!(&e.error, StateError::Io(io) if io.kind() == std::io::ErrorKind::AlreadyExists) => {
            load(path)?.map(|s| (s, false)).ok_or(e)
        }
        Err(e) => Err(e),
    }
}

/// Writes `state` to `path` atomically with mode 0600. With `replace` false the
/// file must not exist yet (it is linked into place, never clobbered).
pub fn write_atomic(path: &Path, state: &State, replace: bool) -> Result<(), FileError> {
    let err = |error| FileError {
        path: path.into(),
        action: "cannot write",
        error,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| err(StateError::Io(std::io::ErrorKind::InvalidInput.into())))?;
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".tmp");
    let mut tmp_name = prefix.clone();
    tmp_name.push(std::process::id().to_string());
    let tmp = dir.join(tmp_name);
    sweep_stale_temps(&dir, &prefix);

    let result = (|| -> Result<(), StateError> {
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(StateError::Io)?;
        encode(state, &mut StdIo(&mut file))?;
        if replace {
            keep_owner(path, &file)?;
        }
        file.flush().map_err(StateError::Io)?;
        file.sync_all().map_err(StateError::Io)?;
        drop(file);
        if replace {
            std::fs::rename(&tmp, path).map_err(StateError::Io)?;
        } else {
            std::fs::hard_link(&tmp, path).map_err(StateError::Io)?;
            std::fs::remove_file(&tmp).map_err(StateError::Io)?;
        }
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(StateError::Io)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// A replacement written by root keeps the owner of the file it replaces (a
/// pin saved by `jailbird run` as root must not take the service's key away
/// from the service's user).
fn keep_owner(path: &Path, tmp: &std::fs::File) -> Result<(), StateError> {
    use std::os::unix::fs::MetadataExt;
    if effective_uid() != Some(0) {
        return Ok(());
    }
    // Not through a symlink: only a regular file's owner is kept.
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_file() && (m.uid() != 0 || m.gid() != 0) => {
            std::os::unix::fs::fchown(tmp, Some(m.uid()), Some(m.gid())).map_err(StateError::Io)
        }
        _ => Ok(()),
    }
}

/// Removes temp files (`.NAME.tmpPID`) left by writers that died mid-write
/// (power cut, SIGKILL): they hold key material and would pile up. A temp file
/// of a process that is still alive is left alone.
fn sweep_stale_temps(dir: &Path, prefix: &std::ffi::OsStr) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let prefix = prefix.as_encoded_bytes();
    for entry in entries.flatten().take(crate::limits::MAX_DIR_SCAN_ENTRIES) {
        let name = entry.file_name();
        let Some(pid) = name.as_encoded_bytes().strip_prefix(prefix) else {
            continue;
        };
        let alive = std::str::from_utf8(pid)
            .ok()
            .and_then(|p| p.parse::<u32>().ok())
            .is_some_and(|p| Path::new(&format!("/proc/{p}")).exists());
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// `SHA256:<base64>` fingerprint, as OpenSSH prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// A short stable device id: the first 16 hex digits of the SHA-256 of the
/// public key's wire encoding (what `%i` expands to in a socket path).
pub fn device_id(key: &PublicKey) -> String {
    let blob = key.to_bytes().unwrap_or_default();
    let d = ring::digest::digest(&ring::digest::SHA256, &blob);
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// One OpenSSH public key line: `TYPE BASE64 COMMENT`.
pub fn public_line(key: &PublicKey, comment: &str) -> String {
    let mut key = key.clone();
    key.set_comment("");
    let base = key.to_openssh().unwrap_or_default();
    if comment.is_empty() {
        base
    } else {
        format!("{} {comment}", base.trim_end())
    }
}

/// This device's hostname (for key comments and `%h`), without any unsafe call.
pub fn hostname() -> String {
    for p in ["/proc/sys/kernel/hostname", "/etc/hostname"] {
        if let Ok(s) = std::fs::read_to_string(p) {
            let s = s.trim();
            // Only a name that is safe in a key comment and a socket path
            // (`%h`): a hostile or broken hostname falls back to "device".
            if crate::spec::valid_user(s) && s.len() <= crate::spec::MAX_HOST_BYTES {
                return s.to_string();
            }
        }
    }
    "device".to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        let mut s = State {
            seed: [7; 32],
            pins: heapless::Vec::new(),
            enrolment: None,
        };
        s.add_pin("jail.example:8022", [9; 32]).unwrap();
        s
    }

    fn encoded(s: &State) -> Vec<u8> {
        let mut out = Vec::new();
        encode(s, &mut StdIo(&mut out)).unwrap();
        out
    }

    #[test]
    fn round_trip_through_embedded_io() {
        let s = sample();
        let bytes = encoded(&s);
        assert!(bytes.len() < 1024, "state file is {} bytes", bytes.len());
        assert_eq!(&bytes[..4], b"JBRD");
        assert_eq!(decode(&mut StdIo(&bytes[..])).unwrap(), s);
    }

    #[test]
    fn full_state_fits_the_cap() {
        let mut s = State {
            seed: [1; 32],
            pins: heapless::Vec::new(),
            enrolment: Some(largest_enrolment()),
        };
        let long = "x".repeat(MAX_PIN_NAME_BYTES);
        for _ in 0..MAX_PINNED_HOSTS {
            s.add_pin(&long, [0xff; 32]).unwrap();
        }
        assert!(matches!(
            s.add_pin("one-more", [0; 32]),
            Err(StateError::PinsFull)
        ));
        assert_eq!(decode_bytes(&encoded(&s)).unwrap(), s);
    }

    fn text<const N: usize>(len: usize) -> heapless::String<N> {
        let mut t = heapless::String::new();
        t.push_str(&"h".repeat(len)).unwrap();
        t
    }

    /// An enrolment with every field at its bound.
    fn largest_enrolment() -> Enrolment {
        let mut jails = heapless::Vec::new();
        for i in 0..MAX_ENROLLED_JAILS {
            jails
                .push(EnrolledJail {
                    host: text(MAX_HOST_BYTES),
                    port: 65535,
                    key_sha256: [i as u8; 32],
                })
                .unwrap();
        }
        Enrolment {
            device: text(MAX_DEVICE_ID_BYTES),
            port: 65535,
            user: text(MAX_USER_BYTES),
            target_host: text(MAX_HOST_BYTES),
            target_port: 65535,
            jails,
        }
    }

    #[test]
    fn a_state_without_enrolment_is_written_as_version_1_and_with_one_as_2() {
        let mut s = sample();
        assert_eq!(encoded(&s)[4], 1);
        s.enrolment = Some(largest_enrolment());
        let bytes = encoded(&s);
        assert_eq!(bytes[4], 2);
        assert_eq!(decode_bytes(&bytes).unwrap(), s);
        assert_eq!(s.enrolment.as_ref().unwrap().problem(), None);
    }

    #[test]
    fn version_1_files_written_by_the_previous_agent_still_load() {
        // Made by the agent before format version 2 (`jailbird key`), and the
        // fuzz seed it wrote with four pins; byte for byte.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/");
        let bytes = std::fs::read(format!("{dir}state-v1")).unwrap();
        let s = decode_bytes(&bytes).unwrap();
        assert_eq!(s.enrolment, None);
        let want = std::fs::read_to_string(format!("{dir}state-v1.pub")).unwrap();
        assert_eq!(public_line(s.private_key().public_key(), ""), want.trim());
        // Written again unchanged: still version 1, the same bytes.
        assert_eq!(encoded(&s), bytes);
        let bytes = std::fs::read(format!("{dir}state-v1-four-pins")).unwrap();
        let s = decode_bytes(&bytes).unwrap();
        assert_eq!((s.pins.len(), s.enrolment.is_none()), (4, true));
        assert!(s.pin_for("[::1]:2222").is_some(), "{:?}", s.pins);
    }

    #[test]
    fn a_version_2_file_without_an_enrolment_is_refused() {
        let bytes = encoded(&sample());
        let body = &bytes[HEADER_BYTES..bytes.len() - 4];
        let mut v2 = body.to_vec();
        v2.push(0); // Option::None
        let mut image = b"JBRD\x02".to_vec();
        image.extend_from_slice(&v2);
        image.extend_from_slice(&CRC.checksum(&v2).to_le_bytes());
        assert!(matches!(decode_bytes(&image), Err(StateError::Corrupt)));
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let mut s = sample();
        s.enrolment = Some(largest_enrolment());
        let bytes = encoded(&sample());
        let enrolled = encoded(&s);
        for bytes in [bytes, enrolled] {
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut b = bytes.clone();
                    b[i] ^= 1 << bit;
                    assert!(
                        decode_bytes(&b).is_err(),
                        "flip of byte {i} bit {bit} decoded"
                    );
                }
            }
        }
    }

    #[test]
    fn truncations_are_rejected() {
        let bytes = encoded(&sample());
        for n in 0..bytes.len() {
            assert!(
                decode_bytes(&bytes[..n]).is_err(),
                "prefix of {n} bytes decoded"
            );
        }
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            decode_bytes(b"NOPE\x01abc"),
            Err(StateError::BadMagic)
        ));
        assert!(matches!(
            decode_bytes(b"JBRD\x09abc"),
            Err(StateError::Version(9))
        ));
        assert!(matches!(
            decode_bytes(&[0u8; MAX_STATE_FILE_BYTES + 1]),
            Err(StateError::TooLarge)
        ));
    }

    #[test]
    fn debug_does_not_print_the_seed() {
        let s = sample();
        let shown = format!("{s:?}");
        assert!(shown.contains("SHA256:"));
        assert!(!shown.contains("7, 7, 7"));
    }

    #[test]
    fn key_is_derived_from_the_seed() {
        let a = sample().private_key();
        let b = sample().private_key();
        assert_eq!(a.public_key(), b.public_key());
        assert!(public_line(a.public_key(), "c").starts_with("ssh-ed25519 AAAA"));
    }
}
