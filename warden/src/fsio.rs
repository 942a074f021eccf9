//! Files warden writes: created new with a mode, or replaced atomically
//! (a temporary beside it, fsync, rename). The one copy of each.

use crate::error::Error;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// `p` with `suffix` appended to its file name.
pub fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Creates `path` with `mode`; fails if it exists (a link included).
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let fail = |e: std::io::Error| Error::runtime(format!("{}: {e}", path.display()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(fail)?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(fail)
}

/// Replaces `path` atomically with `bytes`, the new file made with `mode`.
pub fn replace(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let tmp = with_suffix(path, &format!(".{}.warden-tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    write_new(&tmp, bytes, mode)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::runtime(format!("{}: {e}", path.display()))
    })
}
