#!/usr/bin/env python3
"""jailbird against OpenSSH's `ssh -N -R` (and dropbear's `dbclient`, where
installed) through the same real OpenSSH jail on loopback, like for like: the
same cipher forced on every client (run as root: the jail logs in `jbtunnel`).

    benches/tunnel_bench.py [--bin target/release/jailbird] [--mib 512] [--runs 3]
                            [--ciphers all | defaults | NAME,NAME] [--cipher NAME]

Rows (default `--ciphers all`): "defaults", where each client picks its own
cipher, then one row per cipher that both jailbird (`jailbird info`) and OpenSSH
(`ssh -Q cipher`) support, forced on each (jailbird `-o Ciphers=`, ssh `-o
Ciphers=`, dbclient `-c`). The cipher each session really used is read from the
jail's own log (LogLevel DEBUG1, `kex: ... cipher:`) and checked against what the
client says (jailbird's `tunnel up ... cipher=`, `ssh -v`); a forced row whose
sides negotiated different ciphers is refused, not printed (exit status 1).

Per client and row: throughput of N MiB client -> jail -> agent -> sink (median
of runs; the clients hold their tunnels at once and take turns, so drifting
background load hits them alike), the agent's CPU seconds per GiB (its process
tree's on-CPU time, /proc/PID/task/*/schedstat) and the jail's CPU per GiB while
serving it (the same for that connection's sshd processes: the listener's child
for the session and its descendants). The jail offers no compression (see Jail).
In the defaults row also: time from exec to a usable tunnel, idle VmRSS 5 s
after it is up, peak VmRSS during a transfer and with 32 concurrent connections
pushing data.

Other machines' binaries (benches/armv6_bench.sh): `--runner` prefixes every
jailbird command (e.g. `qemu-arm-static -cpu arm1176`), `--ssh-cmd`,
`--dbclient-cmd` and `--dropbearkey-cmd` replace those commands, `--per MiB`
reports CPU per MiB, `--no-footprint` skips the memory and start-up figures.
"""
import argparse
import os
import platform
import re
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))


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


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                stat = open(f"/proc/{d}/stat").read()
                ppid = int(stat.rsplit(")", 1)[1].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, IndexError, ValueError):
                pass
    return kids


