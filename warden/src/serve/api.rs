//! The routes of API v1: each parses its input into warden's types,
//! authorizes the bearer token, calls the command layer (cmd/) on a blocking
//! thread, and renders the answer. Errors are `{"error": "one line"}`.

use super::schema::*;
use super::{MAX_BODY_BYTES, MAX_REGISTRY_CALLS, REQUEST_TIMEOUT};
use crate::cmd::{self, Ctx};
use crate::error::Error;
use crate::store::conn::DbUrl;
use crate::store::{self, MAX_TOKEN_CHARS, NewDevice, Scope, TOKEN_PREFIX, Token, Which};
use crate::types::{self, DeviceId, HostPort, Mac, Name, PublicKey};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::Semaphore;
use utoipa::OpenApi;

/// Devices or audit entries per page when `per_page` is not given.
pub const DEFAULT_PER_PAGE: usize = 100;
/// The most devices or audit entries one page holds.
pub const MAX_PER_PAGE: usize = 1000;

/// What every handler shares: where the registry is, and the slots for
/// registry calls.
#[derive(Clone)]
pub struct AppState {
    db: DbUrl,
    slots: Arc<Semaphore>,
}

impl AppState {
    /// Where the registry is.
    pub fn db(&self) -> DbUrl {
        self.db.clone()
    }
}

/// Marks a 401 with why (for `warden_api_refusals_total{reason}`).
#[derive(Clone, Copy, Debug)]
pub struct Refused(pub &'static str);

/// The router with every route, the body limit and the request timeout.
pub fn router(db: DbUrl) -> axum::Router {
    let st = AppState {
        db,
        slots: Arc::new(Semaphore::new(MAX_REGISTRY_CALLS)),
    };
    axum::Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/devices", get(list_devices).post(enrol))
        .route("/api/v1/devices/{id}", get(show_device))
        .route("/api/v1/devices/{id}/revoke", post(revoke))
        .route("/api/v1/grants", post(grant))
        .route("/api/v1/claims", get(list_claims).post(create_claim))
        .route("/api/v1/claims/{id}/revoke", post(revoke_claim))
        .route("/api/v1/audit", get(audit))
        .route("/api/v1/pools", get(pools))
        .route("/api/v1/jails", get(jails))
        .route("/metrics", get(super::metrics::scrape))
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such route") })
        .layer(axum::middleware::from_fn(super::metrics::track))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .with_state(st)
}

// ---- errors -------------------------------------------------------------------

/// An answer other than 2xx: a status and one line.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    msg: String,
    refused: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError {
            status,
            msg: types::one_line(&msg.into()),
            refused: None,
        }
    }
    fn bad(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::Invalid(_) => StatusCode::BAD_REQUEST,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Runtime(_) | Error::Child(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(ErrorBody { error: self.msg })).into_response();
        if let Some(why) = self.refused {
            r.extensions_mut().insert(Refused(why));
        }
        r
    }
}

type Answer<T> = Result<Json<T>, ApiError>;

// ---- authorization and the blocking call ----------------------------------------

/// The bearer token's text; 401 when there is none or it cannot be one.
fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, m);
    let v = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or_else(|| unauthorized("no token: send Authorization: Bearer TOKEN"))?;
    let t = v
        .to_str()
        .ok()
        .and_then(|s| s.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| unauthorized("Authorization: want Bearer TOKEN"))?;
    if !t.starts_with(TOKEN_PREFIX) || t.len() != MAX_TOKEN_CHARS {
        return Err(unauthorized("unknown token"));
    }
    Ok(t.to_string())
}

