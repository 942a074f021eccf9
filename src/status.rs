//! The status file: where an operator or a script finds the tunnel's state,
//! notably the port the jail allocated for `-R 0`. It lives on tmpfs
//! (`$RUNTIME_DIRECTORY` or `/tmp`), is replaced atomically, and is removed on
//! shutdown.

use std::io::Write as _;
use std::path::Path;

/// Writes `state=up` with the tunnel's details (one `key=value` per line).
pub fn up(path: &Path, jail: &str, listen: &str, port: u32, target: &str) {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let text = format!(
        "state=up\njail={jail}\nlisten={listen}\nport={port}\ntarget={target}\nsince={since}\npid={}\n",
        std::process::id()
    );
    write(path, &text);
}

/// Writes `state=down` with the reason (the tunnel is being rebuilt).
pub fn down(path: &Path, reason: &str) {
    write(
        path,
        &format!(
            "state=down\nreason={}\npid={}\n",
            reason.replace('\n', " "),
            std::process::id()
        ),
    );
}

/// Removes the file (clean shutdown).
pub fn remove(path: &Path) {
    let _ = std::fs::remove_file(path);
}

fn write(path: &Path, text: &str) {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        log::warn!("cannot write status file {}: {e}", path.display());
    }
}
