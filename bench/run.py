"""scripts/bench runs this: every benchmark, one after the other, on the release build.

Each `parley-bench` subcommand prints Markdown tables; they are kept as they are for
docs/benchmarks.md and parsed into JSON (bench/results/<run>.json, one entry per
benchmark: the command, its tables as lists of rows). With `--peer synapse`, the same
load generator (bench/loadgen.py) drives Parley and Matrix Synapse with the same workload,
and the comparison (with the ratio Parley/Synapse per figure) and plots are added.

The generated parts of docs/benchmarks.md sit between `<!-- bench:KIND:begin -->` and
`<!-- bench:KIND:end -->` (KIND: quick, full, or peer for `--peer` alone); the
hand-written analysis around them stays.
"""

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from parley_tools import free_port, replace_section, wait_http  # noqa: E402


def log(text):
    print(f"bench: {text}", file=sys.stderr, flush=True)


def tables(text):
    """The Markdown tables in `text`: [{columns, rows: [{column: cell}]}]."""
    found, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[-:| ]+\|$", lines[i + 1].strip()):
            columns = [c.strip() for c in lines[i].strip().strip("|").split("|")]
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                cells = [c.strip() for c in lines[i].strip().strip("|").split("|")]
                rows.append(dict(zip(columns, cells)))
                i += 1
            found.append({"columns": columns, "rows": rows})
        else:
            i += 1
    return found


def markdown_tables(text):
    """Only the table lines of `text`, tables separated by a blank line."""
    out, previous = [], False
    for line in text.splitlines():
        is_table = line.startswith("|")
        if is_table and not previous and out:
            out.append("")
        if is_table:
            out.append(line)
        previous = is_table
    return "\n".join(out)


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) // 1024 // 1024} GiB"
    except OSError:
        pass

    def version(command):
        try:
            return subprocess.run(command, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return "?"
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory": memory, "kernel": platform.release(),
        "swift": version(["swift", "--version"]),
        "redis": version(["redis-server", "--version"]),
        "postgresql": version(["psql", "--version"]),
        "mongodb_protocol_server": "nx-27017 " + pip_version(os.path.join(ROOT, ".data/venv/bin/pip"), "nx-27017"),
    }


def pip_version(pip, package):
    try:
        shown = subprocess.run([pip, "show", package], capture_output=True, text=True, timeout=60).stdout
    except OSError:
        return "?"
    found = re.search(r"^Version: (\S+)", shown, re.M)
    return found.group(1) if found else "?"


