//! The fleet web view at `/`: server-rendered pages (maud), no JavaScript.
//!
//! ```text
//! GET  /signin, POST /signin (token) -> cookie      POST /signout
//! GET  /  (fleet)   /devices/{id}   /audit   /jails   /static/style.css
//! POST /devices/{id}/access (operate: a 15-minute grant -> the ssh command)
//! ```
//!
//! Sign-in takes an API token (`warden token create`) and keeps it in an
//! HttpOnly, SameSite=Strict cookie (Secure when serving TLS); every request
//! looks the token up again, so a revoked or expired token signs out at the
//! next page. Its scope decides what a page shows and what a form may do.
//!
//! Every POST is checked twice: the browser's `Sec-Fetch-Site` (when sent)
//! must be `same-origin` and `Origin` (when sent) this server's; and a form
//! of a signed-in page carries `csrf`, an HMAC of the token's hash under a
//! key drawn at server start (a page from before a restart asks to sign in
//! again). Pages call the command layer (cmd/) like the CLI and the API.

mod pages;

use super::MAX_REGISTRY_CALLS;
use crate::cmd::{self, Ctx};
use crate::error::Error;
use crate::store::conn::DbUrl;
use crate::store::{self, MAX_TOKEN_CHARS, Scope, TOKEN_PREFIX, Token};
use crate::types::{self, DeviceId, Mac, Name};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// The largest form body (bytes); a larger one is answered 413.
pub const MAX_FORM_BYTES: usize = 16 * 1024;
/// Devices per fleet page.
pub const DEVICES_PER_PAGE: usize = 100;
/// Audit entries per audit page.
pub const AUDIT_PER_PAGE: usize = 100;
/// Audit entries shown on a device's page (its newest).
pub const DEVICE_AUDIT_ROWS: usize = 200;
/// How long "request access" grants (seconds).
pub const ACCESS_SECS: i64 = 15 * 60;
/// Registry calls the web view runs at once (beside the API's own).
pub const MAX_WEB_REGISTRY_CALLS: usize = MAX_REGISTRY_CALLS;
/// The cookie holding the signed-in token.
pub const COOKIE: &str = "warden_token";
/// The form field carrying the CSRF tag.
pub const CSRF_FIELD: &str = "csrf";
/// Every page's Content-Security-Policy: no script at all, styles from this
/// server's stylesheet only, forms only to this server, never framed.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE_CSS: &str = include_str!("web/style.css");

/// What every page handler shares.
#[derive(Clone)]
pub struct Web {
    db: DbUrl,
    slots: Arc<Semaphore>,
    /// Serving TLS: the cookie is `Secure`.
    secure: bool,
    /// Derives each token's CSRF tag; drawn at start, never stored.
    csrf_key: Arc<ring::hmac::Key>,
}

/// The web view's routes (merged beside the API's by serve/mod.rs).
pub fn router(db: DbUrl, secure: bool) -> Result<axum::Router, Error> {
    let rng = ring::rand::SystemRandom::new();
    let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
        .map_err(|_| Error::runtime("no randomness from the system for the web view's key"))?;
    let st = Web {
        db,
        slots: Arc::new(Semaphore::new(MAX_WEB_REGISTRY_CALLS)),
        secure,
        csrf_key: Arc::new(key),
    };
    Ok(axum::Router::new()
        .route("/", get(fleet))
        .route("/devices/{id}", get(device))
        .route("/devices/{id}/access", post(access))
        .route("/audit", get(audit))
        .route("/jails", get(jails))
        .route("/signin", get(signin_form).post(signin))
        .route("/signout", post(signout))
        .route("/static/style.css", get(style))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .layer(axum::middleware::map_response(page_headers))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            super::REQUEST_TIMEOUT,
        ))
        .with_state(st))
}

/// The headers every answer of the web view carries.
async fn page_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(h, header::CONTENT_SECURITY_POLICY, CSP);
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    // Not no-referrer: with it, browsers send `Origin: null` on form posts.
    set(h, header::REFERRER_POLICY, "same-origin");
    if !h.contains_key(header::CACHE_CONTROL) {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    r
}

// ---- errors -------------------------------------------------------------------

