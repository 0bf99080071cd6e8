#!/usr/bin/env python3
"""Warden's benchmark suite: every goal of BENCHMARKS.md, measured side by side in one run.

It drives the release binary (`cargo build --release` first) as separate processes, the way an
operator would run them: servers on free loopback ports with fresh data directories, and
`warden bench ... --json` as the client. Runs of the things compared are interleaved, round after
round, and the medians are compared, so that a slow moment of this small, shared machine falls on
both sides. It prints Markdown tables and writes every run's JSON to --out.

    python3 bench/suite.py                      # everything (about 20 minutes on 2 cores)
    python3 bench/suite.py --quick              # a smaller, shorter version (a few minutes)
    python3 bench/suite.py --sections cse,admission --rounds 5 --duration 10

Sections:
  registry   1,000,000 App-IDs imported, then lookups over HTTP at concurrency 32
  cse        ceiling, cin-create, cin-retrieve, discovery, ae-register; cin-create on an empty
             store against a store holding 1,000,000 instances
  admission  ae-register with admission off and on (warden up's default policy), over plain
             HTTP and over (mutual) TLS, with a warm cache and with a cold one
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "warden")
TOKEN = "bench-suite-admin-token-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARDEN_")}
    env["RUST_LOG"] = "warn"
    env.update(extra or {})
    return env


class Server:
    """A `warden` server process with its own data directory, stopped with SIGTERM."""

    def __init__(self, name, args, tmp, env=None):
        self.name, self.tmp = name, tmp
        self.data = tempfile.mkdtemp(prefix=f"{name}-", dir=tmp)
        self.log = open(os.path.join(tmp, f"{name}.log"), "ab")
        self.proc = subprocess.Popen([BIN, *args(self.data)], env=clean_env(env), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)

    def wait_ready(self, url, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with {self.proc.returncode}; see {self.log.name}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.1)
        sys.exit(f"{self.name} not ready at {url} after {timeout} s; see {self.log.name}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


def cse_server(name, tmp, tls_files=None):
    port = free_port()
    tls_port = free_port() if tls_files else None

    def args(data):
        a = ["cse", "serve", "--listen", f"127.0.0.1:{port}", "--data", data]
        if tls_files:
            a += ["--listen-tls", f"127.0.0.1:{tls_port}", "--tls-cert", tls_files[0], "--tls-key", tls_files[1]]
        return a

    s = Server(name, args, tmp)
    s.url = f"http://127.0.0.1:{port}"
    s.tls_url = f"https://localhost:{tls_port}" if tls_files else None
    return s.wait_ready(s.url + "/healthz")


RUNS = []


def bench(label, scenario, *args):
    """One `warden bench` run; its JSON summary, labelled and kept for --out."""
    cmd = [BIN, "bench", scenario, "--json", *map(str, args)]
    p = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=3600)
    try:
        report = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        sys.exit(f"{label}: `{' '.join(cmd)}` gave no JSON (exit {p.returncode}):\n{p.stderr[-2000:]}")
    report["label"] = label
    RUNS.append(report)
    errors = report.get("errors", 0)
    lat = report["latency_us"]
    print(f"  {label:<28} {report['throughput_rps']:>9.0f} req/s  p50 {lat['p50'] / 1000:6.2f} ms  "
          f"p99 {lat['p99'] / 1000:6.2f} ms" + (f"  ERRORS {errors}: {report.get('errors_by_kind')}" if errors else ""),
          flush=True)
    return report


def med(runs, key):
    vals = [r["throughput_rps"] if key == "rps" else r["latency_us"][key] for r in runs]
    return statistics.median(vals)


def table(title, rows, header):
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(flush=True)


def fmt_rps(v):
    return f"{v:,.0f}"


def fmt_ms(us):
    return f"{us / 1000:.2f}"


def summary_rows(groups, names, base=None):
    rows = []
    for name in names:
        runs = groups[name]
        row = [name, fmt_rps(med(runs, "rps")), fmt_ms(med(runs, "p50")), fmt_ms(med(runs, "p90")),
               fmt_ms(med(runs, "p99")), str(sum(r.get("errors", 0) for r in runs))]
        if base:
            row.append(f"{med(runs, 'rps') / med(groups[base], 'rps'):.2f}")
        rows.append(row)
    return rows


HEADER = ["run", "req/s (median)", "p50 ms", "p90 ms", "p99 ms", "errors"]


def section_registry(o, tmp):
    print(f"\n## registry: {o.preload:,} App-IDs, lookups at -c 32", flush=True)
    port = free_port()
    reg = Server("registry", lambda d: ["registry", "serve", "--listen", f"127.0.0.1:{port}", "--data", d], tmp,
                 {"WARDEN_ADMIN_TOKEN": TOKEN}).wait_ready(f"http://127.0.0.1:{port}/healthz")
    url = f"http://127.0.0.1:{port}"
    try:
        groups = {"registry-lookup": [], "registry-lookup at 20,000/s": []}
        for r in range(o.rounds):
            for name, extra in [("registry-lookup", []), ("registry-lookup at 20,000/s", ["--rate", 20000])]:
                groups[name].append(bench(f"{name} #{r + 1}", "registry-lookup", "--registry", url, "--token", TOKEN,
                                          "--preload", o.preload, "--duration", o.duration, *extra))
        imp = groups["registry-lookup"][0]["import"]
        # Closed loop: what it can do at -c 32; open loop at the goal's rate: the latency at that load.
        table("Registry", summary_rows(groups, list(groups)), HEADER)
        print(f"Import: {imp['records']:,} records in {imp['seconds']:.1f} s ({imp['records_per_s']:,.0f} records/s).")
    finally:
        reg.stop()


def section_cse(o, tmp):
    print(f"\n## cse: scenarios against ceiling, -c 32, {o.rounds} rounds of {o.duration} s", flush=True)
    cse = cse_server("cse", tmp)
    groups = {n: [] for n in ["ceiling", "cin-create", "cin-retrieve", "discovery", "ae-register"]}
    try:
        for r in range(o.rounds):
            for name in groups:
                args = ["--duration", o.duration]
                if name != "ceiling":
                    args += ["--target", cse.url]
                groups[name].append(bench(f"{name} #{r + 1}", name, *args))
    finally:
        cse.stop()
    table("CSE scenarios (ratio: to ceiling, medians of the same run)", summary_rows(groups, list(groups), "ceiling"),
          HEADER + ["ratio"])

    print(f"\n## cse: cin-create on an empty store and on one holding {o.instances:,} instances", flush=True)
    full = cse_server("cse-full", tmp)
    try:
        fill = bench("fill", "cin-create", "--target", full.url, "--count", o.instances, "--warmup", 0)
        pair = {"empty store": [], f"{o.instances:,} stored": []}
        for r in range(o.rounds):
            order = list(pair) if r % 2 == 0 else list(reversed(pair))
            for name in order:
                if name == "empty store":
                    empty = cse_server("cse-empty", tmp)
                    try:
                        pair[name].append(bench(f"{name} #{r + 1}", "cin-create", "--target", empty.url,
                                                "--duration", o.duration))
                    finally:
                        empty.stop()
                else:
                    pair[name].append(bench(f"{name} #{r + 1}", "cin-create", "--target", full.url,
                                            "--duration", o.duration))
    finally:
        full.stop()
    table("cin-create and the size of the store (ratio: to the empty store)",
          summary_rows(pair, list(pair), "empty store"), HEADER + ["ratio"])
    print(f"Filling: {o.instances:,} instances at {fill['throughput_rps']:,.0f}/s.")


def section_admission(o, tmp):
    print(f"\n## admission: ae-register, admission off and on, -c 32, {o.rounds} rounds", flush=True)
    reg_port = free_port()
    up = Server("up", lambda d: ["up", "--data", d, "--listen", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0",
                                 "--registry-listen", f"127.0.0.1:{reg_port}"], tmp, {"WARDEN_ADMIN_TOKEN": TOKEN})
    up.wait_ready(f"http://127.0.0.1:{reg_port}/healthz")
    up_file = os.path.join(up.data, "up.json")
    deadline = time.time() + 60
    while not os.path.exists(up_file) and time.time() < deadline:
        time.sleep(0.1)
    urls = json.load(open(up_file))
    up.wait_ready(urls["cse"] + "/healthz")
    pki = os.path.join(up.data, "pki")
    ca = os.path.join(pki, "server-ca", "cert.pem")
    device = os.path.join(pki, "devices", "Rdemo.org.warden.press")
    off = cse_server("cse-off", tmp, (os.path.join(pki, "server", "cert.pem"), os.path.join(pki, "server", "key.pem")))
    cold_count = max(2000, int(o.duration * 2000))
    variants = {
        "off, http": ["--target", off.url, "--api", "Nbench.app"],
        "on, http (warm)": ["--target", urls["cse"], "--api", "Rdemo.org.warden.thermostat"],
        "off, https": ["--target", off.tls_url, "--cacert", ca, "--api", "Nbench.app"],
        "on, mutual TLS (warm)": ["--target", urls["cseTls"], "--cacert", ca, "--cert",
                                  os.path.join(device, "cert.pem"), "--key", os.path.join(device, "key.pem"),
                                  "--api", "Rdemo.org.warden.press"],
        "on, http (cold)": None,
        # At a fixed rate well below saturation, latency is what one request costs, not queueing.
        "on, http (warm, 1000/s)": ["--target", urls["cse"], "--api", "Rdemo.org.warden.thermostat", "--rate", 1000],
        "on, http (cold, 1000/s)": "cold-open",
    }
    groups = {n: [] for n in variants}
    try:
        for r in range(o.rounds):
            for name, args in variants.items():
                if args is None or args == "cold-open":
                    # A new preloaded App-ID per AE, never one an earlier run made the CSE cache.
                    start = (2 * r + (args == "cold-open")) * cold_count
                    args = ["--target", urls["cse"], "--api-preloaded", cold_count * o.rounds * 2,
                            "--api-start", start, "--registry", urls["registry"], "--token", TOKEN,
                            "--count", cold_count, "--warmup", 0] + (["--rate", 1000] if args else [])
                else:
                    args = args + ["--duration", o.duration]
                groups[name].append(bench(f"{name} #{r + 1}", "ae-register", *args))
    finally:
        off.stop()
        up.stop()
    table("ae-register with admission (ratio: to admission off over plain HTTP)",
          summary_rows(groups, list(groups), "off, http"), HEADER + ["ratio"])
    m = {n: med(g, "rps") for n, g in groups.items()}
    print(f"- admission on / off over HTTP: {m['on, http (warm)'] / m['off, http']:.2f}")
    print(f"- admission on over mutual TLS / off over server-only TLS: "
          f"{m['on, mutual TLS (warm)'] / m['off, https']:.2f}")
    for how, cold_name, warm_name in [("closed loop, -c 32", "on, http (cold)", "on, http (warm)"),
                                      ("open loop, 1000/s", "on, http (cold, 1000/s)", "on, http (warm, 1000/s)")]:
        cold, warm = med(groups[cold_name], "p99"), med(groups[warm_name], "p99")
        print(f"- p99 cold cache - p99 warm cache ({how}): {(cold - warm) / 1000:+.2f} ms "
              f"(cold {fmt_ms(cold)} ms, warm {fmt_ms(warm)} ms)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sections", default="registry,cse,admission")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    ap.add_argument("--preload", type=int, default=1_000_000, help="App-IDs in the registry")
    ap.add_argument("--instances", type=int, default=1_000_000, help="contentInstances in the full store")
    ap.add_argument("--quick", action="store_true", help="2 rounds of 3 s, 100,000 App-IDs and instances")
    ap.add_argument("--out", default=os.path.join(ROOT, "target", "bench-results.json"))
    o = ap.parse_args()
    if o.quick:
        o.rounds, o.duration, o.preload, o.instances = 2, 3.0, 100_000, 100_000
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} is missing: run `cargo build --release` first")
    sections = {"registry": section_registry, "cse": section_cse, "admission": section_admission}
    chosen = [s.strip() for s in o.sections.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in sections]
    if unknown:
        sys.exit(f"unknown sections {unknown}; choose from {list(sections)}")
    load = os.getloadavg()[0]
    print(f"# Warden benchmark suite: {time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
          f"load {load:.1f} at start, {o.rounds} rounds of {o.duration} s", flush=True)
    tmp = tempfile.mkdtemp(prefix="warden-bench-")
    completed = False
    try:
        for s in chosen:
            sections[s](o, tmp)
        completed = True
    finally:
        os.makedirs(os.path.dirname(o.out), exist_ok=True)
        with open(o.out, "w") as f:
            json.dump({"options": vars(o), "runs": RUNS}, f, indent=1)
        print(f"\nEvery run's JSON: {o.out}")
        if completed:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"Server logs: {tmp}")


if __name__ == "__main__":
    main()
