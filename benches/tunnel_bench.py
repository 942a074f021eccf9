#!/usr/bin/env python3
"""Side-by-side figures for jailbird and OpenSSH's `ssh -N -R` through the same
real OpenSSH jail on loopback (run as root: the jail logs in `jbtunnel`).

    benches/tunnel_bench.py [--bin target/release/jailbird] [--mib 512] [--runs 3]

For each client: time from exec to a usable tunnel (the jail's port forwards a
byte to the target and back), idle VmRSS 5 s after the tunnel is up, throughput
of N MiB client -> jail -> agent -> sink (median of runs) with the agent's CPU
seconds per GiB (utime+stime of its process tree, from /proc) and peak VmRSS, and
peak VmRSS with 32 concurrent connections each pushing data. Prints a table with
the jailbird/OpenSSH ratios, the machine and the date.
"""
import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.002)
    raise SystemExit(f"timed out waiting for {what}")


def tree(pid):
    """pid and all its descendants."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def cpu_secs(pid):
    total = 0
    for p in tree(pid):
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except (OSError, IndexError):
            pass
    return total / CLK


def rss_kib(pid):
    total = 0
    for p in tree(pid):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


class Peak(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, False

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_kib(self.pid))
            time.sleep(0.01)


def sink_server():
    """Target: reads everything, answers each connection's first byte (readiness probe)."""
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", 0))
    l.listen(128)

    def serve(c):
        with c:
            first = c.recv(1)
            if first == b"?":
                c.sendall(b"!")
                return
            while c.recv(1 << 16):
                pass
            c.sendall(b"done")

    def loop():
        while True:
            c, _ = l.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return l.getsockname()[1]


def probe(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"?")
            return s.recv(1) == b"!"
    except OSError:
        return False


def push(port, nbytes):
    chunk = os.urandom(1 << 16)
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"x")
        sent = 1
        while sent < nbytes:
            s.sendall(chunk)
            sent += len(chunk)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(4) == b"done"


