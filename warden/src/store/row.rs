//! Rows decoded by column name into the types of types.rs, in one place.
//!
//! Nothing read from the registry is trusted: whoever can write one row (a
//! jail host's account, a stolen password, plain SQL) must not reach an sshd
//! drop-in, a device file, a shell or a key line. Every value is parsed here,
//! as the type it is, on its way out of the database; a row that fails is an
//! error naming the table, the column and the row's key, and is never used.

use crate::error::Error;
use crate::store::conn::{Row, Value};
use crate::types::{
    self, DeviceId, HostPort, Mac, Name, PortRange, PublicKey, UserName, port_from_i64, quote,
};
use std::collections::BTreeMap;

/// Labels per device.
pub const MAX_LABELS: usize = 16;
/// Length of a label key or value.
pub const MAX_LABEL_CHARS: usize = 128;
/// The longest free text (a reason, an audit detail) shown from a row.
pub const MAX_TEXT_CHARS: usize = 4096;

/// A row being decoded: which table it came from and its key, for errors.
pub struct Rd<'a> {
    table: &'static str,
    key: String,
    row: &'a Row,
}

impl<'a> Rd<'a> {
    /// `key_col` names the row in errors (its value is quoted, so a hostile
    /// key cannot split the message).
    pub fn new(table: &'static str, key_col: &str, row: &'a Row) -> Self {
        let key = match row.get(key_col) {
            Some(Value::Text(t)) => quote(&t.chars().take(80).collect::<String>()),
            Some(Value::Int(i)) => i.to_string(),
            _ => "(no key)".to_string(),
        };
        Rd { table, key, row }
    }

    /// The error for a value that fails its check.
    pub fn bad(&self, col: &str, why: impl std::fmt::Display) -> Error {
        Error::runtime(format!(
            "registry table {} row {}: column {col}: {why}; the row is not used (fix or remove it with warden)",
            self.table, self.key
        ))
    }

