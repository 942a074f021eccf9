#!/usr/bin/env python3
"""warden at fleet size: 10,000 devices imported, then

  * `warden import` wall time (contract: <= 30 s),
  * `warden authorized-keys` wall time per call, p50/p99, as sshd runs it
    (fork + exec + one indexed lookup + exit), on SQLite and on PostgreSQL
    over loopback (contract: p99 <= 5 ms SQLite, <= 20 ms PostgreSQL),
  * sshd's login time for a device key with warden as AuthorizedKeysCommand
    against the same sshd reading a plain authorized_keys file of one line
    (like for like: same sshd binary, same key, same host key, same run).

Run as root from the repository (after `cargo build --release -p warden`):

    python3 benches/fleet_bench.py [--devices 10000] [--calls 500] [--logins 30]

It starts its own throw-away PostgreSQL cluster and sshds on loopback and
removes them afterwards. Figures are printed with date, machine and versions.
"""
import argparse
import base64
import glob
import hashlib
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def fake_key():
    """A syntactically valid ed25519 public key (32 random bytes) and its fingerprint."""
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + os.urandom(32)
    fp = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return "ssh-ed25519 " + base64.b64encode(blob).decode(), fp


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def wait_port(port, deadline=30.0):
    end = time.time() + deadline
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"port {port} did not answer within {deadline}s")