def write_jail_config(d, port, authorized, listen, extra=""):
    """A host key, authorized_keys and a locked-down sshd_config for a loopback jail in `d`;
    returns the known_hosts path."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/hk"], check=True)
    open(f"{d}/ak", "w").write(authorized)
    os.chmod(d, 0o755)
    open(f"{d}/sshd_config", "w").write(
        f"ListenAddress 127.0.0.1:{port}\nHostKey {d}/hk\nPidFile none\nAuthorizedKeysFile {d}/ak\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin no\nAllowUsers jbtunnel\nAllowTcpForwarding remote\nGatewayPorts no\n"
        f"PermitListen {listen}\nPermitOpen none\nX11Forwarding no\nPermitTTY no\nForceCommand /bin/false\n"
        + extra
    )
    known_hosts = f"{d}/kh"
    open(known_hosts, "w").write(f"[127.0.0.1]:{port} {open(f'{d}/hk.pub').read()}")
    return known_hosts


class Jail:
    def __init__(self, d, authorized, listen):
        self.port = free_port()
        self.known_hosts = write_jail_config(d, self.port, authorized, listen)
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{d}/sshd_config"],
                                     stderr=open(f"{d}/sshd.log", "w"))
        wait(lambda: socket.socket().connect_ex(("127.0.0.1", self.port)) == 0, 10, "jail")

    def close(self):
        subprocess.run(["pkill", "-KILL", "-f", self.proc.args[-1]], check=False)
        self.proc.wait()


def measure(name, argv, listen, sink, mib, runs, env=None):
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    wait(lambda: probe(listen), 30, f"{name} tunnel")
    up_ms = (time.monotonic() - t0) * 1000
    time.sleep(5)
    idle = rss_kib(p.pid)
    speeds, cpu_per_gib, peaks = [], [], []
    for _ in range(runs):
        mon = Peak(p.pid)
        mon.start()
        c0, t = cpu_secs(p.pid), time.monotonic()
        push(listen, mib << 20)
        dt = time.monotonic() - t
        mon.stop = True
        mon.join()
        speeds.append(mib * 1.048576 / dt)
        cpu_per_gib.append((cpu_secs(p.pid) - c0) / (mib / 1024))
        peaks.append(mon.peak)
    mon = Peak(p.pid)
    mon.start()
    ts = [threading.Thread(target=push, args=(listen, 16 << 20)) for _ in range(32)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    mon.stop = True
    mon.join()
    err = b""
    p.terminate()
    try:
        _, err = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
    cipher = ""
    for line in err.decode(errors="replace").splitlines():
        if "cipher=" in line:
            cipher = line.split("cipher=")[1].split()[0]
        elif "cipher:" in line and "server->client" in line:
            cipher = line.split("cipher:")[1].split()[0]
    return dict(name=name, up_ms=up_ms, idle=idle, mbs=statistics.median(speeds),
                cpu=statistics.median(cpu_per_gib), peak=max(peaks), peak32=mon.peak, cipher=cipher)


def callgrind_total(bin_, state, jail, spec, dest, listen, mib):
    """Instructions the agent executes in a whole run (start, tunnel, N MiB, SIGTERM)."""
    out = f"{os.path.dirname(state)}/callgrind.out"
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                          bin_, "run", "--state", state, "--known-hosts", jail.known_hosts, "-R", spec,
                          f"{dest}:{jail.port}"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    wait(lambda: probe(listen), 120, "tunnel under valgrind")
    push(listen, mib << 20)
    p.terminate()
    p.wait(timeout=60)
    wait(lambda: not probe(listen), 10, "port freed")
    total = 0
    for line in open(out):
        if line.startswith("totals:") or line.startswith("summary:"):
            total = max(total, int(line.split()[1]))
    return total


def callgrind(bin_, state, jail, spec, dest, listen, mib):
    """Instructions per MiB forwarded (valgrind counts, repeatable run to run): the
    difference between a run carrying 1 + N MiB and one carrying 1 MiB, over N."""
    small = callgrind_total(bin_, state, jail, spec, dest, listen, 1)
    large = callgrind_total(bin_, state, jail, spec, dest, listen, 1 + mib)
    return (large - small) / mib


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/jailbird")
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--jailbird-opt", action="append", default=[], help="extra -o for jailbird, e.g. Ciphers=...")
    ap.add_argument("--callgrind", type=int, default=0, metavar="MIB",
                    help="only count jailbird's instructions per MiB over MIB MiB (valgrind)")
    ap.add_argument("--wrap", default="", help="prefix for the jailbird command (profiling), e.g. 'perf record -g --'")
    ap.add_argument("--ssh-opt", action="append", default=[], help="extra -o for ssh, e.g. Ciphers=...")
    a = ap.parse_args()
    sink = sink_server()
    results = []
    with tempfile.TemporaryDirectory(prefix="jailbird-bench-") as d:
        os.chmod(d, 0o755)  # sshd reads authorized_keys as the jail user
        listen = free_port()
        state = f"{d}/identity"
        auth = subprocess.run([a.bin, "authorize", "--state", state, "--listen", str(listen)],
                              check=True, capture_output=True, text=True).stdout
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/ssh_id"], check=True)
        ssh_pub = open(f"{d}/ssh_id.pub").read().strip()
        dbclient = shutil.which("dbclient") and shutil.which("dropbearkey")
        db_pub = ""
        if dbclient:
            db_pub = subprocess.run(["dropbearkey", "-t", "ed25519", "-f", f"{d}/db_id"], check=True,
                                    capture_output=True, text=True).stdout
            db_pub = next(l for l in db_pub.splitlines() if l.startswith("ssh-ed25519"))
        jd = f"{d}/jail"
        os.mkdir(jd)
        extra = f'restrict,port-forwarding,permitlisten="localhost:{listen}" {ssh_pub}\n'
        if db_pub:
            extra += f'restrict,port-forwarding,permitlisten="localhost:{listen}" {db_pub}\n'
        jail = Jail(jd, auth + extra, listen)
        spec = f"{listen}:127.0.0.1:{sink}"
        dest = f"jbtunnel@127.0.0.1"
        try:
            if a.callgrind:
                ipm = callgrind(a.bin, state, jail, spec, dest, listen, a.callgrind)
                print(f"{a.bin}: {ipm / 1e6:.1f} M instructions per MiB forwarded ({a.callgrind} MiB, callgrind)")
                return 0
            results.append(measure("jailbird", a.wrap.split() + [a.bin, "run", "--state", state, "--known-hosts", jail.known_hosts,
                                                "-R", spec] + [x for o in a.jailbird_opt for x in ("-o", o)] + [f"{dest}:{jail.port}"],
                                   listen, sink, a.mib, a.runs))
            wait(lambda: not probe(listen), 10, "port freed")
            results.append(measure("openssh", ["ssh", "-F", "/dev/null", "-N", "-v", "-o", "BatchMode=yes",
                                               "-o", f"UserKnownHostsFile={jail.known_hosts}", "-o", "ExitOnForwardFailure=yes",
                                               "-o", "ServerAliveInterval=10", "-i", f"{d}/ssh_id", "-p", str(jail.port),
                                               "-R", spec] + [x for o in a.ssh_opt for x in ("-o", o)] + [dest], listen, sink, a.mib, a.runs))
            if dbclient:
                wait(lambda: not probe(listen), 10, "port freed")
                # -y: accept the (loopback, just generated) jail key; HOME keeps its known_hosts in the temp dir.
                env = dict(os.environ, HOME=d)
                results.append(measure("dbclient", ["dbclient", "-N", "-y", "-W", "2097152", "-i", f"{d}/db_id",
                                                    "-R", spec, f"{dest}/{jail.port}"], listen, sink, a.mib, a.runs, env))
        finally:
            jail.close()
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} on {platform.node()}: {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, {platform.release()}; {subprocess.run(['ssh', '-V'], capture_output=True, text=True).stderr.strip()}")
    print(f"# {a.mib} MiB per run, median of {a.runs}; 32 x 16 MiB concurrent")
    rows = [("exec -> usable tunnel (ms)", "up_ms", "{:.0f}"), ("idle VmRSS (KiB)", "idle", "{}"),
            ("throughput (MB/s)", "mbs", "{:.0f}"), ("CPU s per GiB", "cpu", "{:.2f}"),
            ("peak VmRSS, 1 transfer (KiB)", "peak", "{}"), ("peak VmRSS, 32 busy (KiB)", "peak32", "{}")]
    j, o = results[0], results[1]
    db = results[2] if len(results) > 2 else None
    print("| figure | jailbird | OpenSSH ssh | jailbird/OpenSSH |" + (" dbclient |" if db else "")
          + "\n|---|---:|---:|---:|" + ("---:|" if db else ""))
    for label, key, fmt in rows:
        print(f"| {label} | {fmt.format(j[key])} | {fmt.format(o[key])} | {j[key] / o[key]:.2f} |"
              + (f" {fmt.format(db[key])} |" if db else ""))
    print(f"| cipher | {j['cipher']} | {o['cipher']} | |" + (" (dropbear default) |" if db else ""))


if __name__ == "__main__":
    sys.exit(main())