/// Why a page is not shown.
#[derive(Debug)]
pub enum WebError {
    /// No usable token: to the sign-in page (the cookie cleared).
    SignedOut(String),
    /// A refused request: a status and one line.
    Status(StatusCode, String),
}

impl WebError {
    fn status(s: StatusCode, m: impl Into<String>) -> Self {
        WebError::Status(s, types::one_line(&m.into()))
    }
    fn bad(m: impl Into<String>) -> Self {
        Self::status(StatusCode::BAD_REQUEST, m)
    }
    fn forbidden(m: impl Into<String>) -> Self {
        Self::status(StatusCode::FORBIDDEN, m)
    }
}

impl From<Error> for WebError {
    fn from(e: Error) -> Self {
        let s = match &e {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Runtime(_) | Error::Child(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        WebError::status(s, e.to_string())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        match self {
            WebError::SignedOut(why) => {
                let to = if why.is_empty() {
                    "/signin".to_string()
                } else {
                    format!(
                        "/signin?{}",
                        serde_urlencoded::to_string([("why", why.as_str())]).unwrap_or_default()
                    )
                };
                let mut r = Redirect::to(&to).into_response();
                r.headers_mut().insert(header::SET_COOKIE, clear_cookie());
                r
            }
            WebError::Status(s, msg) => (s, pages::html(pages::error(s, &msg))).into_response(),
        }
    }
}

type Page = Result<Response, WebError>;

// ---- the session --------------------------------------------------------------

/// The token text in the request's cookie, if it can be one.
fn cookie_token(h: &HeaderMap) -> Option<String> {
    h.get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find(|t| t.starts_with(TOKEN_PREFIX) && t.len() == MAX_TOKEN_CHARS)
        .map(str::to_string)
}

fn set_cookie(token: &str, secure: bool) -> HeaderValue {
    let s = format!(
        "{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    );
    HeaderValue::from_str(&s).unwrap_or_else(|_| clear_cookie())
}

fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static("warden_token=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict")
}

/// The signed-in token as a page sees it.
pub struct Session {
    pub token: Token,
    /// The CSRF tag its forms carry.
    pub csrf: String,
}

impl Session {
    pub fn may(&self, need: Scope) -> bool {
        self.token.scope.allows(need)
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || s.len() > 128 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The CSRF tag of the token whose text is `secret`.
fn csrf_tag(key: &ring::hmac::Key, secret: &str) -> String {
    let msg = format!("warden-web-csrf:{}", store::token_hash(secret));
    hex(ring::hmac::sign(key, msg.as_bytes()).as_ref())
}

/// Whether `tag` is the CSRF tag of `secret` (compared in constant time).
fn csrf_ok(key: &ring::hmac::Key, secret: &str, tag: &str) -> bool {
    let msg = format!("warden-web-csrf:{}", store::token_hash(secret));
    unhex(tag).is_some_and(|t| ring::hmac::verify(key, msg.as_bytes(), &t).is_ok())
}

/// A POST from another site is refused: `Sec-Fetch-Site` (sent by current
/// browsers) must say same-origin, and `Origin` (when sent) must be this host.
fn same_origin(h: &HeaderMap, secure: bool) -> Result<(), WebError> {
    let refuse = |why: &str| WebError::forbidden(format!("cross-site request refused: {why}"));
    if let Some(site) = h.get("sec-fetch-site")
        && site.as_bytes() != b"same-origin"
    {
        return Err(refuse("Sec-Fetch-Site is not same-origin"));
    }
    if let Some(origin) = h.get(header::ORIGIN) {
        let host = h
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| refuse("no Host"))?;
        let want = format!("{}://{host}", if secure { "https" } else { "http" });
        if origin.as_bytes() != want.as_bytes() {
            return Err(refuse("Origin is not this server"));
        }
    }
    Ok(())
}

/// `f` on a blocking thread, at most [`MAX_WEB_REGISTRY_CALLS`] at once.
async fn blocking<T: Send + 'static>(
    st: &Web,
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    let _slot =
        st.slots.clone().acquire_owned().await.map_err(|_| {
            WebError::status(StatusCode::SERVICE_UNAVAILABLE, "the server is stopping")
        })?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| WebError::status(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))?
}

/// Runs `op` for a signed-in request needing `need`: the cookie's token is
/// looked up (by its hash) and checked on the same blocking thread, then
/// `op` runs with a context whose audit rows name the token and the client.
/// `form`: the CSRF tag a POST carried (checked before anything runs).
async fn signed_in<T: Send + 'static>(
    st: &Web,
    peer: SocketAddr,
    h: &HeaderMap,
    need: Scope,
    form: Option<String>,
    op: impl FnOnce(&Ctx, &Session) -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    let secret = cookie_token(h).ok_or_else(|| WebError::SignedOut(String::new()))?;
    if let Some(tag) = &form {
        same_origin(h, st.secure)?;
        if !csrf_ok(&st.csrf_key, &secret, tag) {
            return Err(WebError::forbidden(
                "the form's csrf field is missing or not this session's: reload the page",
            ));
        }
    }
    let (db, key) = (st.db.clone(), st.csrf_key.clone());
    blocking(st, move || {
        let ctx = Ctx {
            db,
            json: false,
            actor: None,
        };
        let token = ctx
            .admin(|c| store::token_by_secret(c, &secret))?
            .ok_or_else(|| WebError::SignedOut("unknown token".into()))?;
        if let Some(why) = token.unusable(store::now()) {
            return Err(WebError::SignedOut(format!(
                "token {} is {why}",
                token.name
            )));
        }
        if !token.scope.allows(need) {
            return Err(WebError::forbidden(format!(
                "token {} has scope {}: this needs {need}",
                token.name, token.scope
            )));
        }
        let ctx = Ctx {
            actor: Some((format!("token {}", token.name), format!("web from {peer}"))),
            ..ctx
        };
        let s = Session {
            csrf: csrf_tag(&key, &secret),
            token,
        };
        op(&ctx, &s)
    })
    .await
}

