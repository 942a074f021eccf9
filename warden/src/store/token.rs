//! API tokens (`warden token`, `warden serve`): a name, a scope, an optional
//! operator and expiry. The secret itself is shown once, at creation, and
//! stored only as its SHA-256: a stolen registry holds no usable token, and
//! a request's token is found by its hash (no secret comparison at all).

use super::conn::{Conn, Row, Value};
use super::row::Rd;
use super::*;
use crate::error::Error;
use crate::types::Name;
use serde::Serialize;
use std::fmt;

/// What every token starts with: recognizable in a leaked log or a
/// secret scanner's rules.
pub const TOKEN_PREFIX: &str = "wdn_";
/// Random bytes in a token (hex-encoded after the prefix).
pub const TOKEN_RANDOM_BYTES: usize = 32;
/// The longest token text a request may present (prefix and 64 hex digits).
pub const MAX_TOKEN_CHARS: usize = TOKEN_PREFIX.len() + 2 * TOKEN_RANDOM_BYTES;

/// What a token allows: `admin` ⊃ `operate` ⊃ `read`, `enrol` ⊃ `read`
/// (and `admin` ⊃ `enrol`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Read,
    Enrol,
    Operate,
    Admin,
}

impl Scope {
    pub fn parse(s: &str) -> Result<Scope, Error> {
        match s {
            "read" => Ok(Scope::Read),
            "enrol" => Ok(Scope::Enrol),
            "operate" => Ok(Scope::Operate),
            "admin" => Ok(Scope::Admin),
            _ => Err(Error::invalid(format!(
                "scope {}: want read, enrol, operate or admin",
                crate::types::quote(s)
            ))),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Enrol => "enrol",
            Scope::Operate => "operate",
            Scope::Admin => "admin",
        }
    }
    /// Whether a token of this scope may do what needs `need`. `admin`
    /// allows everything, enrolment included (as the admin host's CLI does).
    pub fn allows(self, need: Scope) -> bool {
        matches!((self, need), (_, Scope::Read) | (Scope::Admin, _)) || self == need
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token as listed and as a request is authorized with (never its secret).
#[derive(Clone, Debug, Serialize)]
pub struct Token {
    pub name: Name,
    pub scope: Scope,
    pub operator: Option<Name>,
    pub created: String,
    pub expires: Option<String>,
    pub revoked: Option<String>,
    #[serde(skip)]
    pub expires_at: Option<i64>,
    #[serde(skip)]
    pub revoked_at: Option<i64>,
}

impl Token {
    /// Why the token may not be used at `at`, if it may not.
    pub fn unusable(&self, at: i64) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("revoked")
        } else if self.expires_at.is_some_and(|e| e <= at) {
            Some("expired")
        } else {
            None
        }
    }
}

const TOKEN_COLS: &str = "name, scope, operator, created, expires, revoked FROM tokens";

fn token_from(r: &Row) -> Result<Token, Error> {
    let rd = Rd::new("tokens", "name", r);
    let expires_at = rd.opt_int("expires")?;
    let revoked_at = rd.opt_int("revoked")?;
    Ok(Token {
        name: rd.name("name")?,
        scope: Scope::parse(rd.text("scope")?).map_err(|e| rd.bad("scope", e))?,
        operator: rd.opt_name("operator")?,
        created: rfc3339(rd.int("created")?),
        expires: expires_at.map(rfc3339),
        revoked: revoked_at.map(rfc3339),
        expires_at,
        revoked_at,
    })
}