    fn val(&self, col: &str) -> Result<&'a Value, Error> {
        self.row
            .get(col)
            .ok_or_else(|| self.bad(col, "missing from the query (a bug)"))
    }

    pub fn opt_int(&self, col: &str) -> Result<Option<i64>, Error> {
        match self.val(col)? {
            Value::Null => Ok(None),
            Value::Int(i) => Ok(Some(*i)),
            Value::Text(_) => Err(self.bad(col, "text where a number belongs")),
        }
    }

    pub fn int(&self, col: &str) -> Result<i64, Error> {
        self.opt_int(col)?
            .ok_or_else(|| self.bad(col, "empty where a number belongs"))
    }

    /// Set (not NULL): revoked, disabled.
    pub fn is_set(&self, col: &str) -> Result<bool, Error> {
        Ok(self.opt_int(col)?.is_some())
    }

    /// A 0/1 flag.
    pub fn flag(&self, col: &str) -> Result<bool, Error> {
        match self.int(col)? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(self.bad(col, format!("{n} is not 0 or 1"))),
        }
    }

    pub fn opt_text(&self, col: &str) -> Result<Option<&'a str>, Error> {
        match self.val(col)? {
            Value::Null => Ok(None),
            Value::Text(t) => Ok(Some(t.as_str())),
            Value::Int(_) => Err(self.bad(col, "a number where text belongs")),
        }
    }

    pub fn text(&self, col: &str) -> Result<&'a str, Error> {
        self.opt_text(col)?
            .ok_or_else(|| self.bad(col, "empty where text belongs"))
    }

    /// Free text (a reason, an audit detail): bounded; shown through
    /// [`types::one_line`] by whoever prints it.
    pub fn opt_free_text(&self, col: &str) -> Result<Option<String>, Error> {
        Ok(self
            .opt_text(col)?
            .map(|t| t.chars().take(MAX_TEXT_CHARS).collect()))
    }

    /// Runs a parser of types.rs on a column, naming the row if it fails.
    fn parsed<T>(
        &self,
        col: &str,
        parse: impl FnOnce(&str) -> Result<T, Error>,
    ) -> Result<T, Error> {
        parse(self.text(col)?).map_err(|e| self.bad(col, e))
    }

    fn opt_parsed<T>(
        &self,
        col: &str,
        parse: impl FnOnce(&str) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        match self.opt_text(col)? {
            None => Ok(None),
            Some(t) => parse(t).map(Some).map_err(|e| self.bad(col, e)),
        }
    }

    pub fn device_id(&self, col: &str) -> Result<DeviceId, Error> {
        self.parsed(col, DeviceId::parse)
    }

    pub fn name(&self, col: &str) -> Result<Name, Error> {
        self.parsed(col, |t| Name::parse(col, t))
    }

    pub fn opt_name(&self, col: &str) -> Result<Option<Name>, Error> {
        self.opt_parsed(col, |t| Name::parse(col, t))
    }

    pub fn opt_mac(&self, col: &str) -> Result<Option<Mac>, Error> {
        self.opt_parsed(col, |t| {
            // Stored normalised: anything else was not written by warden.
            let m = Mac::parse(t)?;
            if m.as_str() == t {
                Ok(m)
            } else {
                Err(Error::invalid(format!("{} is not stored form", quote(t))))
            }
        })
    }

    pub fn user(&self, col: &str) -> Result<UserName, Error> {
        self.parsed(col, |t| UserName::parse(col, t))
    }

    pub fn host_port(&self, col: &str, default_port: Option<u16>) -> Result<HostPort, Error> {
        self.parsed(col, |t| HostPort::parse(col, t, default_port))
    }

    /// A public key stored as one `TYPE BASE64` column.
    pub fn key_line(&self, col: &str) -> Result<PublicKey, Error> {
        self.parsed(col, |t| PublicKey::parse(col, t))
    }

    pub fn opt_key_line(&self, col: &str) -> Result<Option<PublicKey>, Error> {
        self.opt_parsed(col, |t| PublicKey::parse(col, t))
    }

    /// A public key stored as type and base64 columns, whose stored
    /// fingerprint (the column sshd's `%f` is looked up by) must be its own.
    pub fn key(&self, type_col: &str, b64_col: &str, fp_col: &str) -> Result<PublicKey, Error> {
        let line = format!("{} {}", self.text(type_col)?, self.text(b64_col)?);
        let key = PublicKey::parse(b64_col, &line).map_err(|e| self.bad(b64_col, e))?;
        let fp = self.text(fp_col)?;
        if key.fingerprint != fp {
            return Err(self.bad(
                fp_col,
                format!("{} is not the key's ({})", quote(fp), key.fingerprint),
            ));
        }
        Ok(key)
    }

    pub fn fingerprint(&self, col: &str) -> Result<String, Error> {
        let fp = self.text(col)?;
        if types::is_fingerprint(fp) {
            Ok(fp.to_string())
        } else {
            Err(self.bad(col, format!("{} is not SHA256:...", quote(fp))))
        }
    }

    /// A port number: 1-65535, never truncated.
    pub fn port(&self, col: &str) -> Result<u16, Error> {
        let n = self.int(col)?;
        port_from_i64(n).ok_or_else(|| self.bad(col, format!("{n} is not a port (1-65535)")))
    }

    /// A pool's range from its two columns, checked as `--ports` is.
    pub fn port_range(&self, lo_col: &str, hi_col: &str) -> Result<PortRange, Error> {
        let (lo, hi) = (self.port(lo_col)?, self.port(hi_col)?);
        PortRange::parse(&format!("{lo}-{hi}")).map_err(|e| self.bad(lo_col, e))
    }

    /// A device's port, which must lie in its pool's range.
    pub fn port_in(&self, col: &str, range: PortRange) -> Result<u16, Error> {
        let p = self.port(col)?;
        if range.contains(p) {
            Ok(p)
        } else {
            Err(self.bad(col, format!("port {p} is outside its pool's range {range}")))
        }
    }

    /// Labels stored as a JSON object, each checked as `--label` is.
    pub fn labels(&self, col: &str) -> Result<BTreeMap<String, String>, Error> {
        let raw: BTreeMap<String, String> =
            serde_json::from_str(self.text(col)?).map_err(|e| self.bad(col, e))?;
        let items: Vec<String> = raw.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parse_labels(&items).map_err(|e| self.bad(col, e))
    }
}

/// Parses `K=V` labels (from `--label`, a request, or a stored row).
pub fn parse_labels(items: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for s in items {
        let bad = |why: &str| Error::invalid(format!("label {}: {why}", quote(s)));
        let (k, v) = s.split_once('=').ok_or_else(|| bad("want KEY=VALUE"))?;
        if k.is_empty()
            || k.len() > MAX_LABEL_CHARS
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
        {
            return Err(bad("key: want 1-128 of A-Z a-z 0-9 . _ - /"));
        }
        if v.len() > MAX_LABEL_CHARS || v.chars().any(char::is_control) {
            return Err(bad("value: up to 128 printable characters"));
        }
        out.insert(k.to_string(), v.to_string());
    }
    if out.len() > MAX_LABELS {
        return Err(Error::invalid(format!("more than {MAX_LABELS} labels")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        let l = parse_labels(&["site=berlin".into(), "hw=pi0".into()]).unwrap();
        assert_eq!(l["site"], "berlin");
        for bad in ["x", "=v", "a b=c", "k=v\n"] {
            assert!(parse_labels(&[bad.into()]).is_err(), "{bad:?}");
        }
    }
}
