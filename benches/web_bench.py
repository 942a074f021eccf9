#!/usr/bin/env python3
"""The web view's fleet page at fleet size: 10,000 devices enrolled in bulk
through the store (`warden import`, one transaction), half of them marked
online at one of two jails the way `warden watch` records it, then the
answer time of `warden serve` for the pages an operator opens, p50/p99 over
loopback with one kept-alive connection (server time plus a loopback round
trip), and each page's weight (bytes of HTML; the stylesheet is one more
cached request).

Run as root from the repository (after `cargo build --release -p warden`):

    python3 benches/web_bench.py [--devices 10000] [--requests 300] [--binary PATH]

Figures are printed with date, machine and versions. Nothing leaves loopback.
"""
import argparse
import base64
import hashlib
import http.client
import os
import platform
import shutil
import socket
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
    """A syntactically valid ed25519 public key (32 random bytes)."""
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + os.urandom(32)
    return "ssh-ed25519 " + base64.b64encode(blob).decode()


def pct(xs, p):
    xs = sorted(xs)
    k = max(0, min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1)))))
    return xs[k]


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=10000)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/warden"))
    a = ap.parse_args()
    if not os.path.exists(a.binary):
        raise SystemExit(f"{a.binary} missing: cargo build --release -p warden")
    tmp = tempfile.mkdtemp(prefix="warden-web-bench-")
    serve = None
    try:
        path = os.path.join(tmp, "registry.db")
        db = f"sqlite://{path}"
        w = lambda *args: run([a.binary, "--db", db, *args])
        w("pool", "add", "bench", "--ports", f"20000-{20000 + max(a.devices, 10000) - 1}")
        for j, port in (("jail-a", 2201), ("jail-b", 2202)):
            w("jail", "add", j, "--address", f"127.0.0.1:{port}", "--host-key", fake_key(),
              "--pool", "bench", "--user", "tunuser", "--operator-user", "jbop")
        macs = []
        with open(os.path.join(tmp, "fleet.csv"), "w") as f:
            f.write("id,mac,key,pool\n")
            for i in range(a.devices):
                mac = ":".join(f"{b:02x}" for b in (0x02, 0x42, i >> 16 & 255, i >> 8 & 255, i & 255, 0x01))
                macs.append(mac)
                f.write(f"dev{i:05d},{mac},{fake_key()},bench\n")
        t0 = time.perf_counter()
        w("import", os.path.join(tmp, "fleet.csv"))
        imported = time.perf_counter() - t0
        # Presence as `warden watch` records it: every other device online,
        # alternately at jail-a and jail-b; the rest offline since an hour.
        now = int(time.time())
        run(["sqlite3", path,
             f"UPDATE devices SET online_jail = CASE WHEN rowid % 4 = 0 THEN 'jail-a' ELSE 'jail-b' END, "
             f"online_since = {now - 600}, last_seen = {now - 30} WHERE rowid % 2 = 0; "
             f"UPDATE devices SET offline_since = {now - 3600}, last_seen = {now - 3600} WHERE rowid % 2 = 1;"])
        token = w("token", "create", "bench", "--scope", "read").stdout.splitlines()[0]
        port = free_port()
        serve = subprocess.Popen([a.binary, "--db", db, "serve", "--listen", f"127.0.0.1:{port}"],
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "serve.log"), "w"))
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or serve.poll() is not None:
                    raise SystemExit("warden serve did not start: " + open(os.path.join(tmp, "serve.log")).read())
                time.sleep(0.05)
        dashed = macs[a.devices // 2].upper().replace(":", "-")
        pages = [
            ("fleet, page 1", "/"),
            ("fleet, page 50", f"/?page={max(1, a.devices // 200)}"),
            ("fleet, search by MAC (AA-BB-..)", f"/?q={dashed}"),
            ("fleet, offline at pool bench", "/?state=offline&pool=bench"),
            ("device", "/devices/dev00042"),
            ("jails and pools", "/jails"),
        ]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        headers = {"Cookie": f"warden_token={token}"}
        results = []
        for name, url in pages:
            times, size = [], 0
            for i in range(a.requests + 5):
                t0 = time.perf_counter()
                conn.request("GET", url, headers=headers)
                r = conn.getresponse()
                body = r.read()
                dt = (time.perf_counter() - t0) * 1000.0
                if r.status != 200:
                    raise SystemExit(f"{url}: {r.status} {body[:300]!r}")
                if i >= 5:  # the first few warm the page cache
                    times.append(dt)
                size = len(body)
            results.append((name, url, pct(times, 50), pct(times, 99), max(times), size))
        css = subprocess.run(["curl", "-s", f"http://127.0.0.1:{port}/static/style.css"],
                             capture_output=True).stdout
        version = run([a.binary, "--version"]).stdout.strip()
        lock = open(os.path.join(ROOT, "Cargo.lock")).read()
        sqlite_sys = lock.split('name = "libsqlite3-sys"\nversion = "', 1)[-1].split('"', 1)[0]
        rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
        print(f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        print(f"machine: {machine()}")
        print(f"versions: {version} ({os.path.basename(os.path.dirname(a.binary))} build), "
              f"SQLite bundled by libsqlite3-sys {sqlite_sys}, {rustc}")
        print(f"fleet: {a.devices} devices (imported in {imported:.1f} s), half online at 2 jails; "
              f"{a.requests} requests per page, one kept-alive connection")
        print(f"{'page':36} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'bytes':>8}")
        for name, _url, p50, p99, mx, size in results:
            print(f"{name:36} {p50:8.1f} {p99:8.1f} {mx:8.1f} {size:8d}")
        print(f"stylesheet: {len(css)} bytes (cached an hour)")
    finally:
        if serve is not None:
            serve.terminate()
            serve.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
