"""A soak run: two instances of the default roles (API, hub and projectors each) on
private services, for many minutes, under what weeks of uptime bring in small: a steady
stream of messages over WebSocket from users in many rooms, HTTP clients editing, marking
read and reading history and room lists, connections opened and closed all the time, a
third party attacking, and now and then one instance frozen (SIGSTOP) for longer than its
projector leases last.

Every 30 s it samples each server's resident memory, Redis's memory and the connections
opened so far. At the end it checks that every acknowledged message and edit is in the log
once, that every member of a room received every message of it exactly once, that no
event was parked as a dead letter and that `parley-replay verify` passes, and says whether
the servers' memory levelled off: the growth over the second half of the run compared
with the first.

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
        self.http_answers = {}
        self.http_latencies = []
        self.edits_acked = {}       # messageId -> the body of its last acknowledged edit

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

        async def call(method, path, token=None, body=None):
            status, reply = await asyncio.to_thread(chaos.http, ports[0], method, path, token=token, body=body)
            if status >= 300:
                raise RuntimeError(f"{method} {path}: {status} {reply}")
            return reply

        users = []
        for i in range(self.options.users):
            reply = await call("POST", "/v1/auth/register", body={"username": f"soak{stamp}u{i}", "password": "soak password"})
            users.append((f"u{i}", reply["user"]["id"], reply["token"]))
        self.victim = f"soak{stamp}u0"
        # Rooms of `room_size` users each; the first of each creates it and invites the others.
        self.rooms = []
        self.room_of = {}
        size = max(2, self.options.room_size)
        for first in range(0, len(users), size):
            members = users[first:first + size]
            reply = await call("POST", "/v1/rooms", token=members[0][2],
                               body={"name": f"soak {first // size}", "invite": [u[1] for u in members[1:]]})
            room = reply["room"]["id"]
            for user in members[1:]:
                await call("POST", f"/v1/rooms/{room}/join", token=user[2])
            self.rooms.append(room)
            for user in members:
                self.room_of[user[1]] = room
        self.room = self.rooms[0]
        self.users = users
        self.clients = [chaos.Client(n, uid, token, ports, i) for i, (n, uid, token) in enumerate(users)]
        self.tasks = [asyncio.ensure_future(c.run()) for c in self.clients]
        for client in self.clients:
            await asyncio.wait_for(client.connected.wait(), 60)

    async def prefill(self, count):
        """Sends `count` messages as fast as they are acknowledged (at most 500 waiting), so that the log is long before
        the timed run starts (replays from `since=0-0` then have that much to read)."""
        self.sent = []
        for n in range(count):
            while sum(len(c.pending) for c in self.clients) >= 500:
                await asyncio.sleep(0.01)
            client = self.clients[n % len(self.clients)]
            ref = f"soak-pre-{n}"
            await client.send(self.room_of[client.user_id], ref, f"soak prefill {n}")
            self.sent.append((client, ref))
        if not await self.settle():
            raise RuntimeError("the prefill was not acknowledged")
        log(f"prefilled the log with {count} messages")

    async def load(self, until):
        interval = 1.0 / self.options.rate
        n = 0
        self.sent = getattr(self, "sent", [])
        start = time.monotonic()
        while time.monotonic() < until:
            due = int((time.monotonic() - start) / interval) + 1
            while n < due:
                client = self.clients[n % len(self.clients)]
                ref = f"soak-{n}"
                self.sent_at[ref] = time.monotonic()
                await client.send(self.room_of[client.user_id], ref, f"soak message {n}")
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

        await asyncio.gather(*[replays() for _ in range(self.options.replayers)], guesses())

    async def http_mix(self, until):
        """HTTP clients beside the WebSocket ones: edits and (now and then) deletions of their own acknowledged messages,
        read receipts, history pages, room lists and profiles, on either instance, at most 8 at once. A stopped instance answers nothing (counted)."""
        gate = asyncio.Semaphore(8)
        interval = 1.0 / self.options.http_rate
        n = 0

        def answered(kind, status):
            self.http_answers.setdefault(kind, {})
            self.http_answers[kind][status] = self.http_answers[kind].get(status, 0) + 1

        async def one(n):
            async with gate:
                client = random.choice(self.clients)
                room = self.room_of[client.user_id]
                own = [m for m in list(client.acked.values())[-50:] if m.get("id")]
                kinds = {"edit": 3, "read": 3, "delete": 0.3} if own else {}
                kinds.update({"history": 3, "rooms": 2, "me": 1})
                kind = random.choices(list(kinds), weights=list(kinds.values()))[0]
                if kind == "delete":
                    message = random.choice(own)
                    request = ("DELETE", f"/v1/rooms/{room}/messages/{message['id']}", None)
                elif kind == "edit":
                    message = random.choice(own)
                    body = f"soak edit {n}"
                    request = ("PATCH", f"/v1/rooms/{room}/messages/{message['id']}", {"body": body})
                elif kind == "read":
                    request = ("POST", f"/v1/rooms/{room}/read", {"seq": random.choice(own).get("seq", 1)})
                elif kind == "history":
                    request = ("GET", f"/v1/rooms/{room}/messages?limit=50", None)
                elif kind == "rooms":
                    request = ("GET", "/v1/rooms", None)
                else:
                    request = ("GET", "/v1/me", None)
                started = time.monotonic()
                try:
                    status, _ = await asyncio.to_thread(chaos.http, random.choice(self.servers).port, request[0], request[1],
                                                        token=client.token, body=request[2], timeout=20)
                except OSError:
                    answered(kind, "no answer")
                    return
                answered(kind, status)
                if status < 300:
                    self.http_latencies.append((time.monotonic() - started) * 1000)
                    if kind == "edit":
                        self.edits_acked[message["id"]] = body

        tasks = []
        start = time.monotonic()
        while time.monotonic() < until:
            due = int((time.monotonic() - start) / interval) + 1
            while n < due:
                tasks.append(asyncio.ensure_future(one(n)))
                n += 1
            tasks = [t for t in tasks if not t.done()]
            await asyncio.sleep(interval / 2)
        await asyncio.gather(*tasks)

    def http_latency_ms(self):
        latencies = sorted(self.http_latencies)
        if not latencies:
            return None, None
        return latencies[len(latencies) // 2], latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]

    def ack_latency_ms(self):
        """p50 and p99 of honest sends, from the send to its first ack (resends included)."""
        latencies = sorted((c.acked_at[ref] - self.sent_at[ref]) * 1000 for c, ref in self.sent if ref in c.acked_at and ref in self.sent_at)
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

    def dead_letters(self):
        port = self.services.env["PARLEY_REDIS_PORT"]
        total = 0
        for projector in ("metadata", "messages", "search"):
            out = subprocess.run(["redis-cli", "-p", port, "XLEN", f"parley:dead:{projector}"], capture_output=True, text=True)
            total += int(out.stdout.strip() or 0)
        return total

    def export(self):
        binary = os.path.join(self.options.bin, "parley-replay")
        export = subprocess.run([binary, "export", "--out", "-"], env=self.env(), cwd=ROOT, capture_output=True, text=True,
                                timeout=600)
        return [json.loads(line)["event"] for line in export.stdout.splitlines()]

    async def delivered(self, events, seconds=60):
        """Waits until every honest member received every message of its room, then counts what is missing and what
        came twice (each event in `received` is counted per delivery)."""
        by_room = {}
        for event in events:
            if event["type"] == "message.sent":
                by_room.setdefault(event["roomId"], set()).add(event["data"]["messageId"])
        deadline = time.monotonic() + seconds
        while True:
            missing = sum(1 for c in self.clients for m in by_room.get(self.room_of[c.user_id], ()) if m not in c.received)
            if missing == 0 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        twice = sum(n - 1 for c in self.clients for n in c.received.values() if n > 1)
        expected = sum(len(by_room.get(self.room_of[c.user_id], ())) for c in self.clients)
        return expected, missing, twice

    def check(self, events):
        in_log = {}
        edits = {}
        for event in events:
            if event["type"] == "message.sent" and str(event["data"].get("clientMsgId", "")).startswith("soak-"):
                key = (event["actorId"], event["data"]["clientMsgId"])
                in_log[key] = in_log.get(key, 0) + 1
            if event["type"] == "message.edited":
                edits.setdefault(event["data"]["messageId"], set()).add(event["data"]["body"])
        acked = [(c.user_id, ref) for c, ref in self.sent if ref in c.acked]
        lost = sum(1 for key in acked if key not in in_log)
        duplicated = sum(n - 1 for n in in_log.values() if n > 1)
        lost_edits = sum(1 for message, body in self.edits_acked.items() if body not in edits.get(message, ()))
        binary = os.path.join(self.options.bin, "parley-replay")
        verify = subprocess.run([binary, "verify"], env=self.env(), cwd=ROOT, capture_output=True, text=True, timeout=900)
        if verify.returncode != 0:
            log(verify.stdout[-3000:] + verify.stderr[-2000:])
        return len(self.sent), len(acked), lost, duplicated, lost_edits, verify.returncode == 0

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
    parser.add_argument("--users", type=int, default=200, help="WebSocket users, each with an HTTP client beside")
    parser.add_argument("--room-size", type=int, default=20, help="users per room")
    parser.add_argument("--rate", type=float, default=20, help="messages/s")
    parser.add_argument("--http-rate", type=float, default=10, help="HTTP requests/s: edits, receipts, history, room lists")
    parser.add_argument("--churn", type=float, default=10, help="short-lived connections opened per second (per churner)")
    parser.add_argument("--churners", type=int, default=1, help="churn loops at once")
    parser.add_argument("--pause-every", type=float, default=120, help="seconds between SIGSTOPs of an instance")
    parser.add_argument("--pause", type=float, default=14, help="seconds an instance stays stopped (leases: 10 s)")
    parser.add_argument("--appendfsync", default="everysec")
    parser.add_argument("--no-attack", action="store_true", help="without the third party (to measure churn alone)")
    parser.add_argument("--replayers", type=int, default=1, help="the attacker's since=0-0 reconnect loops at once")
    parser.add_argument("--prefill", type=int, default=0, help="messages sent before the timed run (a longer log to replay)")
    parser.add_argument("--write", help="put the table into this markdown file")
    parser.add_argument("--section", default="soak", help="the marked section --write replaces (<!-- NAME:begin -->)")
    parser.add_argument("--command", default="scripts/soak")
    options = parser.parse_args()
    soak = Soak(options)
    failed = False
    try:
        await soak.setup()
        if options.prefill:
            await soak.prefill(options.prefill)
        started = time.monotonic()
        until = started + options.minutes * 60
        await asyncio.gather(soak.load(until), *[soak.churn(until) for _ in range(options.churners)], soak.pauses_(until),
                             soak.sample(until, started),
                             soak.http_mix(until), *([] if options.no_attack else [soak.attack(until)]))
        settled = await soak.settle()
        events = soak.export()
        deliveries, undelivered, twice = await soak.delivered(events)
        sent, acked, lost, duplicated, lost_edits, verified = soak.check(events)
        dead = soak.dead_letters()
        not_recovered = sum(c.not_recovered for c in soak.clients)
        growth = soak.growth()
        p50, p99 = soak.ack_latency_ms()
        # From the second sample on: the first is taken before Redis settled (its AOF rewrite buffers).
        base = soak.samples[1] if len(soak.samples) > 2 else soak.samples[0]
        redis_per_message = ((soak.samples[-1]["redis"] - base["redis"]) * 1024
                             / max(1, soak.samples[-1]["acked"] - base["acked"]))
        verdict = (f"{sent} messages sent, {acked} acknowledged, {lost} lost, {duplicated} duplicated; "
                   f"{len(soak.edits_acked)} messages edited over HTTP, {lost_edits} acknowledged edits missing from the log; "
                   f"{deliveries} deliveries due to members, {undelivered} missing, {twice} twice "
                   f"({not_recovered} reconnects answered recovered: false); {dead} dead letters; "
                   f"`parley-replay verify` {'passes' if verified else 'FAILS'}; {soak.opened} short-lived connections "
                   f"({soak.churn_failures} refused or timed out while an instance was stopped); {soak.pauses} SIGSTOPs of "
                   f"{options.pause:g} s.")
        if p50 is not None:
            verdict += f" Honest sends' ack latency p50 {p50:.0f} ms, p99 {p99:.0f} ms (pauses included)."
        h50, h99 = soak.http_latency_ms()
        if h50 is not None:
            verdict += f" Honest HTTP requests answered in p50 {h50:.0f} ms, p99 {h99:.0f} ms (answered ones, pauses included)."
        verdict += " HTTP: " + "; ".join(f"{kind}: " + ", ".join(f"{k} ×{v}" for k, v in sorted(answers.items(), key=str))
                                        for kind, answers in sorted(soak.http_answers.items())) + "."
        verdict += f" Redis memory per message: {redis_per_message:.2f} KB."
        verdict += " Attacks: " + ", ".join(f"{n} {kind}" for kind, n in soak.attacks.items()) + "; answers: " + "; ".join(
            f"{kind}: " + ", ".join(f"{k} ×{v}" for k, v in sorted(answers.items(), key=str)) for kind, answers in soak.attack_answers.items()) + "."
        if growth:
            verdict += " RSS growth, first half then second half: " + "; ".join(
                f"{name} {a:+.1f} MB then {b:+.1f} MB" for name, (a, b) in zip(("a", "b"), growth)) + "."
        log(verdict)
        print(soak.table())
        failed = (lost > 0 or duplicated > 0 or lost_edits > 0 or undelivered > 0 or twice > 0 or dead > 0 or not verified
                  or not settled or any(k >= 500 and k != 503 for answers in soak.http_answers.values() for k in answers
                                        if isinstance(k, int)))
        if options.write and not failed:
            body = (f"{soak.table()}\n\n{verdict}\n\nProduced by `{options.command}` on {time.strftime('%Y-%m-%d')}: "
                    f"{options.minutes:g} minutes, {options.users} users in rooms of {options.room_size} at "
                    f"{options.rate:g} messages/s and {options.http_rate:g} HTTP requests/s, "
                    f"{options.churn:g} connections opened and closed per second, an instance stopped for "
                    f"{options.pause:g} s every {options.pause_every:g} s.")
            replace_section(options.write, f"<!-- {options.section}:begin -->", f"<!-- {options.section}:end -->", body)
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
