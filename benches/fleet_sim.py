#!/usr/bin/env python3
"""The fleet simulator's driver: N simulated devices (benches/fleet-sim, the
agent's own supervisor per device) against one real OpenSSH jail that warden
authorizes, then a reconnect storm.

  * steady state: time until all N are up at a ramp rate, connect attempts,
    failures by kind, the jail's process count, RSS and PSS per device, its
    CPU per login, `authorized-keys` latency p50/p99 measured while the fleet
    connects, echo round trips through a sample of forwards;
  * storm (--storm): SIGKILL the jail's sshd and every child, start it again
    at once (as systemd's Restart= would), and time until all N are back,
    with the attempts and failures it took; per --policies, each a fresh
    fleet on the same jail (the agent's reconnect policy is src/backoff.rs).

Run as root from a built tree (no network needed):

    cargo build --release -p warden && cargo build --profile sim -p fleet-sim
    python3 benches/fleet_sim.py --devices 1000 --storm --policies equal,full,agent

    # on a bigger machine, same tree: the script starts its own jail
    python3 benches/fleet_sim.py --devices 10000 --ramp 200 --storm

    # or against a jail that runs already (a staging jail host; its registry,
    # reachable from here, gets N devices enrolled in the jail's pool: use a
    # registry or pool kept for the simulation). The storm is --storm-cmd's job
    # there, and echo checks need the jail's loopback (run it on the jail host).
    python3 benches/fleet_sim.py --jail jail-a.example:22 --jail-name jail-a \
        --db postgres://warden@db.internal/warden --devices 10000 --ramp 200 \
        --storm --storm-cmd 'ssh root@jail-a.example systemctl kill -s KILL ssh' --echo 0

Exit status 1 if a device never came up (or did not come back after a storm)
or an echo failed: `--devices 50 --storm` is CI's smoke test.
Figures are printed with date, machine and versions.
"""
import argparse
import json
import os
import platform
import queue
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fleet_bench import Pg, free_port, install_warden, pct, run, wait_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid):
    """pid and every process below it (a walk of /proc)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_secs(pids):
    """utime+stime of live processes plus what they reaped (cutime+cstime)."""
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15])
        except (OSError, IndexError, ValueError):
            pass
    return total / TICKS


def machine_busy():
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def busy_since(b0):
    b1 = machine_busy()
    return 100.0 * (b1[0] - b0[0]) / max(1, b1[1] - b0[1])


def memory_kib(pids):
    """(RSS, PSS) summed over pids, from smaps_rollup."""
    rss = pss = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


class Jail:
    """A stock OpenSSH sshd with warden's drop-in, on a free loopback port."""

    def __init__(self, tmp, dropin, host_key, port):
        self.tmp, self.port = tmp, port
        self.cfg = os.path.join(tmp, "sshd_config")
        with open(os.path.join(tmp, "warden.conf"), "w") as f:
            f.write(dropin)
        with open(self.cfg, "w") as f:
            f.write(f"Include {tmp}/warden.conf\nListenAddress 127.0.0.1:{port}\nHostKey {host_key}\n"
                    f"PidFile none\nUsePAM no\n")
        self.proc = None
        self.starts = 0

    def start(self):
        self.starts += 1
        log = open(os.path.join(self.tmp, f"sshd-{self.starts}.log"), "w")
        os.makedirs("/run/sshd", exist_ok=True)
        self.proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", self.cfg], stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.port)

    def pids(self):
        return descendants(self.proc.pid)

    def kill(self):
        """SIGKILL the listener and every child: a crash, not a shutdown."""
        for p in self.pids():
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()

    def log_text(self):
        out = ""
        for i in range(1, self.starts + 1):
            with open(os.path.join(self.tmp, f"sshd-{i}.log")) as f:
                out += f.read()
        return out