/// Runs `op` for a request needing `need`: the token is looked up (by its
/// hash) and checked on the same blocking thread, then `op` runs with a
/// context whose audit rows name the token and the client's address.
async fn call<T: Send + 'static>(
    st: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    need: Scope,
    op: impl FnOnce(&Ctx, &Token) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let secret = bearer(headers)?;
    let db = st.db.clone();
    blocking(st, move || {
        let ctx = Ctx {
            db,
            json: true,
            actor: None,
        };
        let unauthorized = |m: String| ApiError::new(StatusCode::UNAUTHORIZED, m);
        let token = ctx
            .admin(|c| store::token_by_secret(c, &secret))?
            .ok_or_else(|| unauthorized("unknown token".into()))?;
        if let Some(why) = token.unusable(store::now()) {
            let mut e = unauthorized(format!("token {} is {why}", token.name));
            e.refused = Some("token_expired_or_revoked");
            return Err(e);
        }
        if !token.scope.allows(need) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "token {} has scope {}: this needs {need}",
                    token.name, token.scope
                ),
            ));
        }
        let ctx = Ctx {
            actor: Some((format!("token {}", token.name), format!("api from {peer}"))),
            ..ctx
        };
        op(&ctx, &token)
    })
    .await
}

/// `f` on a blocking thread, at most MAX_REGISTRY_CALLS at once.
async fn blocking<T: Send + 'static>(
    st: &AppState,
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _slot = st
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "stopping"))?;
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the request failed"))?
}

// ---- input ----------------------------------------------------------------------

/// A JSON body into `T` (after [`bearer`]: no token is 401 whatever the body): 413 over the limit, 400 naming the field otherwise.
fn body<T: serde::de::DeserializeOwned>(b: Result<Bytes, BytesRejection>) -> Result<T, ApiError> {
    let b = b.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("body: larger than {MAX_BODY_BYTES} bytes"),
        ),
        s => ApiError::new(s, format!("body: {}", r.body_text())),
    })?;
    let mut de = serde_json::Deserializer::from_slice(&b);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." {
            ApiError::bad(format!("body: {inner}"))
        } else {
            ApiError::bad(format!("body: {path}: {inner}"))
        }
    })
}

/// A body's `labels` object as the CLI's `--label K=V` words (one parser for both).
fn label_words(labels: Option<std::collections::BTreeMap<String, String>>) -> Vec<String> {
    labels
        .unwrap_or_default()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect()
}

/// The query's `KEY=VALUE` pairs, each key one of `known`.
fn query(raw: Option<String>, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| ApiError::bad(format!("query: {e}")))?;
    if let Some((k, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return Err(ApiError::bad(format!(
            "query: unknown parameter {}, expected one of {}",
            types::quote(k),
            known.join(", ")
        )));
    }
    Ok(pairs)
}

/// `page` (from 1) and `per_page` (1 to MAX_PER_PAGE).
#[derive(Clone, Copy)]
struct Paging {
    page: usize,
    per_page: usize,
}

impl Paging {
    fn take(&mut self, k: &str, v: &str) -> Result<bool, ApiError> {
        let n = |max: usize| {
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| ApiError::bad(format!("{k} {}: want 1 to {max}", types::quote(v))))
        };
        match k {
            "page" => self.page = n(usize::MAX / MAX_PER_PAGE)?,
            "per_page" => self.per_page = n(MAX_PER_PAGE)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
    fn of<T, U>(self, all: &[T], f: impl Fn(&T) -> U) -> Vec<U> {
        all.iter()
            .skip((self.page - 1) * self.per_page)
            .take(self.per_page)
            .map(f)
            .collect()
    }
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            page: 1,
            per_page: DEFAULT_PER_PAGE,
        }
    }
}

/// A device named in a path or a body: a MAC if it has a ':', else an id.
fn which(s: &str) -> Result<Which, ApiError> {
    Ok(if s.contains(':') {
        Which::Mac(Mac::parse(s)?)
    } else {
        Which::Id(DeviceId::parse(s)?)
    })
}

// ---- routes -----------------------------------------------------------------------

/// The registry answers.
#[utoipa::path(get, path = "/healthz", responses(
    (status = 200, body = Health), (status = 503, body = ErrorBody)))]
async fn healthz(State(st): State<AppState>) -> Response {
    let db = st.db.clone();
    let ok = blocking(&st, move || {
        let ctx = Ctx {
            db,
            json: true,
            actor: None,
        };
        Ok(ctx.admin(|_| Ok(()))?)
    })
    .await;
    match ok {
        Ok(()) => Json(Health {
            status: "ok".into(),
        })
        .into_response(),
        Err(e) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.msg).into_response(),
    }
}