// ---- input ----------------------------------------------------------------------

/// A query's or a form's `KEY=VALUE` pairs, each key one of `known`.
fn pairs(raw: &[u8], known: &[&str]) -> Result<Vec<(String, String)>, WebError> {
    let ps: Vec<(String, String)> =
        serde_urlencoded::from_bytes(raw).map_err(|e| WebError::bad(format!("form: {e}")))?;
    if let Some((k, _)) = ps.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return Err(WebError::bad(format!(
            "unknown field {}, expected one of {}",
            types::quote(k),
            known.join(", ")
        )));
    }
    Ok(ps)
}

fn form_body(b: Result<Bytes, BytesRejection>) -> Result<Bytes, WebError> {
    b.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => WebError::status(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("form: larger than {MAX_FORM_BYTES} bytes"),
        ),
        s => WebError::status(s, format!("form: {}", r.body_text())),
    })
}

fn page_number(v: &str) -> Result<usize, WebError> {
    v.parse::<usize>()
        .ok()
        .filter(|n| (1..=1_000_000).contains(n))
        .ok_or_else(|| WebError::bad(format!("page {}: want 1 to 1000000", types::quote(v))))
}

fn opt(v: String) -> Option<String> {
    let v = v.trim().to_string();
    (!v.is_empty()).then_some(v)
}

// ---- pages ------------------------------------------------------------------------

async fn style() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        STYLE_CSS,
    )
        .into_response()
}

async fn signin_form(RawQuery(raw): RawQuery) -> Response {
    let why = pairs(raw.unwrap_or_default().as_bytes(), &["why"])
        .ok()
        .and_then(|p| p.into_iter().next())
        .map(|(_, v)| v);
    pages::html(pages::signin(why.as_deref())).into_response()
}