class Sim:
    """One fleet-sim run: its JSON lines go to a queue."""

    def __init__(self, binary, plan, jail_host, jail_port, user, known_hosts, ramp, policy):
        self.p = subprocess.Popen([binary, "run", "--plan", plan, "--jail", f"{jail_host}:{jail_port}",
                                   "--user", user, "--known-hosts", known_hosts, "--ramp", str(ramp),
                                   "--policy", policy],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.q = queue.Queue()
        self.last = {}
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            try:
                self.q.put(json.loads(line))
            except ValueError:
                sys.stderr.write(line)
        self.q.put(None)

    def wait(self, pred, deadline):
        """The first line (a progress report or an event) for which pred holds, or None at the deadline."""
        end = time.time() + deadline
        while time.time() < end:
            try:
                m = self.q.get(timeout=max(0.05, end - time.time()))
            except queue.Empty:
                break
            if m is None:
                raise SystemExit("fleet-sim exited early")
            if "event" not in m:
                self.last = m
            if pred(m):
                return m
        return None

    def command(self, line):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()

    def quit(self):
        try:
            self.command("quit")
        except BrokenPipeError:
            pass
        try:
            self.p.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.p.kill()


class AkProbe(threading.Thread):
    """`warden authorized-keys` timed as sshd runs it (as the command user), every `every` seconds."""

    def __init__(self, binary, db, jail, user, fps, every=0.1):
        super().__init__(daemon=True)
        self.args = (binary, db, jail, user)
        self.fps, self.every = fps, every
        self.times, self.refused = [], 0
        self.stop = threading.Event()
        import pwd
        try:  # as sshd runs it: the command user
            self.uid, self.gid = pwd.getpwnam("warden").pw_uid, pwd.getpwnam("warden").pw_gid
        except KeyError:
            self.uid, self.gid = os.getuid(), os.getgid()

    def run(self):
        binary, db, jail, user = self.args
        i = 0
        while not self.stop.is_set():
            fp = self.fps[i % len(self.fps)]
            i += 1
            t0 = time.perf_counter()
            p = subprocess.run([binary, "--db", db, "authorized-keys", "--jail", jail, user, fp],
                               capture_output=True, text=True, user=self.uid, group=self.gid)
            self.times.append((time.perf_counter() - t0) * 1000.0)
            if not p.stdout.startswith("restrict,"):
                self.refused += 1
            self.stop.wait(self.every)

    def result(self):
        self.stop.set()
        self.join()
        return self.times, self.refused


def delta(after, before):
    out = {}
    for k, v in after.get("failures", {}).items():
        d = v - before.get("failures", {}).get(k, 0)
        if d:
            out[k] = d
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--ramp", type=float, default=100.0, help="devices started per second (default 100)")
    ap.add_argument("--storm", action="store_true", help="kill and restart the jail once all are up")
    ap.add_argument("--policies", default="agent",
                    help="comma-separated: agent, equal (before issue 16), full, spread:SECS")
    ap.add_argument("--settle", type=float, default=12.0,
                    help="seconds all stay up before the storm (the agent resets its backoff after 10 s up)")
    ap.add_argument("--echo", type=int, default=100, help="devices whose forward is echo-checked")
    ap.add_argument("--deadline", type=float, default=600.0, help="seconds allowed for all to come up (or back)")
    ap.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    ap.add_argument("--max-startups", help="override the MaxStartups warden derives from the pool size")
    ap.add_argument("--jail", help="HOST:PORT of a running jail (default: start one on loopback)")
    ap.add_argument("--jail-name", help="with --jail: its name in the registry (its pool gets the devices)")
    ap.add_argument("--db", help="with --jail: the registry that jail's sshd asks")
    ap.add_argument("--storm-cmd", help="with --jail: a shell command that kills the jail's sshd (it must come back)")
    ap.add_argument("--sim", default=os.path.join(ROOT, "target/sim/fleet-sim"))
    ap.add_argument("--warden", default=os.path.join(ROOT, "target/release/warden"))
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: the simulation runs sshd (and PostgreSQL) under their own accounts")
    remote = bool(a.jail)
    if remote and not (a.jail_name and a.db):
        raise SystemExit("--jail needs --jail-name and --db (the registry that jail asks)")
    if remote and a.storm and not a.storm_cmd:
        raise SystemExit("--storm with --jail needs --storm-cmd: this script cannot kill a jail elsewhere")
    for b in (a.sim, a.warden):
        if not os.path.exists(b):
            raise SystemExit(f"{b} missing: cargo build --release -p warden; cargo build --profile sim -p fleet-sim")
    tunuser = os.environ.get("JAILBIRD_TEST_JAIL_USER", "jbtunnel")
    tmp = tempfile.mkdtemp(prefix="fleet-sim-")
    os.chmod(tmp, 0o755)
    bindir, warden = install_warden(a.warden, "fleet-sim")
    warden_v = run([warden, "--version"]).stdout.strip()
    pg, jail, sim = None, None, None
    ok = True
    rows = []
    try:
        if remote:
            db = a.db
            w = lambda *args: run([warden, "--db", db, *args]).stdout  # noqa: E731
            j = next((j for j in json.loads(w("jail", "ls", "--json")) if j["name"] == a.jail_name), None)
            if j is None:
                raise SystemExit(f"--jail-name {a.jail_name}: no such jail in {db}")
            pool, jail_name, tunuser = j["pool"], j["name"], j["user"]
            jhost, jport = a.jail.rsplit(":", 1)
            jport = int(jport)
            known_hosts = os.path.join(tmp, "known_hosts")
            with open(known_hosts, "w") as f:
                f.write((f"[{jhost}]:{jport}" if jport != 22 else jhost) + f" {j['host_key']}\n")
            settings = {"jail": f"{a.jail} (running; its sshd_config is its own)"}
        else:
            pool, jail_name, jhost = "sim", "jail-sim", "127.0.0.1"
            if a.backend == "postgres":
                pg = Pg(tmp)
                db = pg.url
            else:
                regdir = os.path.join(tmp, "reg")
                os.makedirs(regdir)
                run(["chown", "warden:warden", regdir])
                os.chmod(regdir, 0o750)
                db = f"sqlite://{regdir}/registry.db"
            w = lambda *args: run([warden, "--db", db, *args]).stdout  # noqa: E731
            lo = 20000
            w("pool", "add", "sim", "--ports", f"{lo}-{lo + a.devices - 1}")
            host_key = os.path.join(tmp, "host_key")
            run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", host_key])
            host_pub = " ".join(open(host_key + ".pub").read().split()[:2])
            jport = free_port()
            w("jail", "add", "jail-sim", "--address", f"127.0.0.1:{jport}", "--host-key", host_pub,
              "--pool", "sim", "--user", tunuser, "--operator-user", "jbop")
            dropin = w("sshd-config", "--jail", "jail-sim", "--binary", warden, "--operator-user", "jbop")
            if a.max_startups:
                dropin = "\n".join(f"MaxStartups {a.max_startups}" if l.startswith("MaxStartups ") else l
                                   for l in dropin.splitlines()) + "\n"
            settings = {k: v for k, v in (l.split(None, 1) for l in dropin.splitlines()
                                          if l.split(None, 1)[:1] and l.split()[0] in
                                          ("MaxStartups", "LoginGraceTime", "PerSourcePenalties"))}
            known_hosts = os.path.join(tmp, "known_hosts")
            with open(known_hosts, "w") as f:
                f.write(f"[127.0.0.1]:{jport} {host_pub}\n")
        t0 = time.perf_counter()
        csv = run([a.sim, "keys", os.path.join(tmp, "keys"), str(a.devices), pool]).stdout
        with open(os.path.join(tmp, "fleet.csv"), "w") as f:
            f.write(csv)
        w("import", os.path.join(tmp, "fleet.csv"))
        enrol = time.perf_counter() - t0
        ports = {d["id"]: d["port"] for d in json.loads(w("ls", "--pool", pool, "--json"))}
        lines = csv.strip().splitlines()[1:]
        plan = os.path.join(tmp, "plan")
        fps = []
        with open(plan, "w") as f:
            for i, row in enumerate(lines):
                dev_id = row.split(",", 1)[0]
                f.write(f"{tmp}/keys/{i:05d}.state {ports[dev_id]}\n")
        for row in lines[:50]:
            kl = row.split(",")[2].split()
            fps.append(subprocess.run(["ssh-keygen", "-lf", "-"], input=" ".join(kl) + "\n",
                                      capture_output=True, text=True).stdout.split()[1])

        if not remote:
            jail = Jail(tmp, dropin, host_key, jport)
            jail.start()
        for policy in a.policies.split(","):
            row = {"policy": policy}
            cpu0 = cpu_secs(jail.pids()) if jail else 0
            busy0 = machine_busy()
            probe = AkProbe(warden, db, jail_name, tunuser, fps)
            probe.start()
            sim = Sim(a.sim, plan, jhost, jport, tunuser, known_hosts, a.ramp, policy)
            first = sim.wait(lambda m: m.get("event") == "all-up", a.deadline)
            ak, ak_refused = probe.result()
            if first is None:
                ok = False
                row["up"] = f"{sim.last.get('up', 0)}/{a.devices} after {a.deadline:.0f} s"
                print(f"# {policy}: not all up: {sim.last}", file=sys.stderr)
                rows.append(row)
                sim.quit()
                continue
            steady = sim.wait(lambda m: "event" not in m, 5) or sim.last
            pids = jail.pids() if jail else [0]
            rss, pss = memory_kib(pids[1:])
            row.update(busy=busy_since(busy0), sim_cpu=cpu_secs([sim.p.pid]))
            row.update(all_up=first["t"], attempts=steady["attempts"], failures=delta(steady, {}),
                       procs=len(pids) - 1, rss=rss, pss=pss, jail_cpu=cpu_secs(pids) - cpu0 if jail else 0,
                       sim_rss=steady["rss_kib"], ak=ak, ak_refused=ak_refused)
            k = min(a.echo, a.devices)
            row["echo"] = echo(sim, k)
            ok = ok and row["echo"] in (f"{k}/{k}", "none")
            if a.storm:
                idle0, t_idle = (cpu_secs(jail.pids()) if jail else 0), time.time()
                sim.wait(lambda m: False, a.settle)
                if jail:  # keepalives and nothing else: the steady state's cost
                    row["idle_ms_per_device_min"] = (cpu_secs(jail.pids()) - idle0) * 1000 * 60 / (
                        (time.time() - t_idle) * a.devices)
                before = sim.last
                t_kill = time.time()
                busy1 = machine_busy()
                sim_cpu1 = cpu_secs([sim.p.pid])
                if jail:
                    jail.kill()
                    jail.start()
                else:
                    subprocess.run(a.storm_cmd, shell=True, check=True)
                cpu1 = cpu_secs(jail.pids()) if jail else 0
                sim.wait(lambda m: "event" not in m and m["up"] < a.devices, 30)  # the fleet noticed
                back = sim.wait(lambda m: m.get("event") == "all-up", a.deadline)
                if back is None:
                    ok = False
                    row["storm"] = f"{sim.last.get('up', 0)}/{a.devices} back after {a.deadline:.0f} s"
                else:
                    after = sim.wait(lambda m: "event" not in m, 5) or sim.last
                    row.update(storm=time.time() - t_kill, storm_attempts=after["attempts"] - before["attempts"],
                               storm_failures=delta(after, before),
                               storm_cpu=cpu_secs(jail.pids()) - cpu1 if jail else 0,
                               storm_busy=busy_since(busy1), storm_sim_cpu=cpu_secs([sim.p.pid]) - sim_cpu1)
                    row["storm_echo"] = echo(sim, k)
                    ok = ok and row["storm_echo"] in (f"{k}/{k}", "none")
            sim.quit()
            sim = None
            rows.append(row)
    finally:
        if sim:
            sim.p.kill()
        if jail and jail.proc:
            jail.kill()
        if pg:
            pg.stop()
        shutil.rmtree(bindir, ignore_errors=True)
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"# kept {tmp} (sshd logs) for a look", file=sys.stderr)

    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    sshd_v = subprocess.run(["ssh", "-V"], capture_output=True, text=True).stderr.strip()
    print(f"# fleet simulation, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# machine: {platform.node()}, {os.cpu_count()} cores, {cpu}, "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Linux {platform.release()}")
    print(f"# versions: {warden_v}, "
          f"jailbird {run([os.path.join(ROOT, 'target/release/jailbird'), '--version']).stdout.split()[1] if os.path.exists(os.path.join(ROOT, 'target/release/jailbird')) else '(library)'} supervisors in fleet-sim, "
          f"{sshd_v}, registry {a.backend}")
    print(f"# {a.devices} devices, one jail (sshd with warden's drop-in: "
          + ", ".join(f"{k} {v}" for k, v in settings.items()) + f"), ramp {a.ramp:g}/s, enrolment {enrol:.1f} s")
    print()
    print("| policy | all up (s) | attempts | failures | jail procs | jail PSS MiB (per device KiB) | jail CPU s (ms/login) "
          "| sim CPU s | machine busy | sim RSS MiB (KiB/device) | authorized-keys p50/p99 ms (refused) | echo |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if "all_up" not in r:
            print(f"| {r['policy']} | {r['up']} | | | | | | | | | | |")
            continue
        n = a.devices
        print(f"| {r['policy']} | {r['all_up']:.1f} | {r['attempts']} | {fmt(r['failures'])} | {r['procs']} "
              f"| {r['pss'] / 1024:.0f} ({r['pss'] / n:.0f}) | {r['jail_cpu']:.1f} ({1000 * r['jail_cpu'] / r['attempts']:.1f}) "
              f"| {r['sim_cpu']:.1f} | {r['busy']:.0f} % | {r['sim_rss'] / 1024:.0f} ({r['sim_rss'] / n:.0f}) "
              f"| {statistics.median(r['ak']):.1f}/{pct(r['ak'], 99):.1f} ({r['ak_refused']}) | {r['echo']} |")
    idle = [r["idle_ms_per_device_min"] for r in rows if "idle_ms_per_device_min" in r]
    if idle:
        print(f"\njail CPU while all are up and idle (keepalives): "
              f"{statistics.median(idle):.3f} ms per device per minute (median of {len(idle)})")
    if a.storm:
        print()
        print("| policy | storm: all back (s) | attempts | failures | jail CPU s | sim CPU s | machine busy | echo after |")
        print("|---|---:|---:|---|---:|---:|---:|---|")
        for r in rows:
            if "storm" in r and not isinstance(r["storm"], str):
                print(f"| {r['policy']} | {r['storm']:.1f} | {r['storm_attempts']} | {fmt(r['storm_failures'])} "
                      f"| {r['storm_cpu']:.1f} | {r['storm_sim_cpu']:.1f} | {r['storm_busy']:.0f} % | {r['storm_echo']} |")
            elif "storm" in r:
                print(f"| {r['policy']} | {r['storm']} | | | | | | |")
    if not ok:
        print("\nFAILED: a device did not come up (or back), or an echo failed", file=sys.stderr)
        sys.exit(1)


def echo(sim, k):
    """Round trips through k devices' forwards: "ok/k", or "none" for k = 0."""
    if k == 0:
        return "none"
    sim.command(f"echo {k}")
    e = sim.wait(lambda m: m.get("event") == "echo", 120)
    return f"{e['ok']}/{k}" if e else "no answer"


def fmt(f):
    return ", ".join(f"{k} {v}" for k, v in sorted(f.items())) or "none"


if __name__ == "__main__":
    main()