/// This document.
#[utoipa::path(get, path = "/api/v1/openapi.json", responses((status = 200, description = "the OpenAPI document")))]
async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// Devices, filtered and paged, by id.
#[utoipa::path(get, path = "/api/v1/devices", security(("bearer" = [])),
    params(
        ("online" = Option<bool>, Query, description = "true: online only; false: offline and not revoked"),
        ("pool" = Option<String>, Query),
        ("label" = Option<String>, Query, description = "KEY=VALUE, repeatable"),
        ("mac" = Option<String>, Query),
        ("page" = Option<usize>, Query, description = "from 1"),
        ("per_page" = Option<usize>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, body = DeviceList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn list_devices(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer<DeviceList> {
    let known = ["online", "pool", "label", "mac", "page", "per_page"];
    let mut f = cmd::device::Filter::default();
    let mut paging = Paging::default();
    let mut labels = Vec::new();
    for (k, v) in query(raw, &known)? {
        if paging.take(&k, &v)? {
            continue;
        }
        match k.as_str() {
            "online" => {
                f.online = Some(v.parse().map_err(|_| {
                    ApiError::bad(format!("online {}: want true or false", types::quote(&v)))
                })?)
            }
            "pool" => f.pool = Some(Name::parse("pool", &v)?),
            "mac" => f.mac = Some(Mac::parse(&v)?),
            _ => labels.push(v),
        }
    }
    f.labels = store::parse_labels(&labels)?;
    let ds = call(&st, peer, &headers, Scope::Read, move |ctx, _| {
        Ok(cmd::device::list(ctx, &f)?)
    })
    .await?;
    Ok(Json(DeviceList {
        devices: paging.of(&ds, |d| DeviceOut::from(d)),
        total: ds.len(),
    }))
}

/// One device, by id or MAC.
#[utoipa::path(get, path = "/api/v1/devices/{id}", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id, or MAC (with ':')")),
    responses((status = 200, body = DeviceOut), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn show_device(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<DeviceOut> {
    let w = which(&id)?;
    let d = call(&st, peer, &headers, Scope::Read, move |ctx, _| {
        Ok(cmd::device::one(ctx, &w)?)
    })
    .await?;
    Ok(Json(DeviceOut::from(&d)))
}

/// Enrol a device: 201 when new, 200 when it was already enrolled with the same values.
#[utoipa::path(post, path = "/api/v1/devices", security(("bearer" = [])),
    request_body = EnrolRequest,
    responses((status = 201, body = DeviceOut), (status = 200, body = DeviceOut),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
async fn enrol(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<DeviceOut>), ApiError> {
    bearer(&headers)?;
    let r: EnrolRequest = body(b)?;
    let labels = label_words(r.labels);
    let d = NewDevice {
        id: DeviceId::parse(&r.id)?,
        key: PublicKey::parse("key", &r.key)?,
        mac: r.mac.as_deref().map(Mac::parse).transpose()?,
        pool: r
            .pool
            .as_deref()
            .map(|p| Name::parse("pool", p))
            .transpose()?,
        target: r
            .target
            .as_deref()
            .map(|t| HostPort::parse("target", t, None))
            .transpose()?,
        labels: Some(store::parse_labels(&labels)?),
    };
    let (dev, outcome) = call(&st, peer, &headers, Scope::Enrol, move |ctx, _| {
        Ok(cmd::device::enrol(ctx, &d, false)?)
    })
    .await?;
    let status = match outcome {
        store::Outcome::Unchanged => StatusCode::OK,
        _ => StatusCode::CREATED,
    };
    Ok((status, Json(DeviceOut::from(&dev))))
}

/// Revoke a device: its next login fails (idempotent).
#[utoipa::path(post, path = "/api/v1/devices/{id}/revoke", security(("bearer" = [])),
    params(("id" = String, Path, description = "device id")),
    request_body = RevokeRequest,
    responses((status = 200, body = DeviceOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn revoke(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Bytes, BytesRejection>,
) -> Answer<DeviceOut> {
    bearer(&headers)?;
    let id = DeviceId::parse(&id)?;
    let r: RevokeRequest = match &b {
        Ok(bytes) if bytes.is_empty() => RevokeRequest::default(),
        _ => body(b)?,
    };
    types::check_reason(r.reason.as_deref()).map_err(|_| {
        ApiError::bad(format!(
            "reason: 1 to {} printable characters",
            types::MAX_REASON_CHARS
        ))
    })?;
    let d = call(&st, peer, &headers, Scope::Admin, move |ctx, _| {
        Ok(cmd::device::revoke_device(ctx, &id, r.reason.as_deref())?)
    })
    .await?;
    Ok(Json(DeviceOut::from(&d)))
}

/// A grant for the token's operator, and the ssh command that uses it.
#[utoipa::path(post, path = "/api/v1/grants", security(("bearer" = [])),
    request_body = GrantRequest,
    responses((status = 201, body = GrantOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn grant(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<GrantOut>), ApiError> {
    bearer(&headers)?;
    let r: GrantRequest = body(b)?;
    let w = which(&r.device)?;
    let dur = r.duration.as_deref().unwrap_or("15m");
    let secs = types::parse_duration(dur)
        .map_err(|_| {
            ApiError::bad(format!(
                "for {}: want e.g. 90s, 15m, 2h or 1d",
                types::quote(dur)
            ))
        })?
        .as_secs() as i64;
    types::check_reason(r.reason.as_deref()).map_err(|_| {
        ApiError::bad(format!(
            "reason: 1 to {} printable characters",
            types::MAX_REASON_CHARS
        ))
    })?;
    let out = call(&st, peer, &headers, Scope::Operate, move |ctx, token| {
        let op = token.operator.clone().ok_or_else(|| {
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!("token {} acts for no operator", token.name),
            )
        })?;
        let (g, ssh) = cmd::operator::grant_one(ctx, &w, &op, secs, r.reason.as_deref())?;
        Ok(GrantOut {
            grant: g.id,
            device: g.device.id.to_string(),
            operator: op.to_string(),
            expires: store::rfc3339(g.expires),
            ssh,
        })
    })
    .await?;
    Ok((StatusCode::CREATED, Json(out)))
}

/// The audit trail, oldest first, filtered and paged.
#[utoipa::path(get, path = "/api/v1/audit", security(("bearer" = [])),
    params(
        ("device" = Option<String>, Query),
        ("operator" = Option<String>, Query),
        ("since" = Option<String>, Query, description = "YYYY-MM-DD, YYYY-MM-DDTHH:MM:SSZ or a duration ago (15m, 2h, 1d)"),
        ("page" = Option<usize>, Query, description = "from 1"),
        ("per_page" = Option<usize>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, body = AuditList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn audit(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Answer<AuditList> {
    let known = ["device", "operator", "since", "page", "per_page"];
    let (mut device, mut operator, mut since) = (None, None, None);
    let mut paging = Paging::default();
    for (k, v) in query(raw, &known)? {
        if paging.take(&k, &v)? {
            continue;
        }
        match k.as_str() {
            "device" => device = Some(DeviceId::parse(&v)?),
            "operator" => operator = Some(Name::parse("operator", &v)?),
            _ => {
                since = Some(
                    cmd::audit::since(&v)
                        .map_err(|e| ApiError::bad(e.to_string().replace("--since", "since")))?,
                )
            }
        }
    }
    let es = call(&st, peer, &headers, Scope::Read, move |ctx, _| {
        Ok(cmd::audit::entries(
            ctx,
            device.as_ref(),
            operator.as_ref(),
            since,
        )?)
    })
    .await?;
    Ok(Json(AuditList {
        entries: paging.of(&es, |e| AuditOut::from(e)),
        total: es.len(),
    }))
}

/// A claim token for a batch of device images (the factory's scope).
#[utoipa::path(post, path = "/api/v1/claims", security(("bearer" = [])),
    request_body = ClaimRequest,
    responses((status = 201, body = ClaimCreated), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody)))]
async fn create_claim(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    b: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<ClaimCreated>), ApiError> {
    bearer(&headers)?;
    let r: ClaimRequest = body(b)?;
    let labels = label_words(r.labels);
    let n = cmd::claim::new_claim(
        "",
        &r.pool,
        r.uses.unwrap_or(store::DEFAULT_CLAIM_USES),
        r.expires.as_deref().unwrap_or(store::DEFAULT_CLAIM_EXPIRES),
        &labels,
        r.mac_prefix.as_deref(),
        r.target.as_deref(),
    )?;
    let (token, claim) = call(&st, peer, &headers, Scope::Enrol, move |ctx, _| {
        let (token, id) = cmd::claim::create_claim(ctx, &n)?;
        let claim = cmd::claim::list(ctx)?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "the claim vanished")
            })?;
        Ok((token, claim))
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ClaimCreated {
            token,
            claim: ClaimOut::from(&claim),
        }),
    ))
}

/// Every claim, newest first (never a token).
#[utoipa::path(get, path = "/api/v1/claims", security(("bearer" = [])),
    responses((status = 200, body = ClaimList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn list_claims(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Answer<ClaimList> {
    let cs = call(&st, peer, &headers, Scope::Read, |ctx, _| {
        Ok(cmd::claim::list(ctx)?)
    })
    .await?;
    Ok(Json(ClaimList {
        claims: cs.iter().map(ClaimOut::from).collect(),
    }))
}

/// Revoke a claim: refused from its next use on (idempotent).
#[utoipa::path(post, path = "/api/v1/claims/{id}/revoke", security(("bearer" = [])),
    params(("id" = String, Path, description = "claim id")),
    responses((status = 200, body = ClaimOut), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn revoke_claim(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Answer<ClaimOut> {
    bearer(&headers)?;
    let id = Name::parse("claim", &id)?;
    let c = call(&st, peer, &headers, Scope::Enrol, move |ctx, _| {
        cmd::claim::revoke(ctx, &id)?;
        cmd::claim::list(ctx)?
            .into_iter()
            .find(|c| c.id == id)
            .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("unknown claim {id}")))
    })
    .await?;
    Ok(Json(ClaimOut::from(&c)))
}

/// Pools with their device counts.
#[utoipa::path(get, path = "/api/v1/pools", security(("bearer" = [])),
    responses((status = 200, body = PoolList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn pools(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Answer<PoolList> {
    let ps = call(&st, peer, &headers, Scope::Read, |ctx, _| {
        Ok(ctx.admin(store::pools)?)
    })
    .await?;
    Ok(Json(PoolList {
        pools: ps.iter().map(PoolOut::from).collect(),
    }))
}

/// Jails.
#[utoipa::path(get, path = "/api/v1/jails", security(("bearer" = [])),
    responses((status = 200, body = JailList), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn jails(
    State(st): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Answer<JailList> {
    let js = call(&st, peer, &headers, Scope::Read, |ctx, _| {
        Ok(ctx.admin(store::jails)?)
    })
    .await?;
    Ok(Json(JailList {
        jails: js.iter().map(JailOut::from).collect(),
    }))
}

// ---- the OpenAPI document -------------------------------------------------------------

/// The bearer token scheme every `/api/v1` route but this document uses.
struct Bearer;

impl utoipa::Modify for Bearer {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The document at `/api/v1/openapi.json`, generated from the routes above.
#[derive(OpenApi)]
#[openapi(
    info(title = "warden", description = "The fleet registry's HTTP API (v1). Tokens: `warden token create NAME --scope read|enrol|operate|admin`."),
    paths(healthz, openapi, list_devices, show_device, enrol, revoke, grant, create_claim, list_claims, revoke_claim, audit, pools, jails),
    modifiers(&Bearer)
)]
pub struct ApiDoc;
