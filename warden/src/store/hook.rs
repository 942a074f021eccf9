//! Webhooks: the configured receivers (`hooks`) and the outbox of events
//! waiting for them. An event is written in the transaction of the change
//! that causes it (revoke, grant, a presence change), one outbox row per
//! hook that wants it, so nothing is lost across a receiver's outage or a
//! restart of `warden serve`, which delivers them (serve/hooks.rs).

use super::conn::{Conn, TxError, Value};
use super::row::Rd;
use super::*;
use crate::error::Error;
use crate::types::{DeviceId, one_line, quote};
use serde::Serialize;

/// The events a hook can ask for.
pub const HOOK_EVENTS: &[&str] = &[
    "device.online",
    "device.offline",
    "device.revoked",
    "grant.created",
];
/// The longest receiver URL.
pub const MAX_HOOK_URL_CHARS: usize = 2048;
/// A secret's length bounds (bytes, after a final newline is dropped).
pub const MIN_SECRET_BYTES: usize = 16;
pub const MAX_SECRET_BYTES: usize = 1024;
/// Hooks at most (each event is one outbox row per hook).
pub const MAX_HOOKS: i64 = 64;
/// The longest stored delivery error.
pub const MAX_ERROR_CHARS: usize = 200;

/// A receiver's URL, checked: http:// or https://, a host, no credentials.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct HookUrl(String);

impl HookUrl {
    pub fn parse(what: &str, s: &str) -> Result<Self, Error> {
        let bad = |why: &str| Error::invalid(format!("{what} {}: {why}", quote(s)));
        if s.len() > MAX_HOOK_URL_CHARS {
            return Err(bad("too long"));
        }
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("holds a space or control character"));
        }
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or_else(|| bad("want http://HOST[:PORT]/PATH or https://..."))?;
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() {
            return Err(bad("no host"));
        }
        if authority.contains('@') {
            return Err(bad("credentials in the URL: use --secret-file for signing"));
        }
        let uri: hyper::Uri = s.parse().map_err(|_| bad("not a URL"))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err(bad("no host"));
        }
        Ok(HookUrl(s.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The events a hook wants: a non-empty subset of [`HOOK_EVENTS`].
pub fn parse_events(what: &str, s: &str) -> Result<Vec<&'static str>, Error> {
    let mut out = Vec::new();
    for e in s.split(',').map(str::trim) {
        let known = HOOK_EVENTS.iter().find(|k| **k == e).ok_or_else(|| {
            Error::invalid(format!(
                "{what}: unknown event {} (known: {})",
                quote(e),
                HOOK_EVENTS.join(", ")
            ))
        })?;
        if !out.contains(known) {
            out.push(*known);
        }
    }
    if out.is_empty() {
        return Err(Error::invalid(format!("{what}: no event")));
    }
    Ok(out)
}

/// A hook as listed (never its secret).
#[derive(Debug, Serialize)]
pub struct Hook {
    pub id: i64,
    pub url: HookUrl,
    pub events: Vec<&'static str>,
    pub created: String,
    /// Deliveries not yet acknowledged.
    pub pending: i64,
}

fn events_column(events: &[&str]) -> String {
    // Stored between commas so one LIKE finds a whole event name.
    format!(",{},", events.join(","))
}

pub fn hook_add(c: &mut Conn, url: &HookUrl, events: &[&str], secret: &str) -> Result<i64, Error> {
    c.transaction(|c| {
        let n = c.query("SELECT count(*) AS n FROM hooks", &[])?;
        let n = n
            .first()
            .map(|r| Rd::new("hooks", "n", r).int("n"))
            .transpose()?;
        if n.unwrap_or(0) >= MAX_HOOKS {
            return Err(Error::invalid(format!("at most {MAX_HOOKS} hooks")).into());
        }
        let rows = c.query(
            "INSERT INTO hooks (url, events, secret, created) VALUES ($1, $2, $3, $4) RETURNING id",
            &[
                url.as_str().into(),
                events_column(events).into(),
                secret.into(),
                now().into(),
            ],
        )?;
        let id = rows
            .first()
            .and_then(|r| r.get("id"))
            .and_then(Value::int)
            .ok_or_else(|| Error::runtime("the new hook has no id"))?;
        let detail = format!("hook {id} {} events {}", url.as_str(), events.join(","));
        audit(c, "hook-add", None, None, Some(&detail))?;
        Ok(id)
    })
}

pub fn hooks(c: &mut Conn) -> Result<Vec<Hook>, Error> {
    let rows = c.query(
        "SELECT h.id, h.url, h.events, h.created,
           (SELECT count(*) FROM outbox o WHERE o.hook = h.id AND o.delivered IS NULL) AS pending
         FROM hooks h ORDER BY h.id",
        &[],
    )?;
    rows.iter()
        .map(|r| {
            let rd = Rd::new("hooks", "id", r);
            let events = rd.text("events")?;
            Ok(Hook {
                id: rd.int("id")?,
                url: HookUrl::parse("url", rd.text("url")?).map_err(|e| rd.bad("url", e))?,
                events: parse_events("events", events.trim_matches(','))
                    .map_err(|e| rd.bad("events", e))?,
                created: rfc3339(rd.int("created")?),
                pending: rd.int("pending")?,
            })
        })
        .collect()
}

pub fn hook_rm(c: &mut Conn, id: i64) -> Result<(), Error> {
    c.transaction(|c| {
        if c.exec("DELETE FROM hooks WHERE id = $1", &[id.into()])? == 0 {
            return Err(Error::NotFound(format!("no hook {id}")).into());
        }
        c.exec("DELETE FROM outbox WHERE hook = $1", &[id.into()])?;
        audit(c, "hook-rm", None, None, Some(&format!("hook {id}")))?;
        Ok(())
    })
}

/// Inside the transaction of a change: queues `event` about `device` for
/// every hook that wants it (one statement; no hook, no row). `data` is the
/// event's own fields.
pub fn enqueue(
    c: &mut Conn,
    event: &'static str,
    device: &DeviceId,
    data: serde_json::Value,
) -> Result<(), TxError> {
    debug_assert!(HOOK_EVENTS.contains(&event));
    let at = now();
    c.exec(
        "INSERT INTO outbox (hook, event, device, at, body, attempts, next_at)
         SELECT id, $1, $2, $3, $4, 0, $5 FROM hooks WHERE events LIKE $6",
        &[
            event.into(),
            device.as_str().into(),
            at.into(),
            data.to_string().into(),
            (at * 1000).into(),
            format!("%,{event},%").into(),
        ],
    )?;
    Ok(())
}

/// An outbox row ready to go, with its hook's URL and secret.
#[derive(Debug, Clone)]
pub struct Due {
    pub seq: i64,
    pub hook: i64,
    pub url: HookUrl,
    pub secret: String,
    pub event: &'static str,
    pub attempts: i64,
    /// The JSON body sent (built from the row's checked fields).
    pub body: String,
}

/// At most `limit` deliveries due at `now_ms`, each the oldest unacknowledged
/// event of its (hook, device): a device's next event waits until the one
/// before it was acknowledged.
pub fn due(c: &mut Conn, now_ms: i64, limit: usize) -> Result<Vec<Due>, Error> {
    let rows = c.query(
        "SELECT o.seq, o.hook, o.event, o.device, o.at, o.body, o.attempts, h.url, h.secret
         FROM outbox o JOIN hooks h ON h.id = o.hook
         WHERE o.delivered IS NULL AND o.next_at <= $1
           AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.hook = o.hook AND p.device = o.device
                           AND p.delivered IS NULL AND p.seq < o.seq)
         ORDER BY o.seq LIMIT $2",
        &[
            now_ms.into(),
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
        ],
    )?;
    let mut out = Vec::new();
    for r in &rows {
        let rd = Rd::new("outbox", "seq", r);
        let seq = rd.int("seq")?;
        let event = rd.text("event")?;
        let event = *HOOK_EVENTS
            .iter()
            .find(|e| **e == event)
            .ok_or_else(|| rd.bad("event", "not a known event"))?;
        let device = rd.device_id("device")?;
        // The stored fields are parsed back and must be an object of strings.
        let data: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(rd.text("body")?).map_err(|e| rd.bad("body", e))?;
        if data.values().any(|v| !v.is_string()) {
            return Err(rd.bad("body", "a field that is not a string"));
        }
        let body = serde_json::json!({
            "id": seq,
            "event": event,
            "at": rfc3339(rd.int("at")?),
            "device": device.as_str(),
            "data": data,
        })
        .to_string();
        let secret = rd.text("secret")?.to_string();
        out.push(Due {
            seq,
            hook: rd.int("hook")?,
            url: HookUrl::parse("url", rd.text("url")?).map_err(|e| rd.bad("url", e))?,
            secret,
            event,
            attempts: rd.int("attempts")?,
            body,
        });
    }
    Ok(out)
}

