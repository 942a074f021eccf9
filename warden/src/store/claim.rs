//! Claim tokens (`warden claim`, `warden claim-serve`): a device image
//! carrying one enrols itself through a jail of the token's pool. Like API
//! tokens, the text is shown once and only its SHA-256 is stored; a claim is
//! found by the hash of what a device presents.
//!
//! A claim is one transaction: the checks, the enrolment (the same code as
//! `enroll`: ports allocated under the pool's lock, uniqueness by the
//! database), the use spent (`UPDATE ... WHERE uses_left > 0`) and the
//! fingerprint remembered for a retried claim. A refused claim changes
//! neither devices nor claims: it appends an audit row and, for the rate
//! limit, a refusal row for its source.

use super::conn::{Conn, Row, TxError, Value};
use super::row::Rd;
use super::*;
use crate::error::Error;
use crate::types::{DeviceId, HostPort, Mac, MacPrefix, Name, PublicKey, quote};
use serde::Serialize;
use std::collections::BTreeMap;

/// What every claim token starts with (API tokens start `wdn_`).
pub const CLAIM_TOKEN_PREFIX: &str = "wdc_";
/// Random bytes in a claim token (hex-encoded after the prefix).
pub const CLAIM_TOKEN_RANDOM_BYTES: usize = 32;
/// Random bytes in a claim's public id (hex-encoded after `c-`).
pub const CLAIM_ID_RANDOM_BYTES: usize = 5;
/// Uses a claim starts with when `--uses` is not given.
pub const DEFAULT_CLAIM_USES: i64 = 1;
/// The most uses one claim token may have (a production batch).
pub const MAX_CLAIM_USES: i64 = 100_000;
/// How long a claim lasts when `--expires` is not given.
pub const DEFAULT_CLAIM_EXPIRES: &str = "1d";
/// The longest a claim may last (seconds): a shift, a batch, not forever.
pub const MAX_CLAIM_EXPIRY_SECS: u64 = 30 * 86_400;
/// Refusals one source address may collect within [`CLAIM_REFUSAL_WINDOW_SECS`]
/// before its claims are refused `rate-limited` unread.
pub const CLAIM_REFUSALS_PER_SOURCE: i64 = 20;
/// The window (seconds) refusals per source are counted over.
pub const CLAIM_REFUSAL_WINDOW_SECS: i64 = 600;

/// Why a claim was refused: the one word the wire format allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
    UsedUp,
    Revoked,
    WrongPool,
    MacPrefix,
    Malformed,
    Conflict,
    RateLimited,
    Unavailable,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Unknown => "unknown",
            Refusal::Expired => "expired",
            Refusal::UsedUp => "used-up",
            Refusal::Revoked => "revoked",
            Refusal::WrongPool => "wrong-pool",
            Refusal::MacPrefix => "mac-prefix",
            Refusal::Malformed => "malformed",
            Refusal::Conflict => "conflict",
            Refusal::RateLimited => "rate-limited",
            Refusal::Unavailable => "unavailable",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A claim as listed (never its token).
#[derive(Clone, Debug, Serialize)]
pub struct Claim {
    pub id: Name,
    pub pool: Name,
    pub uses_total: i64,
    pub uses_left: i64,
    pub expires: String,
    pub labels: BTreeMap<String, String>,
    pub mac_prefix: Option<String>,
    /// What devices claiming with it forward to (else the enrolment default).
    pub target: Option<HostPort>,
    pub created: String,
    pub revoked: Option<String>,
    #[serde(skip)]
    pub expires_at: i64,
    #[serde(skip)]
    pub revoked_at: Option<i64>,
    #[serde(skip)]
    pub prefix: Option<MacPrefix>,
}

impl Claim {
    /// Why the claim may not be spent at `at`, if it may not (revoked first,
    /// then expired, then used up).
    pub fn unusable(&self, at: i64) -> Option<Refusal> {
        if self.revoked_at.is_some() {
            Some(Refusal::Revoked)
        } else if self.expires_at <= at {
            Some(Refusal::Expired)
        } else if self.uses_left <= 0 {
            Some(Refusal::UsedUp)
        } else {
            None
        }
    }
}

const CLAIM_COLS: &str = "id, pool, uses_total, uses_left, expires, labels, mac_prefix, target, created, revoked FROM claims";

