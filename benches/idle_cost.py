#!/usr/bin/env python3
"""What an idle tunnel costs on the wire, per month: jailbird against OpenSSH's
`ssh -N -R` (what autossh runs), through real OpenSSH jails on loopback, like for
like (the same keepalive settings on both clients, the same jail settings).

    benches/idle_cost.py [--bin target/release/jailbird] [--seconds 300]

Each row is one client holding `-R` through its own jail sshd, idle (no byte
through the tunnel) for --seconds after a 5 s settle. The client's TCP
connection is read with `ss -ti` at both ends of the window: payload bytes each
way (bytes_acked, bytes_received) and segments each way (segs_out, segs_in),
each segment counted with 52 bytes of IPv4 + TCP header (20 + 20 + 12 of
timestamps, as Linux sends them); link-layer framing is not counted (it
differs per link: PPP, LTE's PDCP...). A 30-day month is 2,592,000 s.

The jail's own probe (ClientAliveInterval) costs as much as the client's: sshd
sends one when it has heard nothing for that long. warden's drop-in sets 15 s
(it frees the port of a device whose link died), so a metered profile needs the
jail's interval raised with the client's: the rows show each side alone and both.
The last column is what the login cost: every byte on the connection, both ways
with headers, from connect until the idle window opened.
Run as root (the jail logs in `jbtunnel`, made by scripts/test-setup.sh).
"""
import argparse
import datetime
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tunnel_bench import free_port, out, probe, sink_server, wait, write_jail_config  # noqa: E402

MONTH_S = 30 * 86400
HEADER_BYTES = 52  # IPv4 20 + TCP 20 + timestamps option 12


def tcp_counters(local_port, jail_port):
    """(payload out, payload in, segments out, segments in) of the client's connection to the jail."""
    text = out(["ss", "-tinH", "state", "established", f"( sport = :{local_port} and dport = :{jail_port} )"])
    f = {}
    for word in text.split():
        if ":" in word:
            k, _, v = word.partition(":")
            if v.isdigit():
                f[k] = int(v)
    return f.get("bytes_acked", 0), f.get("bytes_received", 0), f.get("segs_out", 0), f.get("segs_in", 0)


def client_port(pid, jail_port):
    """The client process's local port towards the jail (its one established connection there)."""
    text = out(["ss", "-tnpH", "state", "established", f"( dport = :{jail_port} )"])
    for line in text.splitlines():
        if f"pid={pid}," in line:
            return int(line.split()[2].rsplit(":", 1)[1])
    return None


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/jailbird")
    ap.add_argument("--seconds", type=int, default=300)
    a = ap.parse_args()
    # (row, client, ServerAliveInterval, ServerAliveCountMax, jail ClientAliveInterval)
    rows = [
        ("defaults: client 10 s x3, jail 15 s (warden)", "jailbird", 10, 3, 15),
        ("defaults: client 10 s x3, jail 15 s (warden)", "openssh", 10, 3, 15),
        ("client 300 s x2, jail 15 s (warden)", "jailbird", 300, 2, 15),
        ("metered: client 300 s x2, jail 600 s", "jailbird", 300, 2, 600),
        ("metered: client 300 s x2, jail 600 s", "openssh", 300, 2, 600),
        ("metered, slower: client 900 s x2, jail 1800 s", "jailbird", 900, 2, 1800),
    ]
    sink = sink_server()
    procs, results = [], []
    with tempfile.TemporaryDirectory(prefix="jailbird-idle-") as d:
        os.chmod(d, 0o755)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/ssh_id"], check=True)
        try:
            for i, (row, client, interval, count, cai) in enumerate(rows):
                jd = f"{d}/jail{i}"
                os.mkdir(jd)
                listen = free_port()
                state = f"{jd}/identity"
                if client == "jailbird":
                    key = subprocess.run([a.bin, "authorize", "--state", state, "--listen", str(listen)],
                                         check=True, capture_output=True, text=True).stdout
                else:
                    key = f'restrict,port-forwarding,permitlisten="localhost:{listen}" ' \
                          f'{open(f"{d}/ssh_id.pub").read().strip()}\n'
                port = free_port()
                kh = write_jail_config(jd, port, key, str(listen),
                                       f"ClientAliveInterval {cai}\nClientAliveCountMax 3\n")
                jail = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{jd}/sshd_config"],
                                        stderr=open(f"{jd}/sshd.log", "w"))
                procs.append(jail)
                wait(lambda: listening(port), 10, "jail")
                alive = ["-o", f"ServerAliveInterval={interval}", "-o", f"ServerAliveCountMax={count}"]
                if client == "jailbird":
                    argv = [a.bin, "run", "--state", state, "--known-hosts", kh,
                            "-R", f"{listen}:127.0.0.1:{sink}"] + alive + [f"jbtunnel@127.0.0.1:{port}"]
                else:
                    argv = ["ssh", "-F", "/dev/null", "-N", "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={kh}",
                            "-o", "ExitOnForwardFailure=yes", "-i", f"{d}/ssh_id", "-p", str(port),
                            "-R", f"{listen}:127.0.0.1:{sink}"] + alive + ["jbtunnel@127.0.0.1"]
                p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(f"{jd}/client.log", "w"))
                procs.append(p)
                wait(lambda: probe(listen), 30, f"{client} tunnel ({row})")
                lport = wait(lambda: client_port(p.pid, port), 10, f"{client}'s connection")
                results.append(dict(row=row, client=client, port=port, lport=lport, proc=p))
            time.sleep(5)  # settle: the login's last packets and ACKs are not idle traffic
            for r in results:
                r["c0"] = tcp_counters(r["lport"], r["port"])
            t0 = time.monotonic()
            time.sleep(a.seconds)
            dt = time.monotonic() - t0
            for r in results:
                if r["proc"].poll() is not None:
                    raise SystemExit(f"{r['client']} ({r['row']}) exited during the idle window")
                r["c1"] = tcp_counters(r["lport"], r["port"])
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
    ssh_version = (out(["ssh", "-V"]).strip().splitlines() or ["?"])[-1]
    jb_version = (out([a.bin, "--version"]).strip().splitlines() or ["?"])[0]
    print(f"# idle tunnel cost, {datetime.date.today()}, {platform.node()} {platform.machine()}, "
          f"{jb_version}, {ssh_version}; {a.seconds} s idle window, IPv4+TCP headers counted")
    print(f"{'settings':48} {'client':9} {'up B/min':>9} {'down B/min':>10} {'segs/min':>9} {'MB/month':>9} "
          f"{'login B':>8}")
    for r in results:
        po, pi, so, si = (b - a_ for a_, b in zip(r["c0"], r["c1"]))
        up = po + so * HEADER_BYTES
        down = pi + si * HEADER_BYTES
        per_min = 60 / dt
        month_mb = (up + down) / dt * MONTH_S / 1e6
        # The login: everything on the connection until the idle window opened
        # (key exchange, authentication, the forward; both ways, with headers).
        lo, li, lso, lsi = r["c0"]
        login = lo + li + (lso + lsi) * HEADER_BYTES
        print(f"{r['row']:48} {r['client']:9} {up * per_min:9.0f} {down * per_min:10.0f} "
              f"{(so + si) * per_min:9.1f} {month_mb:9.2f} {login:8d}")


if __name__ == "__main__":
    main()