/// A delivery acknowledged (2xx) at `at` (Unix seconds).
pub fn delivered(c: &mut Conn, seq: i64, at: i64) -> Result<(), Error> {
    c.exec(
        "UPDATE outbox SET delivered = $1, attempts = attempts + 1, last_error = NULL WHERE seq = $2",
        &[at.into(), seq.into()],
    )?;
    Ok(())
}

/// A hook's receiver acknowledged a delivery: its other events waiting out
/// a backoff are due now (the receiver is back; no need to wait for each
/// event's own next attempt).
pub fn receiver_back(c: &mut Conn, hook: i64, now_ms: i64) -> Result<(), Error> {
    c.exec(
        "UPDATE outbox SET next_at = $1 WHERE hook = $2 AND delivered IS NULL AND next_at > $1",
        &[now_ms.into(), hook.into()],
    )?;
    Ok(())
}

/// A delivery that failed: tried again at `next_ms` (Unix milliseconds).
pub fn failed(c: &mut Conn, seq: i64, next_ms: i64, why: &str) -> Result<(), Error> {
    let why: String = one_line(why).chars().take(MAX_ERROR_CHARS).collect();
    c.exec(
        "UPDATE outbox SET attempts = attempts + 1, next_at = $1, last_error = $2 WHERE seq = $3",
        &[next_ms.into(), why.into(), seq.into()],
    )?;
    Ok(())
}

/// Deletes deliveries acknowledged before `before` (Unix seconds); returns how many.
pub fn prune_delivered(c: &mut Conn, before: i64) -> Result<u64, Error> {
    Ok(c.exec(
        "DELETE FROM outbox WHERE delivered IS NOT NULL AND delivered < $1",
        &[before.into()],
    )?)
}