fn claim_from(r: &Row) -> Result<Claim, Error> {
    let rd = Rd::new("claims", "id", r);
    let uses_total = rd.int("uses_total")?;
    let uses_left = rd.int("uses_left")?;
    if !(1..=MAX_CLAIM_USES).contains(&uses_total) || !(0..=uses_total).contains(&uses_left) {
        return Err(rd.bad(
            "uses_left",
            format!("{uses_left} of {uses_total} is not a count of uses"),
        ));
    }
    let prefix = match rd.opt_text("mac_prefix")? {
        None => None,
        Some(t) => {
            let p = MacPrefix::parse(t).map_err(|e| rd.bad("mac_prefix", e))?;
            if p.as_str() != t {
                return Err(rd.bad("mac_prefix", format!("{} is not stored form", quote(t))));
            }
            Some(p)
        }
    };
    let expires_at = rd.int("expires")?;
    let revoked_at = rd.opt_int("revoked")?;
    Ok(Claim {
        id: rd.name("id")?,
        pool: rd.name("pool")?,
        uses_total,
        uses_left,
        expires: rfc3339(expires_at),
        labels: rd.labels("labels")?,
        mac_prefix: prefix.as_ref().map(|p| p.as_str().to_string()),
        target: match rd.opt_text("target")? {
            None => None,
            Some(_) => Some(rd.host_port("target", None)?),
        },
        created: rfc3339(rd.int("created")?),
        revoked: revoked_at.map(rfc3339),
        expires_at,
        revoked_at,
        prefix,
    })
}

fn random_hex(n: usize) -> Result<String, Error> {
    use ring::rand::SecureRandom;
    let mut buf = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::runtime("no randomness from the system for a claim token"))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// What `claim create` asks for.
pub struct NewClaim {
    pub pool: Name,
    pub uses: i64,
    pub expires: i64,
    pub labels: BTreeMap<String, String>,
    pub mac_prefix: Option<MacPrefix>,
    pub target: Option<HostPort>,
}

/// Creates a claim (one transaction with its audit entry); returns its
/// token, which exists nowhere else afterwards, and its public id.
pub fn claim_create(c: &mut Conn, n: &NewClaim) -> Result<(String, Name), Error> {
    if !(1..=MAX_CLAIM_USES).contains(&n.uses) {
        return Err(Error::invalid(format!(
            "--uses {}: want 1-{MAX_CLAIM_USES}",
            n.uses
        )));
    }
    let secret = format!(
        "{CLAIM_TOKEN_PREFIX}{}",
        random_hex(CLAIM_TOKEN_RANDOM_BYTES)?
    );
    let labels = serde_json::to_string(&n.labels).unwrap_or_default();
    let id = c.transaction(|c| {
        let id = Name::parse("claim", &format!("c-{}", random_hex(CLAIM_ID_RANDOM_BYTES)?))?;
        if pool_named(c, &n.pool)?.is_none() {
            return Err(Error::invalid(format!("unknown pool {}", n.pool)).into());
        }
        c.exec(
            "INSERT INTO claims (id, hash, pool, uses_total, uses_left, expires, labels, mac_prefix, target, created, revoked)
             VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, NULL)",
            &[
                id.as_str().into(),
                token_hash(&secret).into(),
                n.pool.as_str().into(),
                n.uses.into(),
                n.expires.into(),
                labels.clone().into(),
                Value::opt_text(n.mac_prefix.as_ref().map(MacPrefix::as_str)),
                Value::opt_text(n.target.as_ref().map(|t| t.to_string()).as_deref()),
                now().into(),
            ],
        )?;
        let detail = format!(
            "claim {id} pool {} uses {} until {}{}",
            n.pool,
            n.uses,
            rfc3339(n.expires),
            n.mac_prefix
                .as_ref()
                .map_or(String::new(), |p| format!(" mac-prefix {p}"))
        );
        audit(c, "claim-create", None, None, Some(&detail))?;
        Ok(id)
    })?;
    Ok((secret, id))
}

/// Every claim, newest first (revoked, expired and used-up ones too).
pub fn claims(c: &mut Conn) -> Result<Vec<Claim>, Error> {
    let rows = c.query(
        &format!("SELECT {CLAIM_COLS} ORDER BY created DESC, id"),
        &[],
    )?;
    rows.iter().map(claim_from).collect()
}