def tree(pid):
    """pid and all its descendants."""
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def sched(pid):
    """(CPU seconds, times scheduled onto a CPU) of pid's process tree. CPU: each thread's
    on-CPU time in ns from /proc/PID/task/TID/schedstat (exact, where utime+stime from
    /proc/PID/stat count 10 ms ticks); utime+stime where schedstat is missing. Times:
    schedstat's third field summed over threads (0 where schedstat is missing): each
    wake-up and each return from preemption is one."""
    total, runs = 0.0, 0
    for p in tree(pid):
        try:
            tasks = os.listdir(f"/proc/{p}/task")
            for t in tasks:
                f = open(f"/proc/{p}/task/{t}/schedstat").read().split()
                total += int(f[0]) / 1e9
                runs += int(f[2])
        except (OSError, IndexError, ValueError):
            try:
                f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
                total += (int(f[11]) + int(f[12])) / CLK
            except (OSError, IndexError):
                pass
    return total, runs


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
    returns the known_hosts path. `listen`: one port, or several separated by spaces."""
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
    """sshd -D on loopback. LogLevel DEBUG1 so its log names each session's cipher (kex lines,
    once per connection: nothing is logged per packet). Compression no: dbclient asks for
    zlib@openssh.com, which would have the jail deflate the random payload (about 10x its CPU
    per byte); jailbird and ssh never compress."""

    def __init__(self, d, authorized, listen):
        self.port = free_port()
        self.log = f"{d}/sshd.log"
        self.known_hosts = write_jail_config(d, self.port, authorized, listen, "LogLevel DEBUG1\nCompression no\n")
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", f"{d}/sshd_config"],
                                     stderr=open(self.log, "w"))
        wait(lambda: socket.socket().connect_ex(("127.0.0.1", self.port)) == 0, 10, "jail")

    def sessions(self):
        """The listener's children: one per connection."""
        return set(children_map().get(self.proc.pid, []))

    def log_size(self):
        return os.path.getsize(self.log)

    def kex_since(self, offset):
        """(cipher, compression) of the kex lines logged after `offset`, both directions."""
        with open(self.log, "rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
        return set(re.findall(r"kex: (?:client->server|server->client) cipher: (\S+) MAC: \S+ compression: (\S+)",
                              text))

    def close(self):
        for p in tree(self.proc.pid):  # per-connection sshds setsid(): kill them by tree
            try:
                os.kill(p, 9)
            except ProcessLookupError:
                pass
        self.proc.wait()


class Client:
    """One agent holding `-R listen:sink` through the jail; name is jailbird, openssh or dbclient."""

    def __init__(self, name, argv, listen, log, env=None):
        self.name, self.argv, self.listen, self.log, self.env = name, argv, listen, log, env
        self.speeds, self.cpu, self.jail_cpu, self.peaks = [], [], [], []
        self.wakes, self.jail_wakes = [], []
        self.cipher = self.claimed = ""

    def start(self, jail, timeout):
        before, offset = jail.sessions(), jail.log_size()
        t0 = time.monotonic()
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"), env=self.env)
        wait(lambda: self.proc.poll() is not None or probe(self.listen), timeout, f"{self.name} tunnel")
        if self.proc.poll() is not None:
            raise SystemExit(f"{self.name} exited {self.proc.returncode}: {open(self.log).read()[-2000:]}")
        self.up_ms = (time.monotonic() - t0) * 1000
        new = wait(lambda: jail.sessions() - before, 10, f"jail session of {self.name}")
        if len(new) != 1:
            raise SystemExit(f"{self.name}: expected one new jail session, found {sorted(new)}")
        self.session = new.pop()
        seen = jail.kex_since(offset)
        if len(seen) == 1:
            self.cipher, comp = seen.pop()
            if comp != "none":
                self.cipher += f" +{comp}"
        else:
            self.cipher = "mixed: " + ",".join(sorted(" ".join(k) for k in seen)) if seen else "?"

    def transfer(self, mib, footprint):
        mon = Peak(self.proc.pid)
        if footprint:
            mon.start()
        (c0, w0), (j0, jw0), t = sched(self.proc.pid), sched(self.session), time.monotonic()
        push(self.listen, mib << 20)
        dt = time.monotonic() - t
        (c1, w1), (j1, jw1) = sched(self.proc.pid), sched(self.session)
        self.wakes.append((w1 - w0) / mib)
        self.jail_wakes.append((jw1 - jw0) / mib)
        if footprint:
            mon.stop = True
            mon.join()
            self.peaks.append(mon.peak)
        self.speeds.append(mib * 1.048576 / dt)
        self.cpu.append((c1 - c0) / mib)
        self.jail_cpu.append((j1 - j0) / mib)
        return self.speeds[-1], self.cpu[-1], self.jail_cpu[-1]

    def busy32(self):
        mon = Peak(self.proc.pid)
        mon.start()
        ts = [threading.Thread(target=push, args=(self.listen, 16 << 20)) for _ in range(32)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        mon.stop = True
        mon.join()
        self.peak32 = mon.peak

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for line in open(self.log, errors="replace"):
            if "tunnel up" in line and "cipher=" in line:  # jailbird
                self.claimed = line.split("cipher=")[1].split()[0]
            elif "kex: server->client cipher:" in line:  # ssh -v
                self.claimed = line.split("cipher:")[1].split()[0]
        wait(lambda: not probe(self.listen), 10, f"{self.name}'s port freed")

    def figures(self):
        return dict(mbs=statistics.median(self.speeds), cpu=statistics.median(self.cpu),
                    jail=statistics.median(self.jail_cpu), wakes=statistics.median(self.wakes),
                    jail_wakes=statistics.median(self.jail_wakes))


def callgrind_total(argv, jail, listen, mib):
    """Instructions the agent executes in a whole run (start, tunnel, N MiB, SIGTERM)."""
    out = f"{os.path.dirname(jail.log)}/callgrind.out"
    p = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def callgrind(argv, jail, listen, mib):
    """Instructions per MiB forwarded (valgrind counts, repeatable run to run): the
    difference between a run carrying 1 + N MiB and one carrying 1 MiB, over N."""
    small = callgrind_total(argv, jail, listen, 1)
    large = callgrind_total(argv, jail, listen, 1 + mib)
    return (large - small) / mib


def out(cmd):
    """stdout+stderr of a command, '' if it cannot run."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        return r.stdout + r.stderr
    except (OSError, subprocess.TimeoutExpired):
        return ""


def machine():
    model = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()}: {model}, {os.cpu_count()} cores, kernel {platform.release()}"


def load():
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def git_state():
    """The commit the agent's source is at, and uncommitted changes to it."""
    root = os.path.dirname(HERE)
    head = out(["git", "-C", root, "log", "-1", "--format=%h %cs"]).strip() or "unknown"
    dirty = out(["git", "-C", root, "status", "--porcelain", "--", "src", "vendor", "Cargo.toml",
                 "Cargo.lock", "build.rs"]).split("\n")
    dirty = [l[3:] for l in dirty if l.strip()]
    return head + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/jailbird")
    ap.add_argument("--mib", type=int, default=512)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--ciphers", default="all",
                    help="'all' (defaults row + each cipher jailbird and ssh share), 'defaults', or a comma list")
    ap.add_argument("--cipher", action="append", default=[],
                    help="force this cipher on every client (repeatable; replaces --ciphers)")
    ap.add_argument("--jailbird-opt", action="append", default=[], help="extra -o for jailbird")
    ap.add_argument("--ssh-opt", action="append", default=[], help="extra -o for ssh")
    ap.add_argument("--callgrind", type=int, default=0, metavar="MIB",
                    help="only count jailbird's instructions per MiB over MIB MiB (valgrind)")
    ap.add_argument("--wrap", default="", help="prefix for `jailbird run` only (profiling), e.g. 'perf record -g --'")
    ap.add_argument("--runner", default="", help="prefix for every jailbird command, e.g. 'qemu-arm-static -cpu arm1176'")
    ap.add_argument("--ssh-cmd", default="ssh", help="the OpenSSH client command (may have a prefix, e.g. qemu)")
    ap.add_argument("--dbclient-cmd", default=shutil.which("dbclient") or "", help="'' to leave dropbear out")
    ap.add_argument("--dropbearkey-cmd", default=shutil.which("dropbearkey") or "")
    ap.add_argument("--per", choices=["GiB", "MiB"], default="GiB", help="unit of the CPU figures")
    ap.add_argument("--no-footprint", action="store_true", help="skip start-up and memory figures")
    ap.add_argument("--start-timeout", type=float, default=60)
    ap.add_argument("--label", default="", help="a line saying what is compared (printed with the table)")
    a = ap.parse_args()
    runner, ssh_cmd = shlex.split(a.runner), shlex.split(a.ssh_cmd)
    db_cmd, dbkey_cmd = shlex.split(a.dbclient_cmd), shlex.split(a.dropbearkey_cmd)
    jb = runner + [a.bin]
    load_before = load()

    info = out(jb + ["info"])
    m = re.search(r"^ciphers: (\S+)", info, re.M)
    jb_ciphers = m.group(1).split(",") if m else ["aes256-gcm@openssh.com", "chacha20-poly1305@openssh.com",
                                                   "aes128-gcm@openssh.com"]
    m = re.search(r"^target: (\S+)", info, re.M)
    jb_target = m.group(1) if m else "?"
    ssh_ciphers = out(ssh_cmd + ["-Q", "cipher"]).split()
    ssh_version = out(ssh_cmd + ["-V"]).strip().splitlines()[-1]
    db_ciphers = []
    if db_cmd and dbkey_cmd:
        m = re.search(r"Available ciphers: (\S+)", out(db_cmd + ["-c", "help"]))
        db_ciphers = m.group(1).split(",") if m else []
        db_version = (re.findall(r"Dropbear v\S+", out(db_cmd + ["-V"])) or ["dropbear ?"])[0]
    else:
        db_cmd = []
    common = [c for c in jb_ciphers if c in ssh_ciphers]
    if a.cipher:
        rows = a.cipher
    elif a.ciphers == "all":
        rows = ["defaults"] + common
    else:
        rows = a.ciphers.split(",")
    for c in rows:
        if c != "defaults" and c not in common:
            raise SystemExit(f"{c}: not a cipher both jailbird ({','.join(jb_ciphers)}) and "
                             f"{ssh_version} ({','.join(ssh_ciphers)}) support")
    footprint = not a.no_footprint and "defaults" in rows
    sink = sink_server()
    results, refused = [], []
    with tempfile.TemporaryDirectory(prefix="jailbird-bench-") as d:
        os.chmod(d, 0o755)  # sshd reads authorized_keys as the jail user
        ports = dict(jailbird=free_port(), openssh=free_port(), dbclient=free_port())
        state = f"{d}/identity"
        auth = subprocess.run(jb + ["authorize", "--state", state, "--listen", str(ports["jailbird"])],
                              check=True, capture_output=True, text=True).stdout
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{d}/ssh_id"], check=True)
        keys = auth + f'restrict,port-forwarding,permitlisten="localhost:{ports["openssh"]}" ' \
                      f'{open(f"{d}/ssh_id.pub").read().strip()}\n'
        if db_cmd:
            db_pub = subprocess.run(dbkey_cmd + ["-t", "ed25519", "-f", f"{d}/db_id"], check=True,
                                    capture_output=True, text=True).stdout
            db_pub = next(l for l in db_pub.splitlines() if l.startswith("ssh-ed25519"))
            keys += f'restrict,port-forwarding,permitlisten="localhost:{ports["dbclient"]}" {db_pub}\n'
        jd = f"{d}/jail"
        os.mkdir(jd)
        jail = Jail(jd, keys, " ".join(str(p) for p in ports.values()))
        dest = "jbtunnel@127.0.0.1"

        def jailbird(cipher):
            spec = f"{ports['jailbird']}:127.0.0.1:{sink}"
            opts = a.jailbird_opt + ([f"Ciphers={cipher}"] if cipher != "defaults" else [])
            return jb + ["run", "--state", state, "--known-hosts", jail.known_hosts, "-R", spec] \
                + [x for o in opts for x in ("-o", o)] + [f"{dest}:{jail.port}"]

        def openssh(cipher):
            opts = a.ssh_opt + ([f"Ciphers={cipher}"] if cipher != "defaults" else [])
            return ssh_cmd + ["-F", "/dev/null", "-N", "-v", "-o", "BatchMode=yes",
                              "-o", f"UserKnownHostsFile={jail.known_hosts}", "-o", "ExitOnForwardFailure=yes",
                              "-o", "ServerAliveInterval=10", "-i", f"{d}/ssh_id", "-p", str(jail.port),
                              "-R", f"{ports['openssh']}:127.0.0.1:{sink}"] \
                + [x for o in opts for x in ("-o", o)] + [dest]

        def dbclient(cipher):
            # -y: accept the (loopback, just generated) jail key; HOME keeps its known_hosts in the temp dir.
            return db_cmd + ["-N", "-y", "-W", "2097152", "-i", f"{d}/db_id"] \
                + (["-c", cipher] if cipher != "defaults" else []) \
                + ["-R", f"{ports['dbclient']}:127.0.0.1:{sink}", f"{dest}/{jail.port}"]

        try:
            if a.callgrind:
                ipm = callgrind(jailbird(rows[0]), jail, ports["jailbird"], a.callgrind)
                print(f"{a.bin}: {ipm / 1e6:.1f} M instructions per MiB forwarded ({a.callgrind} MiB, "
                      f"callgrind, cipher {rows[0]})")
                return 0
            for cipher in rows:
                clients = [Client("jailbird", a.wrap.split() + jailbird(cipher), ports["jailbird"], f"{d}/jailbird.log"),
                           Client("openssh", openssh(cipher), ports["openssh"], f"{d}/ssh.log")]
                if db_cmd and (cipher == "defaults" or cipher in db_ciphers):
                    clients.append(Client("dbclient", dbclient(cipher), ports["dbclient"], f"{d}/dbclient.log",
                                          dict(os.environ, HOME=d)))
                row_footprint = footprint and cipher == "defaults"
                for c in clients:
                    c.start(jail, a.start_timeout)
                if row_footprint:
                    time.sleep(5)
                    for c in clients:
                        c.idle = rss_kib(c.proc.pid)
                for r in range(a.runs):
                    for c in clients[r % len(clients):] + clients[:r % len(clients)]:
                        mbs, cpu, jcpu = c.transfer(a.mib, row_footprint)
                        print(f"  {cipher} {c.name} ({c.cipher}) run {r + 1}: {mbs:.1f} MB/s, agent "
                              f"{cpu * 1024:.2f} s/GiB, jail {jcpu * 1024:.2f} s/GiB, wake-ups per MiB "
                              f"agent {c.wakes[-1]:.0f} jail {c.jail_wakes[-1]:.1f}", file=sys.stderr)
                if row_footprint:
                    for c in clients:
                        c.busy32()
                for c in clients:
                    c.stop()
                for c in clients:
                    if c.claimed and c.claimed != c.cipher:
                        refused.append(f"{cipher}: {c.name} says it negotiated {c.claimed}, the jail logged {c.cipher}")
                if cipher != "defaults":
                    wrong = [f"{c.name} negotiated {c.cipher}" for c in clients if c.cipher != cipher]
                    if wrong:
                        refused.append(f"{cipher}: " + ", ".join(wrong))
                results.append((cipher, clients))
        finally:
            jail.close()

    scale = 1024 if a.per == "GiB" else 1
    cfmt = "{:.2f}" if a.per == "GiB" else "{:.4f}"
    built = time.strftime("%Y-%m-%d %H:%M", time.localtime(os.path.getmtime(a.bin))) if os.path.exists(a.bin) else "?"
    bin_size = os.path.getsize(a.bin) if os.path.exists(a.bin) else "?"
    print(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}, {machine()}; load average {load_before} before, {load()} after")
    if a.label:
        print(f"# {a.label}")
    print(f"# jailbird {jb_target} {a.bin} ({bin_size} bytes, built {built}); source tree now: {git_state()}"
          + (f", run under '{a.runner}'" if a.runner else ""))
    print(f"# OpenSSH client: {ssh_version} ({' '.join(ssh_cmd)}); jail: host sshd on loopback"
          + (f"; dbclient: {db_version} ({' '.join(db_cmd)}) -W 2097152" if db_cmd else ""))
    print(f"# {a.mib} MiB per transfer, median of {a.runs}, clients taking turns; cipher per session from the "
          f"jail's log; CPU = on-CPU s per {a.per} (schedstat; agent: its process tree; jail: that session's sshds)")
    head = (f"| cipher | jailbird MB/s | OpenSSH MB/s | jb/ssh | agent CPU s/{a.per} jailbird | OpenSSH | jb/ssh "
            f"| jail CPU s/{a.per} serving jailbird | serving OpenSSH | jb/ssh |")
    with_db = bool(db_cmd)
    if with_db:
        head += f" dbclient MB/s | dbclient CPU s/{a.per} | jail CPU serving dbclient |"
    print(head)
    print("|---|" + "---:|" * (head.count("|") - 2))
    bad_rows = {r.split(":")[0] for r in refused}
    def ratio(x, y):
        return f"{x / y:.2f}" if y else "–"

    for cipher, clients in results:
        if cipher in bad_rows:
            print(f"| {cipher} | refused: " + "; ".join(r for r in refused if r.startswith(cipher + ":")) + " |")
            continue
        f = {c.name: c.figures() for c in clients}
        j, o = f["jailbird"], f["openssh"]
        label = (f"defaults: jailbird {clients[0].cipher}, OpenSSH {clients[1].cipher}" if cipher == "defaults"
                 else f"{cipher} (both)")
        line = (f"| {label} | {j['mbs']:.0f} | {o['mbs']:.0f} | {ratio(j['mbs'], o['mbs'])} "
                f"| {cfmt.format(j['cpu'] * scale)} | {cfmt.format(o['cpu'] * scale)} | {ratio(j['cpu'], o['cpu'])} "
                f"| {cfmt.format(j['jail'] * scale)} | {cfmt.format(o['jail'] * scale)} | {ratio(j['jail'], o['jail'])} |")
        if with_db:
            if "dbclient" in f:
                b = f["dbclient"]
                line += (f" {b['mbs']:.0f} ({clients[2].cipher}) | {cfmt.format(b['cpu'] * scale)} "
                         f"| {cfmt.format(b['jail'] * scale)} |")
            else:
                line += " – | – | – |"
        print(line)
    print("\n# wake-ups per MiB (times scheduled onto a CPU, schedstat; median of the same runs)")
    print("| cipher | agent jailbird | OpenSSH | jb/ssh | jail serving jailbird | serving OpenSSH | jb/ssh |\n"
          "|---|---:|---:|---:|---:|---:|---:|")
    for cipher, clients in results:
        if cipher in bad_rows:
            continue
        f = {c.name: c.figures() for c in clients}
        j, o = f["jailbird"], f["openssh"]
        print(f"| {cipher} | {j['wakes']:.0f} | {o['wakes']:.0f} | {ratio(j['wakes'], o['wakes'])} "
              f"| {j['jail_wakes']:.1f} | {o['jail_wakes']:.1f} | {ratio(j['jail_wakes'], o['jail_wakes'])} |")
    if footprint:
        cl = dict(results)["defaults"]
        print(f"\n# footprint, defaults row ({', '.join(f'{c.name} {c.cipher}' for c in cl)})")
        print("| figure | jailbird | OpenSSH ssh | jailbird/OpenSSH |" + (" dbclient |" if len(cl) > 2 else "")
              + "\n|---|---:|---:|---:|" + ("---:|" if len(cl) > 2 else ""))
        for c in cl:
            c.peak = max(c.peaks)
        for label, key, fmt in [("exec -> usable tunnel (ms)", "up_ms", "{:.0f}"), ("idle VmRSS (KiB)", "idle", "{}"),
                                ("peak VmRSS, 1 transfer (KiB)", "peak", "{}"),
                                ("peak VmRSS, 32 busy (KiB)", "peak32", "{}")]:
            v = [getattr(c, key) for c in cl]
            print(f"| {label} | {fmt.format(v[0])} | {fmt.format(v[1])} | {ratio(v[0], v[1])} |"
                  + (f" {fmt.format(v[2])} |" if len(v) > 2 else ""))
    for r in refused:
        print(f"refused {r}", file=sys.stderr)
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