class Pg:
    """A throw-away PostgreSQL cluster on a free loopback port."""

    def __init__(self, tmp):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
        if not bins:
            raise SystemExit("no PostgreSQL server: run scripts/test-setup.sh")
        self.bin = bins[-1]
        self.dir = os.path.join(tmp, "pg")
        os.makedirs(os.path.join(self.dir, "sock"))
        run(["chown", "-R", "postgres:postgres", self.dir])
        self.port = free_port()
        # A test CA and a server certificate for localhost: warden connects
        # with sslmode=verify-full, as a jail host across a network would.
        tls = os.path.join(self.dir, "tls")
        os.makedirs(tls)
        self.ca = os.path.join(tls, "ca.pem")
        run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{tls}/ca.key", "-out", self.ca, "-days", "2", "-subj", "/CN=bench CA"])
        run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", f"{tls}/server.key", "-out", f"{tls}/server.csr", "-subj", "/CN=localhost"])
        with open(f"{tls}/ext", "w") as f:
            f.write("subjectAltName=DNS:localhost\n")
        run(["openssl", "x509", "-req", "-in", f"{tls}/server.csr", "-CA", self.ca, "-CAkey", f"{tls}/ca.key",
             "-CAcreateserial", "-out", f"{tls}/server.pem", "-days", "2", "-extfile", f"{tls}/ext"])
        run(["chown", "-R", "postgres:postgres", tls])
        os.chmod(f"{tls}/server.key", 0o600)
        self.pg("initdb", "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync", "-D", f"{self.dir}/data")
        self.pg("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-w", "-o",
                f"-p {self.port} -k {self.dir}/sock -c listen_addresses=127.0.0.1 -c ssl=on "
                f"-c ssl_cert_file={tls}/server.pem -c ssl_key_file={tls}/server.key", "start")
        run(["runuser", "-u", "postgres", "--", f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-c", "CREATE DATABASE warden"])
        run(["runuser", "-u", "postgres", "--", f"{self.bin}/psql", "-h", "127.0.0.1", "-p", str(self.port),
             "-U", "postgres", "-c", "CREATE DATABASE warden_tls"])
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/warden"
        self.tls_url = (f"postgres://postgres@localhost:{self.port}/warden_tls"
                        f"?sslmode=verify-full&sslrootcert={self.ca}")
        self.version = run(["runuser", "-u", "postgres", "--", f"{self.bin}/postgres", "--version"]).stdout.strip()

    def pg(self, tool, *args):
        return run(["runuser", "-u", "postgres", "--", f"{self.bin}/{tool}", *args])

    def stop(self):
        subprocess.run(["runuser", "-u", "postgres", "--", f"{self.bin}/pg_ctl", "-D", f"{self.dir}/data",
                        "-m", "immediate", "stop"], capture_output=True)


def install_warden(src, name):
    """Copies warden to a root-owned 0755 directory under /run: sshd runs an
    AuthorizedKeysCommand only from a path no one else may write (not /tmp).
    Returns (directory, binary)."""
    bindir = f"/run/{name}.{os.getpid()}"
    os.makedirs(bindir, mode=0o755, exist_ok=True)
    os.chmod(bindir, 0o755)
    binary = os.path.join(bindir, "warden")
    shutil.copy(src, binary)
    os.chmod(binary, 0o755)
    return bindir, binary


def warden(binary, db, *args):
    return run([binary, "--db", db, *args])


def measure_authorized_keys(binary, db, jail, user, fps, calls):
    times = []
    picks = random.Random(7).choices(fps, k=calls)
    for fp in picks:
        t0 = time.perf_counter()
        p = subprocess.run([binary, "--db", db, "authorized-keys", "--jail", jail, user, fp],
                           capture_output=True, text=True)
        times.append((time.perf_counter() - t0) * 1000.0)
        if p.returncode != 0 or not p.stdout.startswith("restrict,"):
            raise SystemExit(f"authorized-keys refused an enrolled key: {p.stderr.strip()}")
    return times


def start_sshd(tmp, name, config_lines):
    cfg = os.path.join(tmp, f"{name}.sshd_config")
    with open(cfg, "w") as f:
        f.write("\n".join(config_lines) + "\n")
    log = open(os.path.join(tmp, f"{name}.log"), "w")
    os.makedirs("/run/sshd", exist_ok=True)
    p = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", cfg], stderr=log, stdin=subprocess.DEVNULL)
    return p


def measure_logins(port, user, key, n):
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        p = subprocess.run(["ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
                            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                            "-o", "LogLevel=ERROR", "-i", key, "-p", str(port), f"{user}@127.0.0.1", "true"],
                           capture_output=True, text=True, stdin=subprocess.DEVNULL)
        times.append((time.perf_counter() - t0) * 1000.0)
        # ForceCommand /bin/false: exit 1 means authenticated, 255 refused.
        if p.returncode != 1:
            raise SystemExit(f"login failed ({p.returncode}): {p.stderr.strip()}")
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--logins", type=int, default=30)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/warden"))
    ap.add_argument("--no-tls", action="store_true",
                    help="leave out PostgreSQL over TLS (a warden from before TLS support)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the bench runs sshd, PostgreSQL and the command user")
    if not os.path.exists(a.binary):
        raise SystemExit(f"{a.binary} missing: cargo build --release -p warden")
    tunuser = os.environ.get("JAILBIRD_TEST_JAIL_USER", "jbtunnel")
    tmp = tempfile.mkdtemp(prefix="warden-bench-")
    os.chmod(tmp, 0o755)
    bindir, binary = install_warden(a.binary, "warden-bench")
    pg = None
    procs = []
    try:
        pg = Pg(tmp)
        regdir = os.path.join(tmp, "reg")
        os.makedirs(regdir)
        run(["chown", "warden:warden", regdir])
        os.chmod(regdir, 0o750)
        sqlite = f"sqlite://{regdir}/registry.db"

        # One real key (for sshd logins) among n-1 fake ones.
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{tmp}/device"])
        real = open(f"{tmp}/device.pub").read().split()[:2]
        real_line = " ".join(real)
        rows, fps = [], []
        for i in range(a.devices - 1):
            k, fp = fake_key()
            rows.append(f"dev{i:05d},,{k}")
            fps.append(fp)
        rows.append(f"REAL0001,92:be:bf:83:6e:b3,{real_line}")
        with open(f"{tmp}/fleet.csv", "w") as f:
            f.write("id,mac,key\n" + "\n".join(rows) + "\n")

        host_key = f"{tmp}/host_key"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key])
        ports = {"warden": free_port(), "plain": free_port()}
        results = {}
        backends = [("SQLite", sqlite), ("PostgreSQL", pg.url)]
        if not a.no_tls:
            backends.append(("PostgreSQL over TLS (verify-full)", pg.tls_url))
        for name, db in backends:
            warden(binary, db, "pool", "add", "bench", "--ports", f"20000-{20000 + max(a.devices, 10000) - 1}")
            warden(binary, db, "jail", "add", "jail-a", "--address", f"127.0.0.1:{ports['warden']}",
                   "--host-key", open(host_key + ".pub").read().strip(), "--user", tunuser,
                   "--operator-user", "jbop")
            t0 = time.perf_counter()
            warden(binary, db, "import", f"{tmp}/fleet.csv")
            imp = time.perf_counter() - t0
            # Warm the page cache / server once, then measure.
            measure_authorized_keys(binary, db, "jail-a", tunuser, fps[:5], 5)
            t = measure_authorized_keys(binary, db, "jail-a", tunuser, fps, a.calls)
            results[name] = (imp, t)

        # sshd logins: warden (SQLite, n devices) vs a plain one-line authorized_keys file.
        dropin = warden(binary, sqlite, "sshd-config", "--jail", "jail-a", "--binary", binary,
                        "--operator-user", "jbop").stdout
        with open(f"{tmp}/warden.conf", "w") as f:
            f.write(dropin)
        common = [f"HostKey {host_key}", "PidFile none", "UsePAM no"]
        procs.append(start_sshd(tmp, "warden", [f"Include {tmp}/warden.conf",
                                                f"ListenAddress 127.0.0.1:{ports['warden']}"] + common))
        with open(f"{tmp}/authorized_keys", "w") as f:
            f.write(f'restrict,port-forwarding,permitlisten="localhost:20000" {real_line}\n')
        procs.append(start_sshd(tmp, "plain", [f"ListenAddress 127.0.0.1:{ports['plain']}", *common,
                                               f"AuthorizedKeysFile {tmp}/authorized_keys", "StrictModes no",
                                               "PasswordAuthentication no", "KbdInteractiveAuthentication no",
                                               "AllowTcpForwarding remote", "PermitOpen none", "PermitTTY no",
                                               "ForceCommand /bin/false"]))
        for p in ports.values():
            wait_port(p)
        logins = {}
        # Interleave the two so that machine noise hits both alike.
        wl, pl = [], []
        for _ in range(a.logins):
            wl += measure_logins(ports["warden"], tunuser, f"{tmp}/device", 1)
            pl += measure_logins(ports["plain"], tunuser, f"{tmp}/device", 1)
        logins["sshd + warden authorized-keys (SQLite)"] = wl
        logins["sshd + plain authorized_keys (1 line)"] = pl

        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
        sshd_v = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
        print(f"# warden fleet benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        print(f"# machine: {platform.node()}, {os.cpu_count()} cores, {cpu}, Linux {platform.release()}")
        print(f"# versions: {run([binary, '--version']).stdout.strip()} (release build), {sshd_v}, "
              f"{pg.version}, SQLite (bundled with rusqlite)")
        print(f"# {a.devices} devices imported; {a.calls} authorized-keys calls each on random enrolled keys, "
              f"timed as sshd sees them (fork+exec to exit); {a.logins} logins each, interleaved")
        print()
        print("| backend | import of %d devices (s) | authorized-keys p50 (ms) | p99 (ms) | max (ms) | contract p99 |" % a.devices)
        print("|---|---:|---:|---:|---:|---:|")
        for name, (imp, t) in results.items():
            target = "5 ms" if name == "SQLite" else "20 ms"
            print(f"| {name} | {imp:.2f} | {statistics.median(t):.2f} | {pct(t, 99):.2f} | {max(t):.2f} | {target} |")
        print()
        print("| sshd login (`ssh ... true`, ed25519, loopback) | p50 (ms) | p90 (ms) |")
        print("|---|---:|---:|")
        for name, t in logins.items():
            print(f"| {name} | {statistics.median(t):.1f} | {pct(t, 90):.1f} |")
        bad = [n for n, (_, t) in results.items() if pct(t, 99) > (5 if n == "SQLite" else 20)]
        if bad:
            print(f"\nmissed the p99 target on: {', '.join(bad)}")
    finally:
        for p in procs:
            p.kill()
            p.wait()
        if pg:
            pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(bindir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