class Bench:
    def __init__(self, options):
        self.options = options
        self.bin = options.bin
        self.results = []
        self.sections = []

    def run(self, name, title, arguments, note=""):
        command = ["parley-bench", *arguments]
        log(f"{title}: {' '.join(command)}")
        started = time.time()
        result = subprocess.run([os.path.join(self.bin, "parley-bench"), *arguments], cwd=ROOT, capture_output=True, text=True)
        seconds = time.time() - started
        if result.returncode != 0:
            log(f"{name} FAILED ({result.returncode}):\n{result.stderr[-3000:]}")
            raise SystemExit(1)
        found = tables(result.stdout)
        self.results.append({"name": name, "title": title, "command": " ".join(command), "seconds": round(seconds, 1), "tables": found})
        self.sections.append(f"### {title}\n\n`{' '.join(command)}` ({seconds:.0f} s){note}\n\n{markdown_tables(result.stdout)}\n")

    def loadgen(self, target, base, rates):
        o = self.options
        command = [os.path.join(ROOT, ".data/venv-bench/bin/python"), os.path.join(ROOT, "bench/loadgen.py"), "--target", target,
                   "--base", base, "--users", str(o.peer_users), "--rooms", str(o.peer_rooms), "--seconds", str(o.peer_seconds),
                   "--processes", str(o.processes), "--rates", *[str(r) for r in rates]]
        log(f"loadgen against {target}: rates {rates}")
        result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            log(f"loadgen {target} FAILED:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
            raise SystemExit(1)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def peer(self):
        """The same workload against Parley and Synapse; the comparison table and plots."""
        o = self.options
        # Parley: a release server of its own.
        port = free_port()
        name = f"bench_peer_{int(time.time())}"
        env = dict(os.environ, PARLEY_DEV_MODE="1", PARLEY_NAMESPACE=name, PARLEY_POSTGRES_SCHEMA=name, PARLEY_MONGO_COLLECTION=name,
                   PARLEY_BCRYPT_COST="4", PARLEY_RATE_SENDS_PER_SECOND="1000000", PARLEY_RATE_SEND_BURST="1000000",
                   PARLEY_RATE_REGISTRATIONS_PER_MINUTE="1000000", PARLEY_WS_IDLE_SECONDS="3600", PARLEY_LOG_LEVEL="warning",
                   **{f"PARLEY_RATE_{kind}_{what}": "1000000" for kind in ("EDITS", "RECEIPTS", "ROOMS", "MEMBERSHIP", "TYPING")
                      for what in ("PER_MINUTE", "BURST")})
        server = subprocess.Popen([os.path.join(self.bin, "parley-server"), "--port", str(port)], env=env, cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            parley = self.loadgen("parley", f"http://127.0.0.1:{port}", o.parley_rates)
        finally:
            server.terminate()
            server.wait()
        synapse_port = free_port()
        subprocess.run([os.path.join(ROOT, "bench/synapse.sh"), "start", str(synapse_port)], cwd=ROOT, check=True)
        try:
            synapse = self.loadgen("synapse", f"http://127.0.0.1:{synapse_port}", o.synapse_rates)
        finally:
            subprocess.run([os.path.join(ROOT, "bench/synapse.sh"), "stop"], cwd=ROOT)
        synapse_version = pip_version(os.path.join(ROOT, ".data/venv-synapse/bin/pip"), "matrix-synapse")
        self.results.append({"name": "peer", "title": "Parley and Matrix Synapse, same workload", "parley": parley, "synapse": synapse,
                             "synapse_version": synapse_version})
        self.sections.append(peer_section(parley, synapse, synapse_version, o))
        plot(parley, synapse, os.path.join(ROOT, "docs", "latency-vs-rate.png"))


def sustained(run, p99_limit_ms):
    """The highest offered rate with every delivery made and p99 under the limit."""
    best = None
    for row in run["rows"]:
        if row["delivered"] >= row["deliveries_expected"] > 0 and row["send_errors"] == 0 and row["p99_ms"] <= p99_limit_ms:
            best = row
    return best


def peer_section(parley, synapse, synapse_version, o):
    lines = [
        "### Parley and Matrix Synapse, the same workload",
        "",
        f"`scripts/bench --peer synapse`: the same load generator (`bench/loadgen.py`, {o.processes} processes, HdrHistogram) "
        f"against each, one after the other on this machine: {o.peer_users} users in {o.peer_rooms} group rooms of "
        f"{o.peer_users // o.peer_rooms}, messages sent at each fixed rate for {o.peer_seconds:g} s by the rooms' members in turn, "
        "latency from the *scheduled* send to the delivery at every other member. Parley: WebSocket `send` and `event` frames, "
        f"a release `parley-server` with both roles. Synapse {synapse_version} (PyPI, its PostgreSQL backend on the same PostgreSQL, "
        "rate limits raised, presence off): `PUT /rooms/{room}/send` and `/sync` long-polling (30 s), one per user.",
        "",
        "| server | offered msg/s | sent | send errors | deliveries expected | delivered | delivered/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, run in (("Parley", parley), ("Synapse", synapse)):
        for r in run["rows"]:
            lines.append(f"| {label} | {r['offered_per_s']:g} | {r['sent']} | {r['send_errors']} | {r['deliveries_expected']} | {r['delivered']} | "
                         f"{r['delivered_per_s']} | {r['p50_ms']:.1f} | {r['p90_ms']:.1f} | {r['p99_ms']:.1f} | {r['p999_ms']:.1f} | {r['max_ms']:.1f} |")
    lines += ["", "Ratio Parley/Synapse at each rate both were offered (latency: below 1 means Parley is faster):", "",
              "| offered msg/s | delivered/s Parley / Synapse | p50 | p99 | p99.9 |", "|---:|---:|---:|---:|---:|"]
    by_rate = {r["offered_per_s"]: r for r in parley["rows"]}
    for s in synapse["rows"]:
        p = by_rate.get(s["offered_per_s"])
        if not p:
            continue
        def ratio(a, b):
            return f"{a / b:.3f}" if b else "n/a"
        lines.append(f"| {s['offered_per_s']:g} | {ratio(p['delivered_per_s'], s['delivered_per_s'])} | {ratio(p['p50_ms'], s['p50_ms'])} | "
                     f"{ratio(p['p99_ms'], s['p99_ms'])} | {ratio(p['p999_ms'], s['p999_ms'])} |")
    for limit in (1000, 5000):
        ps, ss = sustained(parley, limit), sustained(synapse, limit)
        def describe(best, run):
            if not best:
                return "none of the rates tried"
            text = f"{best['offered_per_s']:g} msg/s ({best['delivered_per_s']} deliveries/s)"
            if best is run["rows"][-1]:
                text += ", the highest rate tried, so its limit is higher"
            return text
        ptext, stext = describe(ps, parley), describe(ss, synapse)
        ratio_text = f"{ps['offered_per_s'] / ss['offered_per_s']:.0f}x" if ps and ss else "n/a"
        if ps and ss and ps is parley["rows"][-1]:
            ratio_text = "at least " + ratio_text
        lines.append("")
        lines.append(f"Highest rate sustained (every delivery made, no send error, p99 under {limit / 1000:g} s): Parley {ptext}; "
                     f"Synapse {stext}; ratio {ratio_text}.")
    lines += ["", "![p50 and p99 send-to-deliver latency against offered rate](latency-vs-rate.png)", ""]
    return "\n".join(lines)


def plot(parley, synapse, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plot")
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    for label, run, color in (("Parley", parley, "tab:blue"), ("Synapse", synapse, "tab:red")):
        rates = [r["offered_per_s"] for r in run["rows"]]
        ax.plot(rates, [max(r["p50_ms"], 0.01) for r in run["rows"]], "o--", color=color, label=f"{label} p50")
        ax.plot(rates, [max(r["p99_ms"], 0.01) for r in run["rows"]], "s-", color=color, label=f"{label} p99")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("offered messages/s")
    ax.set_ylabel("send-to-deliver latency (ms)")
    ax.set_title("Send-to-deliver latency vs offered rate (same workload, same machine)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    log(f"plot: {path}")


def write_docs(path, body, key):
    replace_section(path, f"<!-- bench:{key}:begin -->", f"<!-- bench:{key}:end -->", body)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--peer", choices=["synapse"])
    parser.add_argument("--only-peer", action="store_true", help="skip Parley's own benchmarks")
    parser.add_argument("--command", default="scripts/bench")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--peer-users", type=int, default=100)
    parser.add_argument("--peer-rooms", type=int, default=10)
    parser.add_argument("--peer-seconds", type=float, default=10)
    parser.add_argument("--parley-rates", type=float, nargs="+", default=[5, 10, 20, 50, 100, 200, 500, 1000, 2000])
    parser.add_argument("--synapse-rates", type=float, nargs="+", default=[5, 10, 20, 50])
    o = parser.parse_args()
    bench = Bench(o)
    started = time.time()
    info = machine()
    if not o.only_peer:
        if o.quick:
            bench.run("appends", "Rule-checked appends", ["appends", "--seconds", "3"])
            bench.run("projection", "Projection", ["projection", "--events", "20000", "--rate", "1000", "--seconds", "5"], " (MongoDB figures are nx-27017's)")
            bench.run("rebuild", "Rebuild (parley-replay)", ["rebuild", "--events", "20000", "--skip-all"], " (messages: nx-27017)")
            bench.run("ws", "WebSocket end to end", ["ws", "--users", "200", "--rooms", "20", "--rates", "500", "1000", "--seconds", "3", "--idle", "1000"])
            bench.run("history", "History page reads", ["history", "--messages", "300", "--concurrency", "1", "8", "--seconds", "3"], " (reads from nx-27017)")
        else:
            bench.run("drivers", "Drivers", ["drivers"])
            bench.run("codec", "Codec", ["codec"])
            bench.run("appends", "Rule-checked appends", ["appends", "--seconds", "10"])
            bench.run("appends-rate", "Rule-checked appends at a fixed rate", ["appends", "--rate", "10000", "--seconds", "10"])
            bench.run("projection", "Projection", ["projection", "--events", "100000", "--rate", "2000", "--seconds", "20"], " (MongoDB figures are nx-27017's)")
            bench.run("rebuild", "Rebuild (parley-replay)", ["rebuild", "--events", "100000", "--events", "1000000"], " (messages: nx-27017)")
            bench.run("ws", "WebSocket end to end", ["ws", "--users", "1000", "--rooms", "100", "--rates", "1000", "2000", "3000", "5000", "--seconds", "10", "--idle", "10000"])
            bench.run("history", "History page reads", ["history", "--messages", "2000", "--concurrency", "1", "8", "32", "--seconds", "5"], " (reads from nx-27017)")
    if o.peer:
        bench.peer()
    run_id = time.strftime("%Y%m%d-%H%M%S") + ("-quick" if o.quick else "") + ("-peer" if o.peer else "")
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    result_path = os.path.join(ROOT, "bench", "results", f"{run_id}.json")
    with open(result_path, "w") as f:
        json.dump({"run": run_id, "command": o.command, "machine": info, "seconds": round(time.time() - started), "benchmarks": bench.results}, f, indent=1)
    header = [
        f"## Results of `{o.command}` ({time.strftime('%Y-%m-%d')})",
        "",
        f"Machine: {info['cpu']}, {info['cores']} cores, {info['memory']}, Linux {info['kernel']}. {info['swift']}; "
        f"{info['redis']}; {info['postgresql']}; {info['mongodb_protocol_server']} (the MongoDB-protocol server: its reads take "
        "tens of ms, so figures that read MongoDB say more about it than about Parley). Everything on loopback on this one "
        f"machine, generators included. Machine-readable: `bench/results/{run_id}.json`. Took {time.time() - started:.0f} s.",
        "",
    ]
    key = "peer" if o.only_peer else "quick" if o.quick else "full"
    write_docs(os.path.join(ROOT, "docs", "benchmarks.md"), "\n".join(header + bench.sections), key)
    log(f"results: {result_path}; docs/benchmarks.md updated")


if __name__ == "__main__":
    main()
