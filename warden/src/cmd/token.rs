//! `warden token create | ls | revoke`: the API's bearer tokens.

use super::{Ctx, name};
use crate::cli::{ScopeArg, TokenCmd};
use crate::error::Error;
use crate::render::{dash, json, table};
use crate::store::{self, Scope};
use crate::types::{self, Name};

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Scope {
        match s {
            ScopeArg::Read => Scope::Read,
            ScopeArg::Enrol => Scope::Enrol,
            ScopeArg::Operate => Scope::Operate,
            ScopeArg::Admin => Scope::Admin,
        }
    }
}

pub fn run(ctx: &Ctx, cmd: &TokenCmd) -> Result<String, Error> {
    match cmd {
        TokenCmd::Create {
            name: n,
            scope,
            expires,
            operator,
        } => create(ctx, n, (*scope).into(), expires.as_deref(), operator),
        TokenCmd::Ls => ls(ctx),
        TokenCmd::Revoke { name: n } => {
            let n = Name::parse("token", n)?;
            ctx.admin(|c| store::token_revoke(c, &n))?;
            Ok(format!(
                "token {n} revoked: refused from its next request on\n"
            ))
        }
    }
}

/// The token alone on the first line (for `| head -1` and scripts), then
/// what it is, on the second.
fn create(
    ctx: &Ctx,
    n: &str,
    scope: Scope,
    expires: Option<&str>,
    operator: &Option<String>,
) -> Result<String, Error> {
    let n = Name::parse("token", n)?;
    let operator = name("operator", operator)?;
    let expires = expires
        .map(types::parse_duration)
        .transpose()?
        .map(|d| store::now() + d.as_secs() as i64);
    let secret = ctx.admin(|c| store::token_create(c, &n, scope, operator.as_ref(), expires))?;
    let until = expires.map_or_else(
        || "until revoked".into(),
        |e| format!("until {}", store::rfc3339(e)),
    );
    Ok(format!(
        "{secret}\n# token {n}, scope {scope}, {until}: shown once, only its hash is kept\n"
    ))
}

fn ls(ctx: &Ctx) -> Result<String, Error> {
    let ts = ctx.admin(store::tokens)?;
    if ctx.json {
        return Ok(json(&ts));
    }
    let now = store::now();
    let rows: Vec<Vec<String>> = ts
        .iter()
        .map(|t| {
            vec![
                t.name.to_string(),
                t.scope.to_string(),
                dash(&t.operator),
                t.created.clone(),
                dash(&t.expires),
                t.unusable(now).unwrap_or("usable").to_string(),
            ]
        })
        .collect();
    Ok(table(
        &["TOKEN", "SCOPE", "OPERATOR", "CREATED", "EXPIRES", "STATE"],
        &rows,
    ))
}
