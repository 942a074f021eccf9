//! `warden hook add | ls | rm`: webhook receivers (admin host). A hook's
//! secret is read from a file, stored for signing, and never printed.

use super::Ctx;
use crate::cli::HookCmd;
use crate::error::Error;
use crate::render::{json, table};
use crate::store::hook::{self, HookUrl, MAX_SECRET_BYTES, MIN_SECRET_BYTES};
use std::path::Path;

pub fn run(ctx: &Ctx, cmd: &HookCmd) -> Result<String, Error> {
    match cmd {
        HookCmd::Add {
            url,
            events,
            secret_file,
        } => {
            let url = HookUrl::parse("URL", url)?;
            let events = hook::parse_events("--events", events)?;
            let secret = read_secret(secret_file)?;
            let id = ctx.admin(|c| hook::hook_add(c, &url, &events, &secret))?;
            Ok(format!(
                "hook {id} {} events {}\n",
                url.as_str(),
                events.join(",")
            ))
        }
        HookCmd::Ls => {
            let hs = ctx.admin(hook::hooks)?;
            if ctx.json {
                return Ok(json(&hs));
            }
            let rows: Vec<Vec<String>> = hs
                .iter()
                .map(|h| {
                    vec![
                        h.id.to_string(),
                        h.url.as_str().to_string(),
                        h.events.join(","),
                        h.pending.to_string(),
                        h.created.clone(),
                    ]
                })
                .collect();
            Ok(table(&["ID", "URL", "EVENTS", "PENDING", "CREATED"], &rows))
        }
        HookCmd::Rm { id } => {
            ctx.admin(|c| hook::hook_rm(c, *id))?;
            Ok(format!("hook {id} removed\n"))
        }
    }
}

/// The secret: the file's bytes less one final newline; printable ASCII,
/// [`MIN_SECRET_BYTES`] to [`MAX_SECRET_BYTES`] long.
fn read_secret(path: &Path) -> Result<String, Error> {
    let bad = |why: String| Error::invalid(format!("--secret-file {}: {why}", path.display()));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > MAX_SECRET_BYTES as u64 + 2 {
        return Err(bad(format!("longer than {MAX_SECRET_BYTES} bytes")));
    }
    let s = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let s = s.strip_suffix('\n').unwrap_or(&s);
    let s = s.strip_suffix('\r').unwrap_or(s);
    if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&s.len()) {
        return Err(bad(format!(
            "want {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes (e.g. head -c 32 /dev/urandom | base64)"
        )));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(bad("want printable ASCII without spaces".into()));
    }
    Ok(s.to_string())
}
