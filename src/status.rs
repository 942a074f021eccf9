//! The status file: where an operator or a script finds the tunnel's state,
//! notably the port the jail allocated for `-R 0`. Only the supervisor writes
//! it, for every outcome: `state=up` when a tunnel comes up, `state=down` with
//! the reason after every failed attempt, removed at exit. It lives on tmpfs
//! (`$RUNTIME_DIRECTORY`, or where `--status-file` says; never /tmp by
//! default) and is replaced atomically through a temp file with a random name
//! created exclusively (O_CREAT|O_EXCL does not follow a symlink), so a link
//! planted at either name cannot redirect the write.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

/// What a tunnel that came up reports.
pub struct Up<'a> {
    pub jail: &'a str,
    pub listen: &'a str,
    pub port: u32,
    pub target: &'a str,
    /// The `--proxy` the jail is reached through (never its credentials).
    pub proxy: Option<String>,
}

/// Writes `state=up` with the tunnel's details (one `key=value` per line).
pub fn up(path: Option<&Path>, up: &Up) {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut text = format!(
        "state=up\njail={}\nlisten={}\nport={}\ntarget={}\nsince={since}\npid={}\n",
        up.jail,
        up.listen,
        up.port,
        up.target,
        std::process::id()
    );
    if let Some(p) = &up.proxy {
        text += &format!("proxy={p}\n");
    }
    write(path, &text);
}

/// Writes `state=down` with the reason (the tunnel is being rebuilt).
pub fn down(path: Option<&Path>, reason: &str) {
    down_with(path, reason, "", "");
}

/// [`down`] with one more `KEY=VALUE` line (`key` given with its `=`): a
/// refused claim adds `claim=refused:WORD` (never the token).
pub fn down_with(path: Option<&Path>, reason: &str, key: &str, value: &str) {
    let extra = if key.is_empty() {
        String::new()
    } else {
        format!("{key}{value}\n")
    };
    write(
        path,
        &format!(
            "state=down\nreason={}\n{extra}pid={}\n",
            reason.replace(['\n', '\r'], " "),
            std::process::id()
        ),
    );
}

/// Removes the file (clean shutdown).
pub fn remove(path: Option<&Path>) {
    if let Some(p) = path {
        let _ = std::fs::remove_file(p);
    }
}

fn write(path: Option<&Path>, text: &str) {
    let Some(path) = path else { return };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{:016x}.tmp", random_u64()));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        log::warn!("cannot write status file {}: {e}", path.display());
    }
}

fn random_u64() -> u64 {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 8];
    // Without randomness the name is still exclusive (O_EXCL): a planted file
    // makes the write fail, never follow.
    let _ = ring::rand::SystemRandom::new().fill(&mut b);
    u64::from_ne_bytes(b)
}
