//! The web view's pages, rendered by maud: every value goes through maud's
//! escaping (text and attributes alike); free text from the registry (a
//! reason, an audit detail) is first put on one line as the CLI prints it.
//! No script, no inline style: the stylesheet is /static/style.css.

use super::{
    ACCESS_SECS, AUDIT_PER_PAGE, AuditQuery, CSRF_FIELD, DEVICE_AUDIT_ROWS, DEVICES_PER_PAGE,
    FleetQuery, Session,
};
use crate::cmd::view::{DeviceView, Fleet, FleetPage};
use crate::store::{AuditEntry, Device, Scope};
use crate::types::one_line;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use maud::{DOCTYPE, Markup, html};
use std::collections::BTreeMap;

/// A page as an HTML answer.
pub fn html(m: Markup) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        m.into_string(),
    )
}

/// A grant just made: what the device page shows after "request access".
pub struct Granted {
    pub id: i64,
    pub operator: String,
    pub expires: String,
    pub ssh: String,
}

fn text(s: &Option<String>) -> String {
    s.as_deref().map_or_else(|| "-".into(), one_line)
}

fn layout(title: &str, s: Option<&Session>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · warden" }
                link rel="stylesheet" href="/static/style.css";
            }
            body {
                header {
                    @if let Some(s) = s {
                        nav aria-label="main" {
                            a href="/" { "Fleet" }
                            a href="/audit" { "Audit" }
                            a href="/jails" { "Jails and pools" }
                        }
                        form.signout method="post" action="/signout" {
                            span { "token " (s.token.name) " (" (s.token.scope) ")" }
                            input type="hidden" name=(CSRF_FIELD) value=(s.csrf);
                            button type="submit" { "Sign out" }
                        }
                    } @else {
                        span.brand { "warden" }
                    }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

pub fn error(status: StatusCode, msg: &str) -> Markup {
    layout(
        &format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
        None,
        html! {
            p.error role="alert" { (msg) }
            p { a href="/" { "Back to the fleet" } " · " a href="/signin" { "Sign in" } }
        },
    )
}

pub fn signin(why: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        html! {
            @if let Some(w) = why {
                p.error role="alert" { (w) }
            }
            form method="post" action="/signin" {
                label for="token" { "API token (warden token create NAME --scope read|operate|admin)" }
                input #token type="password" name="token" autocomplete="off" required autofocus;
                button type="submit" { "Sign in" }
            }
            p { "The token's scope decides what you see and may do. It is kept in a cookie this browser sends only to this server." }
        },
    )
}

fn state(d: &Device) -> (&'static str, &'static str) {
    if d.revoked {
        ("revoked", "st-revoked")
    } else if d.online.is_some() {
        ("online", "st-online")
    } else {
        ("offline", "st-offline")
    }
}

fn since(d: &Device) -> Option<String> {
    if d.online.is_some() {
        d.online_since.clone()
    } else {
        d.revoked_at.clone().or_else(|| d.offline_since.clone())
    }
}

fn labels(d: &Device) -> Markup {
    html! {
        @for (k, v) in &d.labels {
            span.label { (k) "=" (v) } " "
        }
    }
}

/// Counts per pool (all, online, offline, revoked) and online per jail.
fn counts(f: &Fleet) -> (BTreeMap<String, [usize; 4]>, BTreeMap<String, usize>) {
    let mut pools: BTreeMap<String, [usize; 4]> = f
        .pools
        .iter()
        .map(|p| (p.name.to_string(), [0; 4]))
        .collect();
    let mut jails: BTreeMap<String, usize> =
        f.jails.iter().map(|j| (j.name.to_string(), 0)).collect();
    for ((pool, online, revoked), &n) in &f.presence {
        let c = pools.entry(pool.to_string()).or_default();
        c[0] += n;
        match (revoked, online) {
            (true, _) => c[3] += n,
            (false, Some(j)) => {
                c[1] += n;
                *jails.entry(j.to_string()).or_default() += n;
            }
            (false, None) => c[2] += n,
        }
    }
    (pools, jails)
}

pub fn fleet(s: &Session, fp: &FleetPage, q: &FleetQuery) -> Markup {
    let f = &fp.fleet;
    let (pools, jails) = counts(f);
    let all: usize = pools.values().map(|c| c[0]).sum();
    let total = fp.page.total;
    let pages = total.div_ceil(DEVICES_PER_PAGE).max(1);
    let page = q.page.min(pages);
    let rows = &fp.page.devices;
    let body = html! {
        section aria-labelledby="counts" {
            h2 #counts { "At a glance" }
            ul.counts {
                @for (p, c) in &pools {
                    li { "pool " a href=(FleetQuery { pool: p.clone(), page: 1, ..Default::default() }.url(1)) { (p) } ": "
                        (c[0]) " devices, " (c[1]) " online, " (c[2]) " offline"
                        @if c[3] > 0 { ", " (c[3]) " revoked" } }
                }
                @for (j, n) in &jails {
                    li { "jail " a href=(FleetQuery { jail: j.clone(), page: 1, ..Default::default() }.url(1)) { (j) } ": " (n) " online" }
                }
            }
        }
        form.filters method="get" action="/" role="search" {
            div {
                label for="q" { "Search: id, MAC (any form) or label K=V" }
                input #q type="search" name="q" value=(q.q);
            }
            div {
                label for="state" { "State" }
                select #state name="state" {
                    option value="" selected[q.state.is_empty()] { "any" }
                    option value="online" selected[q.state == "online"] { "online" }
                    option value="offline" selected[q.state == "offline"] { "offline" }
                }
            }
            div {
                label for="pool" { "Pool" }
                select #pool name="pool" {
                    option value="" selected[q.pool.is_empty()] { "any" }
                    @for p in &f.pools {
                        option value=(p.name) selected[q.pool == p.name.as_str()] { (p.name) }
                    }
                }
            }
            div {
                label for="jail" { "Online at jail" }
                select #jail name="jail" {
                    option value="" selected[q.jail.is_empty()] { "any" }
                    @for j in &f.jails {
                        option value=(j.name) selected[q.jail == j.name.as_str()] { (j.name) }
                    }
                }
            }
            button type="submit" { "Show" }
        }
        p #shown { (total) " of " (all) " devices; page " (page) " of " (pages) }
        table.devices {
            caption { "Devices" }
            thead { tr {
                th scope="col" { "Id" } th scope="col" { "MAC" } th scope="col" { "Labels" }
                th scope="col" { "Pool" } th scope="col" { "State" } th scope="col" { "Jail" }
                th scope="col" { "Since" } th scope="col" { "Last seen" }
            } }
            tbody {
                @for d in rows {
                    @let (st, class) = state(d);
                    tr {
                        td { a href={ "/devices/" (d.id) } { (d.id) } }
                        td.mono { @if let Some(m) = &d.mac { (m) } @else { "-" } }
                        td { (labels(d)) }
                        td { (d.pool) }
                        td class=(class) { (st) }
                        td { @if let Some(j) = &d.online { (j) } @else { "-" } }
                        td { (text(&since(d))) }
                        td { (text(&d.last_seen)) }
                    }
                }
            }
        }
        nav.pager aria-label="pages" {
            @if page > 1 { a rel="prev" href=(q.url(page - 1)) { "Previous page" } }
            @if page < pages { a rel="next" href=(q.url(page + 1)) { "Next page" } }
        }
    };
    layout("Fleet", Some(s), body)
}

