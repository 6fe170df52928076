"""A soak run: two instances of the default roles (API, hub and projectors each) on
private services, for many minutes, under what weeks of uptime bring in small: a steady
stream of messages over WebSocket, connections opened and closed all the time, and now
and then one instance frozen (SIGSTOP) for longer than its projector leases last.

Every 30 s it samples each server's resident memory, Redis's memory and the connections
opened so far. At the end it checks that every acknowledged message is in the log once and
that `parley-replay verify` passes, and says whether the servers' memory levelled off:
the growth over the second half of the run compared with the first.

Run by scripts/soak, which builds and names the binaries. Standard library plus
`websockets` (the chaos client is reused).
"""

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chaos  # noqa: E402 - the private services, the server process and the WebSocket client
import websockets  # noqa: E402
from parley_tools import ROOT, replace_section  # noqa: E402


def log(text):
    print(f"soak: {text}", file=sys.stderr, flush=True)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class Soak:
    def __init__(self, options):
        self.options = options
        self.data = os.path.join(ROOT, ".data", "soak")
        self.services = chaos.Services(self.data, options.appendfsync)
        self.samples = []
        self.opened = 0
        self.churn_failures = 0
        self.pauses = 0
        self.stopping = False
        self.sent_at = {}
        self.attacks = {"since=0-0 reconnects": 0, "typing frames": 0, "repeated receipts": 0, "NUL bodies": 0,
                        "login guesses": 0}
        self.attack_answers = {}

    def env(self):
        env = dict(os.environ)
        env.update(self.services.urls())
        limits = {f"PARLEY_RATE_{kind}_{what}": "1000000" for kind in ("EDITS", "RECEIPTS", "ROOMS", "MEMBERSHIP", "TYPING")
                  for what in ("PER_MINUTE", "BURST")}
        env.update(limits)
        env.update({
            "CHAOS_DATA": self.data, "PARLEY_MIGRATIONS_DIR": os.path.join(ROOT, "migrations"),
            "PARLEY_JWT_SECRET": "soak-" + "k" * 40, "PARLEY_BCRYPT_COST": "4",
            "PARLEY_RATE_SENDS_PER_SECOND": "100000", "PARLEY_RATE_SEND_BURST": "100000",
            "PARLEY_RATE_REGISTRATIONS_PER_MINUTE": "100000", "PARLEY_RATE_LOGINS_PER_MINUTE": "100000",
            "PARLEY_WS_MAX_CONNECTIONS_PER_USER": "100000", "PARLEY_LOG_LEVEL": "warning",
        })
        return env

    async def setup(self):
        self.services.down()
        shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data, exist_ok=True)
        self.services.up()
        binary = os.path.join(self.options.bin, "parley-server")
        self.servers = [chaos.Parley(name, binary, "api,projectors", self.env()) for name in ("a", "b")]
        for server in self.servers:
            server.start()
        ports = [s.port for s in self.servers]
        stamp = int(time.time())
        users = []
        for i in range(self.options.users):
            status, reply = await asyncio.to_thread(
                chaos.http, ports[0], "POST", "/v1/auth/register", body={"username": f"soak{stamp}u{i}", "password": "soak password"})
            if status != 201:
                raise RuntimeError(f"register: {status} {reply}")
            users.append((f"u{i}", reply["user"]["id"], reply["token"]))
        self.victim = f"soak{stamp}u0"
        status, reply = await asyncio.to_thread(
            chaos.http, ports[0], "POST", "/v1/rooms", token=users[0][2], body={"name": "soak", "invite": [u[1] for u in users[1:]]})
        if status != 201:
            raise RuntimeError(f"create room: {status} {reply}")
        self.room = reply["room"]["id"]
        for user in users[1:]:
            await asyncio.to_thread(chaos.http, ports[0], "POST", f"/v1/rooms/{self.room}/join", token=user[2])
        self.users = users
        self.clients = [chaos.Client(n, uid, token, ports, i) for i, (n, uid, token) in enumerate(users)]
        self.tasks = [asyncio.ensure_future(c.run()) for c in self.clients]
        for client in self.clients:
            await asyncio.wait_for(client.connected.wait(), 30)

    async def load(self, until):
        interval = 1.0 / self.options.rate
        n = 0
        self.sent = []
        start = time.monotonic()
        while time.monotonic() < until:
            due = int((time.monotonic() - start) / interval) + 1
            while n < due:
                client = self.clients[n % len(self.clients)]
                ref = f"soak-{n}"
                self.sent_at[ref] = time.monotonic()
                await client.send(self.room, ref, f"soak message {n}")
                self.sent.append((client, ref))
                n += 1
            await asyncio.sleep(interval / 2)

    async def churn(self, until):
        """Connections that open, get their hello, and close: tabs opened and closed, phones on and off the network."""
        interval = 1.0 / self.options.churn
        while time.monotonic() < until:
            server = random.choice(self.servers)
            _, _, token = random.choice(self.users)
            try:
                async with websockets.connect(f"ws://127.0.0.1:{server.port}/v1/ws?token={token}", open_timeout=5,
                                              ping_interval=None) as ws:
                    await asyncio.wait_for(ws.recv(), 5)
                self.opened += 1
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                self.churn_failures += 1  # the instance is paused: expected now and then
            await asyncio.sleep(interval)

    async def attack(self, until):
        """A third party, with an account of its own in the room: reconnects with since=0-0 in a loop, floods typing
        and read receipts, sends NUL bodies, and guesses the first user's password."""
        status, reply = await asyncio.to_thread(
            chaos.http, self.servers[0].port, "POST", "/v1/auth/register",
            body={"username": f"mallory{int(time.time())}", "password": "mallory password"})
        token = reply["token"]
        await asyncio.to_thread(chaos.http, self.servers[0].port, "POST", f"/v1/rooms/{self.room}/invites",
                                token=self.users[0][2], body={"userId": reply["user"]["id"]})
        await asyncio.to_thread(chaos.http, self.servers[0].port, "POST", f"/v1/rooms/{self.room}/join", token=token)

        def answered(kind, status):
            self.attack_answers.setdefault(kind, {})
            self.attack_answers[kind][status] = self.attack_answers[kind].get(status, 0) + 1

        async def replays():
            while time.monotonic() < until:
                server = random.choice(self.servers)
                try:
                    async with websockets.connect(f"ws://127.0.0.1:{server.port}/v1/ws?token={token}&since=0-0",
                                                  open_timeout=5, ping_interval=None, max_size=1 << 24) as ws:
                        hello = json.loads(await asyncio.wait_for(ws.recv(), 10))
                        answered("since=0-0 reconnects", f"recovered {hello.get('recovered')}")
                        for _ in range(50):
                            await ws.send(json.dumps({"type": "typing", "roomId": self.room}))
                            await ws.send(json.dumps({"type": "read", "roomId": self.room, "seq": 1}))
                            self.attacks["typing frames"] += 1
                            self.attacks["repeated receipts"] += 1
                        await ws.send(json.dumps({"type": "send", "roomId": self.room, "body": "x\u0000y", "clientMsgId": "nul"}))
                        self.attacks["NUL bodies"] += 1
                except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException):
                    answered("since=0-0 reconnects", "refused")
                self.attacks["since=0-0 reconnects"] += 1
                await asyncio.sleep(0.2)

        async def guesses():
            n = 0
            while time.monotonic() < until:
                n += 1
                try:
                    status, _ = await asyncio.to_thread(chaos.http, random.choice(self.servers).port, "POST", "/v1/auth/login",
                                                        body={"username": self.victim, "password": f"guess {n}"})
                except OSError:  # the instance is stopped (urllib's timeout): no answer
                    status = "no answer"
                answered("login guesses", status)
                self.attacks["login guesses"] += 1
                await asyncio.sleep(0.5)

        await asyncio.gather(replays(), guesses())

    def ack_latency_ms(self):
        """p50 and p99 of honest sends, from the send to its first ack (resends included)."""
        latencies = sorted((c.acked_at[ref] - self.sent_at[ref]) * 1000 for c, ref in self.sent if ref in c.acked_at)
        if not latencies:
            return None, None
        return latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]

    async def pauses_(self, until):
        turn = 0
        while time.monotonic() + self.options.pause_every < until:
            await asyncio.sleep(self.options.pause_every)
            server = self.servers[turn % 2]
            turn += 1
            log(f"SIGSTOP {server.name} for {self.options.pause:g} s")
            os.kill(server.process.pid, signal.SIGSTOP)
            await asyncio.sleep(self.options.pause)
            os.kill(server.process.pid, signal.SIGCONT)
            self.pauses += 1

    def redis_mb(self):
        port = self.services.env["PARLEY_REDIS_PORT"]
        out = subprocess.run(["redis-cli", "-p", port, "INFO", "memory"], capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("used_memory:"):
                return int(line.split(":")[1]) / (1024 * 1024)
        return 0.0

    async def sample(self, until, started):
        while True:
            self.samples.append({
                "minute": (time.monotonic() - started) / 60, "opened": self.opened,
                "rss": [rss_mb(s.process.pid) for s in self.servers], "redis": self.redis_mb(),
                "acked": sum(len(c.acked) for c in self.clients)})
            s = self.samples[-1]
            log(f"{s['minute']:5.1f} min: {s['opened']} connections opened, RSS a {s['rss'][0]:.1f} MB, b {s['rss'][1]:.1f} MB, "
                f"Redis {s['redis']:.1f} MB, {s['acked']} acknowledged")
            if time.monotonic() >= until:
                return
            await asyncio.sleep(min(30, max(0.1, until - time.monotonic())))

    async def settle(self, seconds=120):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if sum(len(c.pending) for c in self.clients) == 0:
                return True
            for client in self.clients:
                await client.resend_pending()
            await asyncio.sleep(0.5)
        return False

    def check(self):
        binary = os.path.join(self.options.bin, "parley-replay")
        export = subprocess.run([binary, "export", "--out", "-"], env=self.env(), cwd=ROOT, capture_output=True, text=True,
                                timeout=600)
        in_log = {}
        for line in export.stdout.splitlines():
            event = json.loads(line)["event"]
            if event["type"] == "message.sent" and str(event["data"].get("clientMsgId", "")).startswith("soak-"):
                key = (event["actorId"], event["data"]["clientMsgId"])
                in_log[key] = in_log.get(key, 0) + 1
        acked = [(c.user_id, ref) for c, ref in self.sent if ref in c.acked]
        lost = sum(1 for key in acked if key not in in_log)
        duplicated = sum(n - 1 for n in in_log.values() if n > 1)
        verify = subprocess.run([binary, "verify"], env=self.env(), cwd=ROOT, capture_output=True, text=True, timeout=900)
        return len(self.sent), len(acked), lost, duplicated, verify.returncode == 0

    def table(self):
        lines = ["| minute | connections opened | RSS a (MB) | RSS b (MB) | Redis used (MB) | messages acknowledged |",
                 "|---:|---:|---:|---:|---:|---:|"]
        for s in self.samples:
            lines.append(f"| {s['minute']:.1f} | {s['opened']} | {s['rss'][0]:.1f} | {s['rss'][1]:.1f} | {s['redis']:.1f} | {s['acked']} |")
        return "\n".join(lines)

    def growth(self):
        """Per server: MB grown over the second half and over the first half (after the first sample)."""
        if len(self.samples) < 3:
            return []
        first, middle, last = self.samples[1], self.samples[len(self.samples) // 2], self.samples[-1]
        return [(middle["rss"][i] - first["rss"][i], last["rss"][i] - middle["rss"][i]) for i in range(2)]


async def main():
    parser = argparse.ArgumentParser(description="two instances for many minutes: churn, pauses, steady chat")
    parser.add_argument("--bin", required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--rate", type=float, default=20, help="messages/s")
    parser.add_argument("--churn", type=float, default=10, help="short-lived connections opened per second")
    parser.add_argument("--pause-every", type=float, default=120, help="seconds between SIGSTOPs of an instance")
    parser.add_argument("--pause", type=float, default=14, help="seconds an instance stays stopped (leases: 10 s)")
    parser.add_argument("--appendfsync", default="everysec")
    parser.add_argument("--no-attack", action="store_true", help="without the third party (to measure churn alone)")
    parser.add_argument("--write", help="put the table into this markdown file")
    parser.add_argument("--command", default="scripts/soak")
    options = parser.parse_args()
    soak = Soak(options)
    failed = False
    try:
        await soak.setup()
        started = time.monotonic()
        until = started + options.minutes * 60
        await asyncio.gather(soak.load(until), soak.churn(until), soak.pauses_(until), soak.sample(until, started),
                             *([] if options.no_attack else [soak.attack(until)]))
        settled = await soak.settle()
        sent, acked, lost, duplicated, verified = soak.check()
        growth = soak.growth()
        p50, p99 = soak.ack_latency_ms()
        redis_per_message = (soak.samples[-1]["redis"] - soak.samples[0]["redis"]) * 1024 / max(1, soak.samples[-1]["acked"])
        verdict = (f"{sent} messages sent, {acked} acknowledged, {lost} lost, {duplicated} duplicated; "
                   f"`parley-replay verify` {'passes' if verified else 'FAILS'}; {soak.opened} short-lived connections "
                   f"({soak.churn_failures} refused or timed out while an instance was stopped); {soak.pauses} SIGSTOPs of "
                   f"{options.pause:g} s.")
        if p50 is not None:
            verdict += f" Honest sends' ack latency p50 {p50:.0f} ms, p99 {p99:.0f} ms (pauses included)."
        verdict += f" Redis memory per message: {redis_per_message:.2f} KB."
        verdict += " Attacks: " + ", ".join(f"{n} {kind}" for kind, n in soak.attacks.items()) + "; answers: " + "; ".join(
            f"{kind}: " + ", ".join(f"{k} ×{v}" for k, v in sorted(answers.items(), key=str)) for kind, answers in soak.attack_answers.items()) + "."
        if growth:
            verdict += " RSS growth, first half then second half: " + "; ".join(
                f"{name} {a:+.1f} MB then {b:+.1f} MB" for name, (a, b) in zip(("a", "b"), growth)) + "."
        log(verdict)
        print(soak.table())
        failed = lost > 0 or duplicated > 0 or not verified or not settled
        if options.write and not failed:
            body = (f"{soak.table()}\n\n{verdict}\n\nProduced by `{options.command}` on {time.strftime('%Y-%m-%d')}: "
                    f"{options.minutes:g} minutes, {options.users} users in one room at {options.rate:g} messages/s, "
                    f"{options.churn:g} connections opened and closed per second, an instance stopped for "
                    f"{options.pause:g} s every {options.pause_every:g} s.")
            replace_section(options.write, "<!-- soak:begin -->", "<!-- soak:end -->", body)
    except Exception as error:  # noqa: BLE001 - reported as the run's failure
        log(f"FAILED: {error}")
        failed = True
    finally:
        for client in getattr(soak, "clients", []):
            client.stopping = True
            if client.socket:
                await client.socket.close()
        for task in getattr(soak, "tasks", []):
            task.cancel()
        for server in getattr(soak, "servers", []):
            try:
                os.kill(server.process.pid, signal.SIGCONT)
            except (ProcessLookupError, AttributeError):
                pass
            server.stop()
        soak.services.down()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
