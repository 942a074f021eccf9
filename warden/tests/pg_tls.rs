//! TLS to PostgreSQL: `sslmode=verify-full` with `sslrootcert=FILE` against a
//! throw-away cluster with `ssl=on` whose pg_hba admits TCP clients over TLS
//! only, with a test CA made by the openssl CLI. The right CA and host name
//! connect; a wrong CA or a wrong name is refused with one clear line; a host
//! that is not this machine without TLS is refused before anything connects.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// `warden --db URL ARGS`: (exit code, stdout, stderr).
fn warden(url: &str, args: &[&str]) -> (i32, String, String) {
    split(
        Command::new(warden_bin())
            .env_remove("WARDEN_DB")
            .env_remove("PGPASSWORD")
            .env("HOME", "/nonexistent")
            .arg("--db")
            .arg(url)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap(),
    )
}

fn openssl(args: &[&str], dir: &Path) {
    run_ok(Command::new("openssl").args(args).current_dir(dir));
}

/// A CA (`NAME.pem`, `NAME.key`) in `dir`.
fn ca(dir: &Path, name: &str) {
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-subj",
            &format!("/CN=warden test {name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
        dir,
    );
}

/// A server certificate for `localhost` only (no IP address), signed by CA `ca`.
fn server_cert(dir: &Path, ca: &str) {
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        dir,
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "2",
            "-extfile",
            "server.ext",
        ],
        dir,
    );
}

struct TlsCluster {
    dir: PathBuf,
    port: u16,
}

/// One cluster per test binary with `ssl=on`: the server key 0600 and owned by
/// postgres (the server refuses it otherwise), TCP clients admitted over TLS
/// only, the owner over the private socket. Stopped and removed when the test
/// process is gone.
fn tls_cluster() -> &'static TlsCluster {
    static C: OnceLock<TlsCluster> = OnceLock::new();
    C.get_or_init(|| {
        require_root();
        let bin = pg_bin();
        let dir = std::env::temp_dir().join(format!("warden-pgtls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        let certs = dir.join("certs");
        std::fs::create_dir_all(&certs).unwrap();
        ca(&certs, "ca");
        ca(&certs, "other-ca");
        server_cert(&certs, "ca");
        run_ok(
            Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir),
        );
        run_ok(
            Command::new("chmod")
                .arg("0600")
                .arg(certs.join("server.key")),
        );
        pg_initdb(&bin, &dir);
        std::fs::write(
            dir.join("data/pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("data/postgresql.conf"))
            .unwrap();
        use std::io::Write;
        write!(
            conf,
            "\nssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            certs.join("server.crt").display(),
            certs.join("server.key").display()
        )
        .unwrap();
        let port = pg_start(&bin, &dir, "");
        run_ok(
            as_postgres(&bin, "psql")
                .args(["-h", dir.join("sock").to_str().unwrap()])
                .args(["-p", &port.to_string(), "-U", "postgres", "-c"])
                .arg("CREATE DATABASE reg"),
        );
        TlsCluster { dir, port }
    })
}

impl TlsCluster {
    fn cert(&self, name: &str) -> String {
        self.dir.join("certs").join(name).display().to_string()
    }
    /// A verify-full URL for `host` (and `extra` parameters) trusting CA `ca`.
    fn url(&self, host: &str, ca: &str, extra: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/reg?sslmode=verify-full&sslrootcert={}{extra}",
            self.port,
            self.cert(&format!("{ca}.pem"))
        )
    }
}

#[test]
fn the_right_ca_and_host_name_connect_over_tls() {
    let c = tls_cluster();
    let url = c.url("localhost", "ca", "");
    let (code, _, err) = warden(&url, &["pool", "add", "p", "--ports", "41000-41009"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = warden(&url, &["pool", "ls"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("41000-41009"), "{out}");
    // The server admits TCP clients over TLS only: the same URL without
    // TLS is turned away, so the connections above were encrypted.
    let clear = format!(
        "postgres://postgres@localhost:{}/reg?sslmode=disable",
        c.port
    );
    let (code, _, err) = warden(&clear, &["pool", "ls"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("no encryption"), "{err}");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let c = tls_cluster();
    let (code, out, err) = warden(&c.url("localhost", "other-ca", ""), &["pool", "ls"]);
    assert_eq!(
        (code, out.as_str(), err.lines().count()),
        (1, "", 1),
        "{err}"
    );
    assert!(
        err.contains(&format!("registry localhost:{} unreachable", c.port))
            && err.contains("UnknownIssuer")
            && err.contains("other-ca.pem"),
        "{err}"
    );
}

#[test]
fn a_host_name_the_certificate_does_not_name_is_refused() {
    let c = tls_cluster();
    // The server's own address, under names its certificate does not hold:
    // db.test (its address given by hostaddr, no lookup) and the bare IP.
    for url in [
        c.url("db.test", "ca", "&hostaddr=127.0.0.1"),
        c.url("127.0.0.1", "ca", ""),
    ] {
        let (code, out, err) = warden(&url, &["pool", "ls"]);
        assert_eq!(
            (code, out.as_str(), err.lines().count()),
            (1, "", 1),
            "{url}: {err}"
        );
        assert!(
            err.contains("unreachable") && err.contains("not valid for name"),
            "{url}: {err}"
        );
    }
}

#[test]
fn verify_full_never_falls_back_to_clear_text() {
    // The usual test cluster has no TLS at all.
    let plain = pg();
    let c = tls_cluster();
    let url = format!(
        "postgres://postgres@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        plain.port,
        c.cert("ca.pem")
    );
    let (code, _, err) = warden(&url, &["pool", "ls"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("TLS"), "{err}");
}

#[test]
fn a_host_elsewhere_without_tls_is_refused_before_connecting() {
    // Nothing listens there and nothing is sent: the URL is refused as read.
    for (url, host) in [
        ("postgres://warden@10.1.2.3/registry", "10.1.2.3:5432"),
        (
            "postgres://warden@db.example:6432/registry",
            "db.example:6432",
        ),
        (
            "postgres://warden@localhost:5432/registry?hostaddr=10.1.2.3",
            "localhost:5432 (hostaddr 10.1.2.3)",
        ),
    ] {
        for args in [
            &["pool", "ls"][..],
            &["authorized-keys", "--jail", "j", "u", "SHA256:x"],
        ] {
            let (code, out, err) = warden(url, args);
            let want = if args[0] == "authorized-keys" { 0 } else { 2 };
            assert_eq!(
                (code, out.as_str(), err.lines().count()),
                (want, "", 1),
                "{url}: {err}"
            );
            assert!(
                err.contains(&format!("--db {host}: not this machine"))
                    && err.contains("sslmode=verify-full")
                    && err.contains("sslmode=disable"),
                "{url}: {err}"
            );
        }
    }
    // A wrong CA file is said so, naming the host and the file.
    let c = tls_cluster();
    let missing = "/nonexistent/ca.pem";
    let url = format!(
        "postgres://postgres@localhost:{}/reg?sslmode=verify-full&sslrootcert={missing}",
        c.port
    );
    let (code, _, err) = warden(&url, &["pool", "ls"]);
    assert_eq!((code, err.lines().count()), (1, 1), "{err}");
    assert!(err.contains("localhost") && err.contains(missing), "{err}");
}