fn audit_table(caption: &str, es: &[&AuditEntry]) -> Markup {
    html! {
        table.audit {
            caption { (caption) }
            thead { tr {
                th scope="col" { "At" } th scope="col" { "Action" } th scope="col" { "Device" }
                th scope="col" { "Operator" } th scope="col" { "By" } th scope="col" { "From" }
                th scope="col" { "Reason" } th scope="col" { "Detail" }
            } }
            tbody {
                @for e in es {
                    tr {
                        td { (e.at) } td { (one_line(&e.action)) } td { (text(&e.device)) }
                        td { (text(&e.operator)) } td { (one_line(&e.actor)) } td { (one_line(&e.origin)) }
                        td { (text(&e.reason)) } td { (text(&e.detail)) }
                    }
                }
            }
        }
    }
}

pub fn device(s: &Session, v: &DeviceView, granted: Option<&Granted>) -> Markup {
    let d = &v.device;
    let (st, class) = state(d);
    let now = crate::store::now();
    let trail: Vec<&AuditEntry> = v.audit.iter().rev().take(DEVICE_AUDIT_ROWS).collect();
    let body = html! {
        @if let Some(g) = granted {
            section.granted aria-labelledby="granted" role="status" {
                h2 #granted { "Access granted" }
                p { "Grant " (g.id) " for operator " (g.operator) " until " (g.expires) ". Run:" }
                pre { code #ssh { (g.ssh) } }
            }
        }
        dl.details {
            dt { "Id" } dd #device-id { (d.id) }
            dt { "State" } dd #state class=(class) { (st) }
            dt { "Jail" } dd { @if let Some(j) = &d.online { (j) } @else { "-" } }
            dt { "Since" } dd { (text(&since(d))) }
            dt { "Last seen" } dd { (text(&d.last_seen)) }
            dt { "MAC" } dd.mono { @if let Some(m) = &d.mac { (m) } @else { "-" } }
            dt { "Labels" } dd { (labels(d)) }
            dt { "Pool, port" } dd { (d.pool) ", " (d.port) }
            dt { "Target" } dd { (d.target) }
            dt { "Enrolled" } dd { (d.enrolled) }
            dt { "Tunnel key" } dd.mono { (d.key.kind) " " (d.fingerprint) }
            dt { "Host key" }
            @if v.host_keys.is_empty() {
                dd { "not recorded (the operator's ssh trusts the device's own sshd key on first use, under HostKeyAlias " (d.id) ")" }
            } @else {
                dd.mono #host-keys {
                    @for k in &v.host_keys { (k.kind) " " (k.fingerprint) br; }
                }
            }
        }
        h2 { "Jails of pool " (d.pool) }
        ul {
            @for j in &v.jails {
                li { (j.name) " at " (j.address) ", host key " span.mono { (j.host_key.fingerprint) } }
            }
        }
        @if s.may(Scope::Operate) && !d.revoked {
            form.access method="post" action={ "/devices/" (d.id) "/access" } {
                h2 { "Request access for " (ACCESS_SECS / 60) " minutes" }
                input type="hidden" name=(CSRF_FIELD) value=(s.csrf);
                label for="reason" { "Reason (shown in the audit trail)" }
                input #reason type="text" name="reason" maxlength=(crate::types::MAX_REASON_CHARS);
                button type="submit" { "Request access" }
            }
        }
        h2 { "Grants" }
        @if v.grants.is_empty() { p { "None." } } @else {
            table.grants {
                caption { "Grants, newest first" }
                thead { tr { th scope="col" { "Grant" } th scope="col" { "Operator" } th scope="col" { "Granted" }
                    th scope="col" { "Until" } th scope="col" { "Live" } th scope="col" { "Reason" } } }
                tbody {
                    @for g in &v.grants {
                        tr { td { (g.id) } td { (g.operator) } td { (g.granted) } td { (g.expires) }
                            td { @if g.expires_at > now { "yes" } @else { "no" } } td { (text(&g.reason)) } }
                    }
                }
            }
        }
        h2 { "Audit trail" }
        (audit_table("This device's audit trail, newest first", &trail))
        p { a href={ "/audit?device=" (d.id) } { "The whole trail of " (d.id) } }
    };
    layout(&format!("Device {}", d.id), Some(s), body)
}