/// Revokes claim `id`: refused from its next use on. Idempotent.
pub fn claim_revoke(c: &mut Conn, id: &Name) -> Result<(), Error> {
    c.transaction(|c| {
        let n = c.exec(
            "UPDATE claims SET revoked = $1 WHERE id = $2 AND revoked IS NULL",
            &[now().into(), id.as_str().into()],
        )?;
        if n == 0 {
            if c.query("SELECT id FROM claims WHERE id = $1", &[id.as_str().into()])?
                .is_empty()
            {
                return Err(Error::NotFound(format!("unknown claim {id}")).into());
            }
            return Ok(());
        }
        audit(c, "claim-revoke", None, None, Some(&format!("claim {id}")))?;
        Ok(())
    })
}

/// A parsed claim request (cmd/claim.rs parses the wire text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRequest {
    pub token: String,
    pub mac: Mac,
    pub id: Option<DeviceId>,
    pub host_keys: Vec<PublicKey>,
}

impl ClaimRequest {
    /// The device id asked for, else the MAC's 12 hex digits.
    pub fn device_id(&self) -> Result<DeviceId, Error> {
        match &self.id {
            Some(id) => Ok(id.clone()),
            None => DeviceId::parse(&self.mac.as_str().replace(':', "")),
        }
    }
}

/// What an accepted claim answers with (typed; cmd/claim.rs renders it).
#[derive(Clone, Debug)]
pub struct Accepted {
    pub device: Device,
    pub user: crate::types::UserName,
    pub jails: Vec<Jail>,
    pub claim: Name,
    /// A retry by the same key: no use was spent.
    pub retry: bool,
}

/// Who claims: the key sshd authenticated and where the connection came from.
pub struct Claimant<'a> {
    pub key: &'a PublicKey,
    pub source: &'a str,
}

/// Refusals from `source` within the window.
fn recent_refusals(c: &mut Conn, source: &str, at: i64) -> Result<i64, Error> {
    let rows = c.query(
        "SELECT count(*) AS n FROM claim_refusals WHERE source = $1 AND at > $2",
        &[source.into(), (at - CLAIM_REFUSAL_WINDOW_SECS).into()],
    )?;
    Ok(rows
        .first()
        .and_then(|r| r.get("n"))
        .and_then(Value::int)
        .unwrap_or(0))
}

/// Whether `source` has collected too many refusals lately.
pub fn rate_limited(c: &mut Conn, source: &str) -> Result<bool, Error> {
    Ok(recent_refusals(c, source, now())? >= CLAIM_REFUSALS_PER_SOURCE)
}

/// Records a refusal: an audit row, and (unless it was the rate limit
/// itself) a refusal row for the source; old refusal rows are dropped.
/// Nothing else changes.
pub fn claim_refused(
    c: &mut Conn,
    why: Refusal,
    claim: Option<&Name>,
    who: &Claimant,
    detail: &str,
) -> Result<(), Error> {
    c.transaction(|c| {
        let at = now();
        if why != Refusal::RateLimited {
            c.exec(
                "DELETE FROM claim_refusals WHERE at <= $1",
                &[(at - CLAIM_REFUSAL_WINDOW_SECS).into()],
            )?;
            c.exec(
                "INSERT INTO claim_refusals (source, at) VALUES ($1, $2)",
                &[who.source.into(), at.into()],
            )?;
        }
        let text = format!(
            "claim {} source {} key {}{}",
            claim.map_or("-", Name::as_str),
            who.source,
            who.key.fingerprint,
            if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            }
        );
        audit(c, "claim-refused", None, Some(why.as_str()), Some(&text))?;
        Ok(())
    })
}