/// The SHA-256 of a token's text, hex: what the registry keeps.
pub fn token_hash(secret: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    hex(d.as_ref())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A new token's text: the prefix and 32 bytes from the system's CSPRNG.
fn new_secret() -> Result<String, Error> {
    use ring::rand::SecureRandom;
    let mut buf = [0u8; TOKEN_RANDOM_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut buf)
        .map_err(|_| Error::runtime("no randomness from the system for a token"))?;
    Ok(format!("{TOKEN_PREFIX}{}", hex(&buf)))
}

/// Creates token `name` (one transaction with its audit entry); returns its
/// text, which exists nowhere else afterwards. An `operate` token acts for
/// `operator` (required); `admin` may name one (for grants); `read` and
/// `enrol` may not.
pub fn token_create(
    c: &mut Conn,
    name: &Name,
    scope: Scope,
    operator: Option<&Name>,
    expires: Option<i64>,
) -> Result<String, Error> {
    match (scope, operator) {
        (Scope::Operate, None) => {
            return Err(Error::invalid(
                "an operate token acts for an operator: give --operator NAME",
            ));
        }
        (Scope::Read | Scope::Enrol, Some(_)) => {
            return Err(Error::invalid(format!(
                "--operator: a {scope} token creates no grants"
            )));
        }
        _ => {}
    }
    let secret = new_secret()?;
    c.transaction(|c| {
        if !c
            .query(
                "SELECT name FROM tokens WHERE name = $1",
                &[name.as_str().into()],
            )?
            .is_empty()
        {
            return Err(Error::invalid(format!(
                "token {name} exists (token revoke, or another name)"
            ))
            .into());
        }
        if let Some(o) = operator
            && !operators(c)?.iter().any(|x| x.name == *o)
        {
            return Err(Error::invalid(format!("unknown operator {o}")).into());
        }
        c.exec(
            "INSERT INTO tokens (name, hash, scope, operator, created, expires, revoked)
             VALUES ($1, $2, $3, $4, $5, $6, NULL)",
            &[
                name.as_str().into(),
                token_hash(&secret).into(),
                scope.as_str().into(),
                Value::opt_text(operator.map(Name::as_str)),
                now().into(),
                expires.map_or(Value::Null, Value::Int),
            ],
        )?;
        let until = expires.map_or_else(
            || "no expiry".to_string(),
            |e| format!("until {}", rfc3339(e)),
        );
        let detail = format!("token {name} scope {scope} {until}");
        audit_op(
            c,
            "token-create",
            None,
            operator.map(Name::as_str),
            None,
            Some(&detail),
        )?;
        Ok(())
    })?;
    Ok(secret)
}

/// Every token, by name (revoked and expired ones too).
pub fn tokens(c: &mut Conn) -> Result<Vec<Token>, Error> {
    let rows = c.query(&format!("SELECT {TOKEN_COLS} ORDER BY name"), &[])?;
    rows.iter().map(token_from).collect()
}

/// Revokes token `name`: refused from its next request on. Idempotent.
pub fn token_revoke(c: &mut Conn, name: &Name) -> Result<(), Error> {
    c.transaction(|c| {
        let n = c.exec(
            "UPDATE tokens SET revoked = $1 WHERE name = $2 AND revoked IS NULL",
            &[now().into(), name.as_str().into()],
        )?;
        if n == 0 {
            let known = !c
                .query(
                    "SELECT name FROM tokens WHERE name = $1",
                    &[name.as_str().into()],
                )?
                .is_empty();
            if !known {
                return Err(Error::NotFound(format!("unknown token {name}")).into());
            }
            return Ok(());
        }
        audit(
            c,
            "token-revoke",
            None,
            None,
            Some(&format!("token {name}")),
        )?;
        Ok(())
    })
}

/// The token whose text is `secret`, looked up by its hash; `None` for a
/// text no token has.
pub fn token_by_secret(c: &mut Conn, secret: &str) -> Result<Option<Token>, Error> {
    let rows = c.query(
        &format!("SELECT {TOKEN_COLS} WHERE hash = $1"),
        &[token_hash(secret).into()],
    )?;
    rows.first().map(token_from).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_ordered() {
        use Scope::*;
        let all = [Read, Enrol, Operate, Admin];
        let allowed: Vec<(Scope, Scope)> = all
            .iter()
            .flat_map(|&h| all.iter().map(move |&n| (h, n)))
            .filter(|(h, n)| h.allows(*n))
            .collect();
        assert_eq!(
            allowed,
            [
                (Read, Read),
                (Enrol, Read),
                (Enrol, Enrol),
                (Operate, Read),
                (Operate, Operate),
                (Admin, Read),
                (Admin, Enrol),
                (Admin, Operate),
                (Admin, Admin),
            ]
        );
    }

    #[test]
    fn secrets_are_prefixed_random_and_hashed() {
        let a = new_secret().unwrap();
        let b = new_secret().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == MAX_TOKEN_CHARS);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), a);
    }
}