pub fn audit(s: &Session, es: &[AuditEntry], q: &AuditQuery) -> Markup {
    let pages = es.len().div_ceil(AUDIT_PER_PAGE).max(1);
    let page = q.page.min(pages);
    let rows: Vec<&AuditEntry> = es
        .iter()
        .skip((page - 1) * AUDIT_PER_PAGE)
        .take(AUDIT_PER_PAGE)
        .collect();
    let body = html! {
        form.filters method="get" action="/audit" role="search" {
            div { label for="device" { "Device id" } input #device type="text" name="device" value=(q.device); }
            div { label for="operator" { "Operator" } input #operator type="text" name="operator" value=(q.operator); }
            div { label for="action" { "Action (e.g. grant, enroll, revoke)" } input #action type="text" name="action" value=(q.action); }
            div { label for="since" { "Since (YYYY-MM-DD, time or 2h)" } input #since type="text" name="since" value=(q.since); }
            button type="submit" { "Show" }
        }
        p { (es.len()) " entries; page " (page) " of " (pages) }
        (audit_table("Audit trail, newest first", &rows))
        nav.pager aria-label="pages" {
            @if page > 1 { a rel="prev" href=(q.url(page - 1)) { "Previous page" } }
            @if page < pages { a rel="next" href=(q.url(page + 1)) { "Next page" } }
        }
    };
    layout("Audit", Some(s), body)
}

pub fn jails(s: &Session, f: &Fleet) -> Markup {
    let (pools, online) = counts(f);
    let body = html! {
        table.pools {
            caption { "Pools" }
            thead { tr { th scope="col" { "Pool" } th scope="col" { "Ports" } th scope="col" { "Port use" }
                th scope="col" { "Online" } th scope="col" { "Reason required" } th scope="col" { "Host CA" } } }
            tbody {
                @for p in &f.pools {
                    @let c = pools.get(p.name.as_str()).copied().unwrap_or_default();
                    tr {
                        td { (p.name) } td { (p.ports) }
                        td { (p.devices) " of " (p.range.size()) }
                        td { (c[1]) " of " (c[0] - c[3]) }
                        td { @if p.require_reason { "yes" } @else { "no" } }
                        td.mono { @if let Some(k) = &p.host_ca { (k.fingerprint) } @else { "-" } }
                    }
                }
            }
        }
        table.jails {
            caption { "Jails" }
            thead { tr { th scope="col" { "Jail" } th scope="col" { "Pool" } th scope="col" { "Address" }
                th scope="col" { "Tunnel user" } th scope="col" { "Operator user" } th scope="col" { "Online" }
                th scope="col" { "Host key" } } }
            tbody {
                @for j in &f.jails {
                    tr {
                        td { (j.name) } td { (j.pool) } td { (j.address) } td { (j.user) } td { (j.operator_user) }
                        td { (online.get(j.name.as_str()).copied().unwrap_or(0)) }
                        td.mono { (j.host_key.kind) " " (j.host_key.fingerprint) }
                    }
                }
            }
        }
    };
    layout("Jails and pools", Some(s), body)
}