/// Serves one claim at `jail`, in one transaction. `Ok(Ok(_))`: enrolled
/// (or a retry's same answer); `Ok(Err((why, claim, detail)))`: refused,
/// nothing changed (the caller records the refusal); `Err`: the registry
/// failed.
#[allow(clippy::type_complexity)]
pub fn claim_serve(
    c: &mut Conn,
    jail: &Name,
    req: &ClaimRequest,
    who: &Claimant,
) -> Result<Result<Accepted, (Refusal, Option<Name>, String)>, Error> {
    let mut refused: Option<(Refusal, Option<Name>, String)> = None;
    let out = c.transaction(|c| {
        refused = None;
        let mut refuse = |why: Refusal, claim: Option<&Name>, detail: String| {
            refused = Some((why, claim.cloned(), detail));
            TxError::Fail(Error::runtime(format!("claim refused: {why}")))
        };
        let rows = c.query(
            &format!("SELECT {CLAIM_COLS} WHERE hash = $1"),
            &[token_hash(&req.token).into()],
        )?;
        let Some(claim) = rows.first().map(claim_from).transpose()? else {
            return Err(refuse(Refusal::Unknown, None, String::new()));
        };
        let here = jail_named(c, jail)?
            .ok_or_else(|| Error::runtime(format!("unknown jail {jail}")))?;
        let at = now();
        if claim.revoked_at.is_some() {
            return Err(refuse(Refusal::Revoked, Some(&claim.id), String::new()));
        }
        if claim.pool != here.pool {
            let d = format!("token for pool {}, jail {} serves {}", claim.pool, here.name, here.pool);
            return Err(refuse(Refusal::WrongPool, Some(&claim.id), d));
        }
        let id = req.device_id()?;
        // A retry by a key whose claim on this token succeeded: the same
        // answer, no use spent.
        let earlier = c.query(
            "SELECT claim, fingerprint, device FROM claim_uses WHERE claim = $1 AND fingerprint = $2",
            &[claim.id.as_str().into(), who.key.fingerprint.clone().into()],
        )?;
        if let Some(r) = earlier.first() {
            let dev_id = Rd::new("claim_uses", "fingerprint", r).device_id("device")?;
            let dev = device_row(c, "id", dev_id.as_str().into())?;
            let same = dev.as_ref().is_some_and(|d| {
                d.key == *who.key && !d.revoked && d.mac.as_ref() == Some(&req.mac) && d.id == id
            });
            if let (true, Some(device)) = (same, dev) {
                audit(
                    c,
                    "claim",
                    Some(device.id.as_str()),
                    None,
                    Some(&format!(
                        "claim {} source {} key {} (retry: no use spent)",
                        claim.id, who.source, who.key.fingerprint
                    )),
                )?;
                let jails = pool_jails(c, &here.pool)?;
                return Ok(Accepted {
                    device,
                    user: here.user.clone(),
                    jails,
                    claim: claim.id.clone(),
                    retry: true,
                });
            }
        }
        if let Some(why) = claim.unusable(at) {
            return Err(refuse(why, Some(&claim.id), String::new()));
        }
        if let Some(p) = &claim.prefix
            && !p.matches(&req.mac)
        {
            let d = format!("MAC {} outside {p}", req.mac.as_str());
            return Err(refuse(Refusal::MacPrefix, Some(&claim.id), d));
        }
        let d = NewDevice {
            id: id.clone(),
            key: who.key.clone(),
            mac: Some(req.mac.clone()),
            pool: Some(claim.pool.clone()),
            target: claim.target.clone(),
            labels: Some(claim.labels.clone()),
        };
        let (device, _) = match enroll_in(c, &d, false) {
            Ok(v) => v,
            Err(TxError::Fail(Error::Invalid(why) | Error::NotFound(why))) => {
                return Err(refuse(Refusal::Conflict, Some(&claim.id), why));
            }
            Err(e) => return Err(e),
        };
        // The use, spent atomically: of two claims racing for the last use,
        // one updates a row and the other none.
        let spent = c.exec(
            "UPDATE claims SET uses_left = uses_left - 1
             WHERE id = $1 AND uses_left > 0 AND revoked IS NULL AND expires > $2",
            &[claim.id.as_str().into(), at.into()],
        )?;
        if spent != 1 {
            return Err(refuse(Refusal::UsedUp, Some(&claim.id), String::new()));
        }
        set_host_keys(c, &device.id, &req.host_keys)?;
        c.exec(
            "INSERT INTO claim_uses (claim, fingerprint, device, at) VALUES ($1, $2, $3, $4)",
            &[
                claim.id.as_str().into(),
                who.key.fingerprint.clone().into(),
                device.id.as_str().into(),
                at.into(),
            ],
        )?;
        audit(
            c,
            "claim",
            Some(device.id.as_str()),
            None,
            Some(&format!(
                "claim {} source {} key {} port {}",
                claim.id, who.source, who.key.fingerprint, device.port
            )),
        )?;
        let jails = pool_jails(c, &here.pool)?;
        Ok(Accepted {
            device,
            user: here.user.clone(),
            jails,
            claim: claim.id.clone(),
            retry: false,
        })
    });
    match (out, refused) {
        (Ok(a), _) => Ok(Ok(a)),
        (Err(_), Some(r)) => Ok(Err(r)),
        (Err(e), None) => Err(e),
    }
}
