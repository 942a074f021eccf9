//! The append-only audit trail: who (from the system), what, which device, when, from where.

use super::conn::{Conn, TxError, Value};
use super::row::Rd;
use super::*;
use crate::error::Error;
use crate::types::{DeviceId, Name};
use serde::Serialize;

thread_local! {
    /// Who acts for this thread's changes when not the process's user: an
    /// API request, run on one thread (see [`acting_as`]).
    static ACTING: std::cell::RefCell<Option<(String, String)>> = const { std::cell::RefCell::new(None) };
}

/// Runs `body` with every audit row it writes on this thread naming `who`
/// acting from `origin` (the HTTP API: the token's name and the client's
/// address) instead of the process's user and host.
pub fn acting_as<T>(who: &str, origin: &str, body: impl FnOnce() -> T) -> T {
    struct Reset(Option<(String, String)>);
    impl Drop for Reset {
        fn drop(&mut self) {
            let prev = self.0.take();
            ACTING.with(|a| *a.borrow_mut() = prev);
        }
    }
    let prev = ACTING.with(|a| {
        a.borrow_mut()
            .replace((who.to_string(), origin.to_string()))
    });
    let _reset = Reset(prev);
    body()
}

/// Who is making a change, and from where (for the audit trail).
pub fn actor() -> (String, String) {
    if let Some(a) = ACTING.with(|a| a.borrow().clone()) {
        return a;
    }
    // Looked up once per process: an import writes 10,000 audit rows, and the
    // passwd lookup may run `getent`.
    static ACTOR: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    ACTOR.get_or_init(look_up_actor).clone()
}

/// Who is acting, from the system, never from the environment: the name of
/// the real uid (`uid:N` without a passwd entry). `SUDO_USER` is only a
/// claim (anyone can set it), so it is kept beside the name, marked so.
pub(super) fn look_up_actor() -> (String, String) {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let name = crate::store::conn::account(&uid.to_string())
        .filter(|a| a.uid == uid)
        .map_or_else(|| format!("uid:{uid}"), |a| a.name);
    let claim = std::env::var("SUDO_USER")
        .ok()
        .filter(|s| !s.is_empty())
        .map(|s| crate::types::one_line(&s.chars().take(64).collect::<String>()));
    let who = match claim {
        Some(c) if uid == 0 => format!("{name} (sudo from {c}, claimed)"),
        _ => name,
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let from = match std::env::var("SSH_CLIENT") {
        Ok(c) => format!(
            "{host} (ssh from {})",
            c.split_whitespace().next().unwrap_or("?")
        ),
        Err(_) => host,
    };
    (who, from)
}

/// Appends one audit row (inside the caller's transaction).
pub fn audit(
    c: &mut Conn,
    action: &str,
    device: Option<&str>,
    reason: Option<&str>,
    detail: Option<&str>,
) -> Result<(), TxError> {
    audit_op(c, action, device, None, reason, detail)
}

/// Appends one audit row naming an operator (inside the caller's transaction).
pub fn audit_op(
    c: &mut Conn,
    action: &str,
    device: Option<&str>,
    operator: Option<&str>,
    reason: Option<&str>,
    detail: Option<&str>,
) -> Result<(), TxError> {
    let (who, from) = actor();
    // On PostgreSQL the role the server authenticated is recorded too.
    let actor = c.dialect_actor("$5");
    c.exec(
        &format!(
            "INSERT INTO audit (at, action, device, operator, actor, origin, reason, detail)
             VALUES ($1, $2, $3, $4, {actor}, $6, $7, $8)"
        ),
        &[
            now().into(),
            action.into(),
            Value::opt_text(device),
            Value::opt_text(operator),
            who.into(),
            from.into(),
            Value::opt_text(reason),
            Value::opt_text(detail),
        ],
    )?;
    Ok(())
}

/// One audit entry.
#[derive(Clone, Debug, Serialize)]
pub struct AuditEntry {
    pub at: String,
    pub action: String,
    pub device: Option<String>,
    pub operator: Option<String>,
    pub reason: Option<String>,
    pub actor: String,
    pub origin: String,
    pub detail: Option<String>,
}

/// Audit entries, oldest first, optionally for one device or operator and
/// from a time on (Unix seconds).
pub fn audit_entries(
    c: &mut Conn,
    device: Option<&DeviceId>,
    operator: Option<&Name>,
    since: Option<i64>,
) -> Result<Vec<AuditEntry>, Error> {
    let rows = c.query(
        "SELECT seq, at, action, device, operator, reason, actor, origin, detail FROM audit
         WHERE ($1 = '' OR device = $1) AND ($2 = '' OR operator = $2) AND at >= $3
         ORDER BY seq",
        &[
            device.map_or("", DeviceId::as_str).into(),
            operator.map_or("", Name::as_str).into(),
            since.unwrap_or(i64::MIN).into(),
        ],
    )?;
    // The trail keeps what was written, even text warden would refuse now:
    // every field is bounded here and printed through types::one_line.
    rows.iter()
        .map(|r| {
            let rd = Rd::new("audit", "seq", r);
            let text = |col| Ok::<_, Error>(rd.opt_free_text(col)?.unwrap_or_default());
            Ok(AuditEntry {
                at: rfc3339(rd.int("at")?),
                action: text("action")?,
                device: rd.opt_free_text("device")?,
                operator: rd.opt_free_text("operator")?,
                reason: rd.opt_free_text("reason")?,
                actor: text("actor")?,
                origin: text("origin")?,
                detail: rd.opt_free_text("detail")?,
            })
        })
        .collect()
}

/// Records an operator session `watch` saw, once: a row with the same
/// `detail` (which names the session's process and its start) is the same
/// session. Returns whether it wrote the row.
pub fn audit_operator_session(
    c: &mut Conn,
    device: Option<&str>,
    operator: Option<&str>,
    detail: &str,
) -> Result<bool, Error> {
    c.transaction(|c| {
        let seen = c.query(
            "SELECT count(*) AS n FROM audit WHERE action = 'operator-session' AND detail = $1",
            &[detail.into()],
        )?;
        let n = seen
            .first()
            .and_then(|r| r.get("n"))
            .and_then(Value::int)
            .unwrap_or(0);
        if n == 0 {
            audit_op(c, "operator-session", device, operator, None, Some(detail))?;
        }
        Ok(n == 0)
    })
}
