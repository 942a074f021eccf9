#!/usr/bin/env python3
"""Soak: the agent against a real OpenSSH jail that is killed and restarted
every --restart-every seconds while transfers flow through the tunnel, for
--minutes. Reports reconnects, transfers (ok / failed, and whether a failure
fell inside a restart window), and the agent's open file descriptors and VmRSS
at the start and the end. Run as root (the jail logs in `jbtunnel`; see
scripts/test-setup.sh).

    benches/soak.py [--bin target/release/jailbird] [--minutes 10] [--restart-every 30]

Exit status 1 if descriptors grew (beyond --slack-fds) from the start, or RSS
from the first restart (when traffic has warmed the allocator up) to the end
(beyond --slack-kib), or if a transfer failed while the tunnel was up.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tunnel_bench import (free_port, probe, push, rss_kib, sink_server, tree, wait,  # noqa: E402
                          write_jail_config)


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class RestartableJail:
    """One sshd config and host key; start() and kill() keep port and key."""

    def __init__(self, d, authorized, listen):
        self.d, self.port, self.proc = d, free_port(), None
        self.known_hosts = write_jail_config(d, self.port, authorized, listen,
                                             "ClientAliveInterval 5\nClientAliveCountMax 2\n")

    def start(self):
        for _ in range(50):
            self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{self.d}/sshd_config"],
                                         stderr=open(f"{self.d}/sshd.log", "a"), start_new_session=True)
            try:
                wait(lambda: self.proc.poll() is not None or
                     "Server listening" in open(f"{self.d}/sshd.log").read().split("--restart--")[-1], 10, "jail")
            except SystemExit:
                pass
            if self.proc.poll() is None:
                return
            time.sleep(0.1)  # port still in TIME_WAIT-bound use: try again
        raise SystemExit("jail did not restart")

    def kill(self):
        """SIGKILL the listener and every per-connection sshd (they setsid(), so by tree)."""
        if self.proc:
            for p in tree(self.proc.pid):
                try:
                    os.kill(p, 9)
                except ProcessLookupError:
                    pass
            self.proc.wait()
            open(f"{self.d}/sshd.log", "a").write("--restart--\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/jailbird")
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--restart-every", type=float, default=30)
    ap.add_argument("--mib", type=int, default=8, help="size of each transfer")
    ap.add_argument("--pause", type=float, default=0.1, help="seconds between transfers per worker")
    ap.add_argument("--slack-fds", type=int, default=0)
    ap.add_argument("--slack-kib", type=int, default=512)
    a = ap.parse_args()
    sink = sink_server()
    with tempfile.TemporaryDirectory(prefix="jailbird-soak-") as d:
        os.chmod(d, 0o755)
        listen = free_port()
        state = f"{d}/identity"
        auth = subprocess.run([a.bin, "authorize", "--state", state, "--listen", str(listen)],
                              check=True, capture_output=True, text=True).stdout
        jd = f"{d}/jail"
        os.mkdir(jd)
        jail = RestartableJail(jd, auth, listen)
        jail.start()
        log = open(f"{d}/agent.log", "w+")
        agent = subprocess.Popen([a.bin, "run", "--state", state, "--known-hosts", jail.known_hosts,
                                  "--status-file", f"{d}/status", "-o", "ServerAliveInterval=5",
                                  "-R", f"{listen}:127.0.0.1:{sink}", f"jbtunnel@127.0.0.1:{jail.port}"],
                                 stderr=log, env=dict(os.environ, JAILBIRD_LOG="info"))
        try:
            wait(lambda: probe(listen), 30, "tunnel up")
            time.sleep(1)  # let start-up allocations settle before the baseline
            start = {"fds": fds(agent.pid), "rss": rss_kib(agent.pid), "t": time.monotonic()}
            down = threading.Event()  # set while the jail is being restarted
            stats = {"ok": 0, "failed_in_restart": 0, "failed_while_up": 0, "bytes": 0}
            stop = threading.Event()
            restarts = []
            timeline = []

            def traffic():
                while not stop.is_set():
                    during = down.is_set()
                    try:
                        push(listen, a.mib << 20)
                        stats["ok"] += 1
                        stats["bytes"] += a.mib << 20
                        time.sleep(a.pause)
                    except (OSError, AssertionError):
                        if during or down.is_set():
                            stats["failed_in_restart"] += 1
                        else:
                            stats["failed_while_up"] += 1
                        time.sleep(0.05)

            workers = [threading.Thread(target=traffic, daemon=True) for _ in range(2)]
            for w in workers:
                w.start()
            end = start["t"] + a.minutes * 60
            while time.monotonic() + a.restart_every < end:
                time.sleep(a.restart_every)
                down.set()
                t0 = time.monotonic()
                jail.kill()
                jail.start()
                wait(lambda: probe(listen), 60, "tunnel back after a restart")
                restarts.append(time.monotonic() - t0)
                timeline.append((time.monotonic() - start["t"], fds(agent.pid), rss_kib(agent.pid)))
                time.sleep(0.5)  # transfers that were in flight at the kill have failed by now
                down.clear()
            while time.monotonic() < end:
                time.sleep(1)
            stop.set()
            for w in workers:
                w.join(timeout=120)
            time.sleep(1)
            final = {"fds": fds(agent.pid), "rss": rss_kib(agent.pid)}
        finally:
            agent.terminate()
            agent.wait(timeout=10)
            jail.kill()
        log.seek(0)
        text = log.read()
    ups = text.count("tunnel up")
    minutes = (time.monotonic() - start["t"]) / 60
    print(f"# soak {time.strftime('%Y-%m-%d %H:%M')}: {a.bin}, {minutes:.1f} min, jail restarted every {a.restart_every:.0f} s")
    print(f"jail restarts              {len(restarts)}")
    print(f"reconnects (tunnel up - 1) {ups - 1}")
    if restarts:
        print(f"tunnel back after restart  median {sorted(restarts)[len(restarts) // 2]:.2f} s, max {max(restarts):.2f} s")
    print(f"transfers ok               {stats['ok']} ({stats['bytes'] / 2**30:.1f} GiB)")
    print(f"transfers failed           {stats['failed_in_restart']} in a restart window, {stats['failed_while_up']} while up")
    print("after each restart (s: fds, VmRSS KiB): " +
          ", ".join(f"{t:.0f}: {f}, {r}" for t, f, r in timeline))
    reasons = {}
    for line in text.splitlines():
        if "retrying in" in line:
            key = line.split("]", 1)[-1].split(";")[0].strip()
            key = "".join("N" if c.isdigit() else c for c in key)[:110]
            reasons[key] = reasons.get(key, 0) + 1
    for k, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
        print(f"  {n:4d} x {k}")
    print(f"open fds   start -> end    {start['fds']} -> {final['fds']}")
    warm = timeline[0][2] if timeline else start["rss"]
    print(f"VmRSS KiB  idle start -> after first restart (warm) -> end    {start['rss']} -> {warm} -> {final['rss']}")
    bad = []
    if final["fds"] > start["fds"] + a.slack_fds:
        bad.append("file descriptors grew")
    if final["rss"] > warm + a.slack_kib:
        bad.append("RSS grew after warm-up")
    if stats["failed_while_up"]:
        bad.append("transfers failed while the tunnel was up")
    if len(restarts) and ups - 1 < len(restarts):
        bad.append("fewer reconnects than restarts")
    for b in bad:
        print(f"FAIL: {b}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