async fn signin(
    State(st): State<Web>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Page {
    same_origin(&headers, st.secure)?;
    let b = form_body(b)?;
    let token = pairs(&b, &["token"])?
        .into_iter()
        .next()
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let refused = |why: &str| Ok(pages::html(pages::signin(Some(why))).into_response());
    if !token.starts_with(TOKEN_PREFIX) || token.len() != MAX_TOKEN_CHARS {
        return refused("that is no token: it starts with wdn_ (warden token create)");
    }
    let db = st.db.clone();
    let t = token.clone();
    let found = blocking(&st, move || {
        let ctx = Ctx {
            db,
            json: false,
            actor: None,
        };
        Ok(ctx.admin(|c| store::token_by_secret(c, &t))?)
    })
    .await?;
    match found {
        None => refused("unknown token"),
        Some(t) => match t.unusable(store::now()) {
            Some(why) => refused(&format!("token {} is {why}", t.name)),
            None => {
                let mut r = Redirect::to("/").into_response();
                r.headers_mut()
                    .insert(header::SET_COOKIE, set_cookie(&token, st.secure));
                Ok(r)
            }
        },
    }
}

async fn signout(
    State(st): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Page {
    let b = form_body(b)?;
    let tag = csrf_of(&b, &[])?.0;
    // A token revoked meanwhile signs out all the same.
    match signed_in(&st, peer, &headers, Scope::Read, Some(tag), |_, _| Ok(())).await {
        Ok(()) | Err(WebError::SignedOut(_)) => {}
        Err(e) => return Err(e),
    }
    let mut r = Redirect::to("/signin?why=signed+out").into_response();
    r.headers_mut().insert(header::SET_COOKIE, clear_cookie());
    Ok(r)
}

/// A form's CSRF tag (empty when missing: refused by [`csrf_ok`]) and its
/// other fields, each one of `known`.
fn csrf_of(b: &[u8], known: &[&str]) -> Result<(String, Vec<(String, String)>), WebError> {
    let mut all = vec![CSRF_FIELD];
    all.extend_from_slice(known);
    let (tag, rest): (Vec<_>, Vec<_>) = pairs(b, &all)?
        .into_iter()
        .partition(|(k, _)| k == CSRF_FIELD);
    Ok((
        tag.into_iter().next().map(|p| p.1).unwrap_or_default(),
        rest,
    ))
}

/// What the fleet page's query asks for.
#[derive(Default, Clone)]
pub struct FleetQuery {
    pub q: String,
    /// "", "online" or "offline".
    pub state: String,
    pub pool: String,
    pub jail: String,
    pub page: usize,
}

impl FleetQuery {
    fn parse(raw: Option<String>) -> Result<(FleetQuery, store::DeviceQuery), WebError> {
        let mut fq = FleetQuery {
            page: 1,
            ..Default::default()
        };
        let mut dq = store::DeviceQuery {
            limit: DEVICES_PER_PAGE,
            ..Default::default()
        };
        for (k, v) in pairs(
            raw.unwrap_or_default().as_bytes(),
            &["q", "state", "pool", "jail", "page"],
        )? {
            let v = v.trim().to_string();
            match k.as_str() {
                "q" => fq.q = v,
                "state" => {
                    dq.online = match v.as_str() {
                        "" => None,
                        "online" => Some(true),
                        "offline" => Some(false),
                        _ => {
                            return Err(WebError::bad(format!(
                                "state {}: want online or offline",
                                types::quote(&v)
                            )));
                        }
                    };
                    fq.state = v;
                }
                "pool" => {
                    if !v.is_empty() {
                        dq.pool = Some(Name::parse("pool", &v)?);
                    }
                    fq.pool = v;
                }
                "jail" => {
                    if !v.is_empty() {
                        dq.jail = Some(Name::parse("jail", &v)?);
                    }
                    fq.jail = v;
                }
                _ => fq.page = page_number(&v)?,
            }
        }
        search(&fq.q, &mut dq)?;
        dq.offset = (fq.page - 1) * DEVICES_PER_PAGE;
        Ok((fq, dq))
    }

    /// This query's URL at `page`.
    pub fn url(&self, page: usize) -> String {
        let p = page.to_string();
        let q: Vec<(&str, &str)> = [
            ("q", self.q.as_str()),
            ("state", self.state.as_str()),
            ("pool", self.pool.as_str()),
            ("jail", self.jail.as_str()),
            ("page", p.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        format!("/?{}", serde_urlencoded::to_string(q).unwrap_or_default())
    }
}

/// The search box: a label `K=V`, a MAC in any common form (or an id that
/// reads as one: both are looked for), or part of an id.
fn search(q: &str, dq: &mut store::DeviceQuery) -> Result<(), WebError> {
    if q.is_empty() {
        return Ok(());
    }
    if q.contains('=') {
        dq.labels = store::parse_labels(&[q.to_string()])?;
        return Ok(());
    }
    dq.mac = Mac::parse(q).ok();
    dq.id_part = Some(q.to_ascii_lowercase());
    Ok(())
}

async fn fleet(
    State(st): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Page {
    let (fq, dq) = FleetQuery::parse(raw)?;
    signed_in(&st, peer, &headers, Scope::Read, None, move |ctx, s| {
        let fp = cmd::view::fleet_page(ctx, &dq)?;
        let page = dq.offset.min(fp.page.total.saturating_sub(1)) / DEVICES_PER_PAGE + 1;
        Ok(pages::html(pages::fleet(s, &fp, &FleetQuery { page, ..fq })).into_response())
    })
    .await
}

async fn device(
    State(st): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Page {
    let id = DeviceId::parse(&id)?;
    signed_in(&st, peer, &headers, Scope::Read, None, move |ctx, s| {
        let v = cmd::view::device(ctx, &id)?;
        Ok(pages::html(pages::device(s, &v, None)).into_response())
    })
    .await
}

async fn access(
    State(st): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Page {
    let b = form_body(b)?;
    let (tag, fields) = csrf_of(&b, &["reason"])?;
    let id = DeviceId::parse(&id)?;
    let reason = fields.into_iter().next().and_then(|(_, v)| opt(v));
    signed_in(
        &st,
        peer,
        &headers,
        Scope::Operate,
        Some(tag),
        move |ctx, s| {
            types::check_reason(reason.as_deref()).map_err(|_| {
                WebError::bad(format!(
                    "reason: 1 to {} printable characters",
                    types::MAX_REASON_CHARS
                ))
            })?;
            let op = s.token.operator.clone().ok_or_else(|| {
                WebError::forbidden(format!("token {} acts for no operator", s.token.name))
            })?;
            let which = store::Which::Id(id.clone());
            let (g, ssh) =
                cmd::operator::grant_one(ctx, &which, &op, ACCESS_SECS, reason.as_deref())?;
            let granted = pages::Granted {
                id: g.id,
                operator: op.to_string(),
                expires: store::rfc3339(g.expires),
                ssh,
            };
            let v = cmd::view::device(ctx, &id)?;
            Ok(pages::html(pages::device(s, &v, Some(&granted))).into_response())
        },
    )
    .await
}

/// What the audit page's query asks for.
#[derive(Default, Clone)]
pub struct AuditQuery {
    pub device: String,
    pub operator: String,
    pub action: String,
    pub since: String,
    pub page: usize,
}

impl AuditQuery {
    pub fn url(&self, page: usize) -> String {
        let p = page.to_string();
        let q: Vec<(&str, &str)> = [
            ("device", self.device.as_str()),
            ("operator", self.operator.as_str()),
            ("action", self.action.as_str()),
            ("since", self.since.as_str()),
            ("page", p.as_str()),
        ]
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .collect();
        format!(
            "/audit?{}",
            serde_urlencoded::to_string(q).unwrap_or_default()
        )
    }
}

async fn audit(
    State(st): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Page {
    let mut aq = AuditQuery {
        page: 1,
        ..Default::default()
    };
    let (mut device, mut operator, mut since) = (None, None, None);
    for (k, v) in pairs(
        raw.unwrap_or_default().as_bytes(),
        &["device", "operator", "action", "since", "page"],
    )? {
        let v = v.trim().to_string();
        match k.as_str() {
            "device" if !v.is_empty() => device = Some(DeviceId::parse(&v)?),
            "operator" if !v.is_empty() => operator = Some(Name::parse("operator", &v)?),
            "since" if !v.is_empty() => {
                since = Some(
                    cmd::audit::since(&v)
                        .map_err(|e| WebError::bad(e.to_string().replace("--since", "since")))?,
                )
            }
            "page" => aq.page = page_number(&v)?,
            _ => {}
        }
        match k.as_str() {
            "device" => aq.device = v,
            "operator" => aq.operator = v,
            "action" => aq.action = v,
            "since" => aq.since = v,
            _ => {}
        }
    }
    signed_in(&st, peer, &headers, Scope::Read, None, move |ctx, s| {
        let mut es = cmd::audit::entries(ctx, device.as_ref(), operator.as_ref(), since)?;
        if !aq.action.is_empty() {
            es.retain(|e| e.action == aq.action);
        }
        es.reverse();
        Ok(pages::html(pages::audit(s, &es, &aq)).into_response())
    })
    .await
}

async fn jails(
    State(st): State<Web>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Page {
    signed_in(&st, peer, &headers, Scope::Read, None, |ctx, s| {
        let fleet = cmd::view::fleet(ctx)?;
        Ok(pages::html(pages::jails(s, &fleet)).into_response())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tags_belong_to_their_token_and_key() {
        let rng = ring::rand::SystemRandom::new();
        let k1 = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).unwrap();
        let k2 = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng).unwrap();
        let (a, b) = ("wdn_a", "wdn_b");
        let t = csrf_tag(&k1, a);
        assert!(csrf_ok(&k1, a, &t));
        assert!(!csrf_ok(&k1, b, &t), "another token's tag");
        assert!(!csrf_ok(&k2, a, &t), "a tag from before a restart");
        assert!(!csrf_ok(&k1, a, ""));
        assert!(!csrf_ok(&k1, a, &t[..t.len() - 2]));
    }

    #[test]
    fn the_cookie_is_httponly_strict_and_secure_over_tls() {
        let t = format!("{TOKEN_PREFIX}{}", "0a".repeat(store::TOKEN_RANDOM_BYTES));
        let plain = set_cookie(&t, false);
        let tls = set_cookie(&t, true);
        assert_eq!(
            plain.to_str().unwrap(),
            format!("{COOKIE}={t}; Path=/; HttpOnly; SameSite=Strict")
        );
        assert_eq!(
            tls.to_str().unwrap(),
            format!("{}; Secure", plain.to_str().unwrap())
        );
        // Read back among other cookies; anything that cannot be a token is none.
        let mut h = HeaderMap::new();
        let c = format!("a=b; {COOKIE}=wdn_short; {COOKIE}={t}; c=d");
        h.insert(header::COOKIE, HeaderValue::from_str(&c).unwrap());
        assert_eq!(cookie_token(&h), Some(t));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("warden_token=wdn_x"),
        );
        assert_eq!(cookie_token(&h), None);
    }

    #[test]
    fn cross_site_posts_are_refused() {
        let h = |pairs: &[(&'static str, &'static str)]| {
            let mut m = HeaderMap::new();
            m.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8443"));
            for (k, v) in pairs {
                m.insert(*k, HeaderValue::from_static(v));
            }
            m
        };
        assert!(same_origin(&h(&[]), false).is_ok());
        assert!(same_origin(&h(&[("sec-fetch-site", "same-origin")]), false).is_ok());
        assert!(same_origin(&h(&[("origin", "http://127.0.0.1:8443")]), false).is_ok());
        assert!(same_origin(&h(&[("sec-fetch-site", "cross-site")]), false).is_err());
        assert!(same_origin(&h(&[("sec-fetch-site", "same-site")]), false).is_err());
        assert!(same_origin(&h(&[("origin", "http://evil.example")]), false).is_err());
        assert!(same_origin(&h(&[("origin", "http://127.0.0.1:8443")]), true).is_err());
    }

    #[test]
    fn the_search_box_reads_macs_in_every_common_form() {
        let m = Mac::parse("aa:bb:cc:dd:ee:ff").unwrap();
        for q in [
            "aa:bb:cc:dd:ee:ff",
            "AA-BB-CC-DD-EE-FF",
            "aabb.ccdd.eeff",
            "AABBCCDDEEFF",
        ] {
            let mut dq = store::DeviceQuery::default();
            search(q, &mut dq).unwrap();
            assert_eq!(dq.mac.as_ref(), Some(&m), "{q}");
        }
        let mut dq = store::DeviceQuery::default();
        search("site=berlin", &mut dq).unwrap();
        assert_eq!(dq.labels["site"], "berlin");
        assert!(dq.mac.is_none() && dq.id_part.is_none());
        let mut dq = store::DeviceQuery::default();
        search("DNJE", &mut dq).unwrap();
        assert_eq!((dq.mac, dq.id_part.as_deref()), (None, Some("dnje")));
    }
}
