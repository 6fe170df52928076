"""Fault injection under load: scripts/chaos runs this (see there for the options).

A private set of services (Redis with its append-only file, PostgreSQL, nx-27017) and
three Parley processes: two API instances (`--roles api`) and one projector process
(`--roles projectors`). Real WebSocket clients, spread over both API instances, send at a
fixed rate into two group rooms. In each scenario one process gets `kill -9` while they
send; it is started again. A client whose connection drops reconnects to the other
instance with `?since=<last position>` and sends again, with the same clientMsgId, every
send it has no ack for (a real client's retry).

After each scenario the load stops and every acknowledged message must be:
  - in the log, once (`parley-replay export`),
  - in MongoDB, once (history pages over HTTP, which read the messages read model),
  - received over WebSocket by every member of its room exactly once;
and `parley-replay verify` must pass. The table goes to stdout and, with --write, into
docs/reliability.md between the chaos markers.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import websockets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from parley_tools import Server, free_port, replace_section  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def log(text):
    print(f"chaos: {text}", file=sys.stderr, flush=True)


def free_port_run():
    """The first of six free ports whose cluster bus ports (port + 10000) are free too: a private Redis Cluster."""
    import random
    import socket
    while True:
        base = random.randrange(20000, 29000)
        try:
            sockets = []
            for port in [*range(base, base + 6), *range(base + 10000, base + 10006)]:
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
            return base
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()


class Services:
    """The private Redis (or Redis Cluster), PostgreSQL and nx-27017, through scripts/services."""

    def __init__(self, data, appendfsync, cluster=False):
        self.cluster = ["--cluster"] if cluster else []
        self.env = dict(os.environ)
        self.env.update({
            "PARLEY_DATA_DIR": data,
            "PARLEY_REDIS_PORT": str(free_port()),
            "PARLEY_PG_PORT": str(free_port()),
            "PARLEY_MONGO_PORT": str(free_port()),
            "PARLEY_CLUSTER_PORT": str(free_port_run()),
            "PARLEY_REDIS_APPENDFSYNC": appendfsync,
        })

    def run(self, *args, capture=False):
        result = subprocess.run([os.path.join(ROOT, "scripts/services"), *args], env=self.env, cwd=ROOT,
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"scripts/services {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def up(self):
        self.run("up", *self.cluster)

    def down(self):
        try:
            self.run("down")
        except RuntimeError as error:
            log(str(error))

    def urls(self):
        urls = {}
        for line in self.run("env", *self.cluster).splitlines():
            name, _, value = line.removeprefix("export ").partition("=")
            urls[name] = value
        return urls

    def cluster_primaries(self):
        """The ports of the cluster's primaries now, asked of any node that answers."""
        base = int(self.env["PARLEY_CLUSTER_PORT"])
        for port in range(base, base + 6):
            nodes = subprocess.run(["redis-cli", "-p", str(port), "cluster", "nodes"], capture_output=True, text=True)
            if nodes.returncode == 0 and "master" in nodes.stdout:
                primaries = []
                for line in nodes.stdout.splitlines():
                    parts = line.split()
                    flags = parts[2].split(",")
                    if "master" in flags and "fail" not in flags and len(parts) > 8:
                        primaries.append(int(parts[1].split("@")[0].rsplit(":", 1)[1]))
                return primaries
        return []

    def busiest_primary(self):
        """The primary whose log streams hold the most entries: the one the chat traffic goes to."""
        best, most = None, -1
        for port in self.cluster_primaries():
            keys = subprocess.run(["redis-cli", "-p", str(port), "--scan", "--pattern", "*:log:*"],
                                  capture_output=True, text=True).stdout.split()
            total = sum(int(subprocess.run(["redis-cli", "-p", str(port), "XLEN", key], capture_output=True,
                                           text=True).stdout.strip() or 0) for key in keys)
            if total > most:
                best, most = port, total
        return best

    def kill9(self, name):
        """kill -9 of the server; PostgreSQL's backends go with their postmaster, as in a crash."""
        pid = int(self.run("pid", name).strip())
        if name == "postgresql":
            subprocess.run(["pkill", "-9", "-P", str(pid)])
        os.kill(pid, signal.SIGKILL)
        for _ in range(200):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        if name == "postgresql":
            # Backends notice their postmaster's death at once; wait until none is left.
            for _ in range(200):
                if subprocess.run(["pgrep", "-P", str(pid)], capture_output=True).returncode != 0:
                    break
                time.sleep(0.05)


class Parley(Server):
    """One parley-server process with the given roles."""

    def __init__(self, name, binary, roles, env):
        super().__init__(binary, env, os.path.join(env["CHAOS_DATA"], f"{name}.log"), ["--roles", roles], name)


def http(port, method, path, token=None, body=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class Client:
    """A chat user on a WebSocket: sends at a fixed rate, resends what has no ack after a
    reconnect or an error, and counts every message event it receives."""

    def __init__(self, name, user_id, token, ports, first):
        self.name, self.user_id, self.token = name, user_id, token
        self.ports, self.at = ports, first
        self.position = None
        self.received = {}          # messageId -> times received
        self.acked = {}             # clientMsgId -> message
        self.acked_at = {}          # clientMsgId -> when its first ack arrived (time.monotonic)
        self.pending = {}           # clientMsgId -> frame
        self.sent = 0
        self.socket = None
        self.connected = asyncio.Event()
        self.reconnects = 0
        self.not_recovered = 0
        self.errors = {}
        self.stopping = False

    async def run(self):
        backoff = 0.1
        while not self.stopping:
            port = self.ports[self.at % len(self.ports)]
            url = f"ws://127.0.0.1:{port}/v1/ws?token={self.token}"
            if self.position:
                url += f"&since={self.position}"
            try:
                async with websockets.connect(url, open_timeout=5, max_size=1 << 22, ping_interval=None) as ws:
                    hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    if hello.get("type") != "hello":
                        raise RuntimeError(f"first frame {hello}")
                    if self.position and not hello.get("recovered", False):
                        self.not_recovered += 1
                    if not self.position:
                        self.position = hello.get("position")
                    self.socket = ws
                    self.connected.set()
                    backoff = 0.1
                    for frame in list(self.pending.values()):
                        await ws.send(frame)
                    async for text in ws:
                        self.handle(json.loads(text))
            except (OSError, asyncio.TimeoutError, websockets.exceptions.WebSocketException, RuntimeError):
                pass
            self.socket = None
            self.connected.clear()
            if self.stopping:
                return
            # Another instance next time: the one this client was on may be gone.
            self.at += 1
            self.reconnects += 1
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def handle(self, frame):
        kind = frame.get("type")
        if kind == "event":
            self.position = frame["position"]
            event = frame["event"]
            if event.get("type") == "message.sent":
                message_id = event["data"]["messageId"]
                self.received[message_id] = self.received.get(message_id, 0) + 1
        elif kind == "ack":
            ref = frame.get("ref")
            if ref in self.pending:
                del self.pending[ref]
            if ref not in self.acked:
                self.acked_at[ref] = time.monotonic()
            self.acked[ref] = frame["message"]
        elif kind == "error":
            code = frame.get("code", "?")
            self.errors[code] = self.errors.get(code, 0) + 1
            ref = frame.get("ref")
            if ref in self.pending:
                asyncio.get_running_loop().call_later(0.25, lambda: asyncio.ensure_future(self.resend(ref)))

    async def resend(self, ref):
        frame = self.pending.get(ref)
        if frame and self.socket:
            try:
                await self.socket.send(frame)
            except websockets.exceptions.WebSocketException:
                pass

    async def send(self, room_id, client_msg_id, body):
        frame = json.dumps({"type": "send", "roomId": room_id, "body": body, "clientMsgId": client_msg_id})
        self.pending[client_msg_id] = frame
        self.sent += 1
        if self.socket:
            try:
                await self.socket.send(frame)
            except websockets.exceptions.WebSocketException:
                pass  # resent after the reconnect

    async def resend_pending(self):
        if self.socket:
            for ref in list(self.pending):
                await self.resend(ref)


class Chaos:
    def __init__(self, options):
        self.options = options
        self.data = os.path.join(ROOT, ".data", "chaos")
        os.makedirs(self.data, exist_ok=True)
        self.services = Services(self.data, options.appendfsync, cluster=options.cluster)
        self.rows = []

    def parley_env(self):
        env = dict(os.environ)
        env.pop("PARLEY_REDIS_CLUSTER", None)  # the shared cluster's, when scripts/test runs on it
        env.update(self.services.urls())
        if self.options.cluster:
            # Two partitions per primary; appends and projectors wait for this many replicas.
            env.update({"PARLEY_LOG_PARTITIONS": "6", "PARLEY_ACK_REPLICAS": str(self.options.ack_replicas)})
        env.update({
            "CHAOS_DATA": self.data,
            "PARLEY_MIGRATIONS_DIR": os.path.join(ROOT, "migrations"),
            "PARLEY_JWT_SECRET": "chaos-" + "k" * 40,
            "PARLEY_BCRYPT_COST": "4",
            "PARLEY_RATE_SENDS_PER_SECOND": "100000", "PARLEY_RATE_SEND_BURST": "100000",
            "PARLEY_RATE_REGISTRATIONS_PER_MINUTE": "100000",
            **{f"PARLEY_RATE_{kind}_{what}": "1000000" for kind in ("EDITS", "RECEIPTS", "ROOMS", "MEMBERSHIP", "TYPING")
               for what in ("PER_MINUTE", "BURST")},
            "PARLEY_LOG_LEVEL": "info",
        })
        return env

    def replay(self, *args):
        binary = os.path.join(self.options.bin, "parley-replay")
        return subprocess.run([binary, *args], env=self.parley_env(), cwd=ROOT, capture_output=True, text=True, timeout=300)

    async def setup(self):
        log(f"private services under {self.data} (Redis appendfsync {self.options.appendfsync})")
        # A fresh start: what an earlier run left is stopped and removed.
        self.services.down()
        shutil.rmtree(self.data, ignore_errors=True)
        os.makedirs(self.data, exist_ok=True)
        self.services.up()
        env = self.parley_env()
        binary = os.path.join(self.options.bin, "parley-server")
        self.api = [Parley("api-a", binary, "api", env), Parley("api-b", binary, "api", env)]
        # The projector process also runs the archiver: it copies the log under the same faults (nothing is trimmed: a
        # week must pass first).
        self.projector = Parley("projector", binary, "projectors,archiver", env)
        self.second_projector = None  # started by the pause fault
        for process in self.api + [self.projector]:
            process.start()
        ports = [p.port for p in self.api]
        stamp = int(time.time())
        users = []
        for i in range(self.options.users):
            status, reply = await asyncio.to_thread(
                http, ports[0], "POST", "/v1/auth/register", body={"username": f"chaos{stamp}u{i}", "password": "chaos password"})
            if status != 201:
                raise RuntimeError(f"register: {status} {reply}")
            users.append((f"u{i}", reply["user"]["id"], reply["token"]))
        # Two group rooms: everyone, and the first half.
        self.rooms = []
        for name, members in (("all", users), ("half", users[: max(2, len(users) // 2)])):
            status, reply = await asyncio.to_thread(
                http, ports[0], "POST", "/v1/rooms", token=members[0][2],
                body={"name": f"chaos {name}", "invite": [m[1] for m in members[1:]]})
            if status != 201:
                raise RuntimeError(f"create room: {status} {reply}")
            room_id = reply["room"]["id"]
            for member in members[1:]:
                status, reply = await asyncio.to_thread(http, ports[0], "POST", f"/v1/rooms/{room_id}/join", token=member[2])
                if status != 200:
                    raise RuntimeError(f"join: {status} {reply}")
            self.rooms.append((room_id, [m[1] for m in members]))
        self.clients = [Client(n, uid, token, ports, i) for i, (n, uid, token) in enumerate(users)]
        self.client_tasks = [asyncio.ensure_future(c.run()) for c in self.clients]
        for client in self.clients:
            await asyncio.wait_for(client.connected.wait(), 30)

    async def teardown(self):
        for client in self.clients:
            client.stopping = True
            if client.socket:
                await client.socket.close()
        for task in self.client_tasks:
            task.cancel()
        for process in self.api + [self.projector] + ([self.second_projector] if self.second_projector else []):
            process.stop()
        if not self.options.keep:
            self.services.down()

    async def load(self, tag, seconds, fault_at, fault):
        """Sends at the fixed rate for `seconds`, runs `fault` at `fault_at`; returns the
        clientMsgIds sent per (client, room)."""
        rate = self.options.rate
        interval = 1.0 / rate
        start = time.monotonic()
        n = 0
        sent = []
        fault_task = None
        while time.monotonic() - start < seconds:
            if fault_task is None and time.monotonic() - start >= fault_at:
                fault_task = asyncio.ensure_future(fault())
            due = int((time.monotonic() - start) / interval) + 1
            while n < due:
                room_id, members = self.rooms[n % len(self.rooms)]
                senders = [c for c in self.clients if c.user_id in members]
                client = senders[(n // len(self.rooms)) % len(senders)]
                ref = f"{tag}-{n}"
                await client.send(room_id, ref, f"{tag} message {n}")
                sent.append((client, room_id, ref))
                n += 1
            await asyncio.sleep(interval / 2)
        if fault_task:
            await fault_task
        return sent

    async def settle(self, sent, seconds=90):
        """Waits until every send has its ack and every member has every acked message."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            pending = sum(len(c.pending) for c in self.clients)
            if pending == 0 and not self.missing_deliveries(sent):
                return True
            if pending:
                for client in self.clients:
                    await client.resend_pending()
            await asyncio.sleep(0.5)
        return False

    def missing_deliveries(self, sent):
        missing = 0
        members_of = dict(self.rooms)
        for client, room_id, ref in sent:
            message = client.acked.get(ref)
            if not message:
                continue
            for member in self.clients:
                if member.user_id in members_of[room_id] and member.received.get(message["id"], 0) == 0:
                    missing += 1
        return missing

    def check(self, tag, sent):
        """The row: sent, acknowledged, delivered, lost, duplicated (and what each means)."""
        members_of = dict(self.rooms)
        acked = {(client.user_id, ref): client.acked[ref] for client, _, ref in sent if ref in client.acked}
        problems = []
        # The log: every acknowledged message once; no clientMsgId appended twice.
        export = self.replay("export", "--out", "-")
        if export.returncode != 0:
            raise RuntimeError(f"parley-replay export failed: {export.stderr}")
        in_log = {}
        for line in export.stdout.splitlines():
            event = json.loads(line)["event"]
            if event["type"] == "message.sent" and str(event["data"].get("clientMsgId", "")).startswith(tag + "-"):
                key = (event["actorId"], event["data"]["clientMsgId"])
                in_log.setdefault(key, []).append(event["data"]["messageId"])
        lost_log = [k for k in acked if k not in in_log]
        dup_log = sum(len(v) - 1 for v in in_log.values())
        # MongoDB, through the history pages, once the projector has caught up (it may be
        # restarting, or waiting for a dead one's lease to expire).
        deadline = time.monotonic() + 60
        while True:
            in_mongo = self.history(tag)
            if all(k in in_mongo for k in acked) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        lost_mongo = [k for k in acked if k not in in_mongo]
        dup_mongo = sum(len(v) - 1 for v in in_mongo.values())
        # Every member, exactly once.
        delivered = lost_delivery = dup_delivery = 0
        for (sender, ref), message in acked.items():
            room_members = members_of[message["roomId"]]
            counts = [c.received.get(message["id"], 0) for c in self.clients if c.user_id in room_members]
            if all(n >= 1 for n in counts):
                delivered += 1
            lost_delivery += sum(1 for n in counts if n == 0)
            dup_delivery += sum(n - 1 for n in counts if n > 1)
        verify = self.replay("verify")
        if lost_log:
            problems.append(f"{len(lost_log)} acknowledged messages not in the log")
        if lost_mongo:
            problems.append(f"{len(lost_mongo)} acknowledged messages not in MongoDB")
        if lost_delivery:
            problems.append(f"{lost_delivery} deliveries missing")
        if dup_log or dup_mongo or dup_delivery:
            problems.append(f"duplicates: log {dup_log}, MongoDB {dup_mongo}, deliveries {dup_delivery}")
        if verify.returncode != 0:
            problems.append("parley-replay verify failed:\n" + verify.stdout[-2000:] + verify.stderr[-1000:])
        return {
            "sent": len(sent), "acknowledged": len(acked), "delivered": delivered,
            "lost": len(set(lost_log) | set(lost_mongo)) + lost_delivery,
            "duplicated": dup_log + dup_mongo + dup_delivery,
            "verify": "passes" if verify.returncode == 0 else "FAILS",
            "problems": problems,
        }

    def history(self, tag):
        """(senderId, clientMsgId) -> message ids, of this scenario's messages in every room."""
        in_mongo = {}
        token = self.clients[0].token
        for room_id, _ in self.rooms:
            before = None
            while True:
                path = f"/v1/rooms/{room_id}/messages?limit=100" + (f"&before={before}" if before else "")
                status, reply = http(self.api[0].port, "GET", path, token=token, timeout=30)
                if status != 200:
                    raise RuntimeError(f"history: {status} {reply}")
                for message in reply["messages"]:
                    if str(message.get("clientMsgId", "")).startswith(tag + "-"):
                        key = (message["senderId"], message["clientMsgId"])
                        in_mongo.setdefault(key, []).append(message["id"])
                if not reply.get("hasMore") or not reply["messages"]:
                    break
                before = min(m["seq"] for m in reply["messages"])
        return in_mongo

    # The faults.

    async def kill_api(self):
        victim = self.api[0]
        log(f"kill -9 {victim.name} (pid {victim.process.pid}); its clients reconnect to {self.api[1].name} with since")
        victim.kill9()
        await asyncio.sleep(self.options.down)
        await asyncio.to_thread(victim.start)

    async def kill_projector(self):
        log(f"kill -9 the projector process (pid {self.projector.process.pid}) while it applies batches")
        self.projector.kill9()
        await asyncio.sleep(self.options.down)
        await asyncio.to_thread(self.projector.start)

    async def pause_projector(self):
        """SIGSTOP of the projector process for longer than its leases last (10 s), with a
        second projector process running: the second takes the partitions over; when the
        first is continued, it wakes up holding a batch and writes on as if nothing had
        happened. The read models must not lose or reorder anything (verify checks them)."""
        if self.second_projector is None:
            self.second_projector = Parley("projector-b", os.path.join(self.options.bin, "parley-server"), "projectors",
                                           self.parley_env())
            await asyncio.to_thread(self.second_projector.start)
        pid = self.projector.process.pid
        log(f"SIGSTOP the projector process (pid {pid}) for {self.options.pause:g} s; projector-b is running")
        os.kill(pid, signal.SIGSTOP)
        await asyncio.sleep(self.options.pause)
        os.kill(pid, signal.SIGCONT)
        log("SIGCONT: the first projector process wakes up")

    async def kill_primary(self):
        """kill -9 of the Redis Cluster primary the rooms' partitions live on: its replica is promoted
        (cluster-node-timeout 2 s) and the killed node comes back as a replica."""
        port = await asyncio.to_thread(self.services.busiest_primary)
        log(f"kill -9 of the Redis Cluster primary on port {port} (PARLEY_ACK_REPLICAS={self.options.ack_replicas}); "
            f"restarted {self.options.down} s after its replica is promoted")
        await asyncio.to_thread(self.services.kill9, f"cluster:{port}")
        killed = time.monotonic()
        # Restarted only once its replica serves its slots: a failover, not a restart from the AOF.
        while time.monotonic() - killed < 20:
            primaries = await asyncio.to_thread(self.services.cluster_primaries)
            if port not in primaries and len(primaries) == 3:
                break
            await asyncio.sleep(0.2)
        else:
            raise RuntimeError(f"no replica of {port} was promoted within 20 s")
        log(f"a replica was promoted {time.monotonic() - killed:.1f} s after the kill")
        await asyncio.sleep(self.options.down)
        await asyncio.to_thread(self.services.up)

    def store_fault(self, name):
        async def fault():
            log(f"kill -9 {name}; restarted {self.options.down} s later")
            await asyncio.to_thread(self.services.kill9, name)
            await asyncio.sleep(self.options.down)
            await asyncio.to_thread(self.services.up)
        return fault

    async def tamper(self):
        """The control: removes one acknowledged message from the log behind Parley's back
        (XDEL), which the checks must report as lost. Not a fault Parley can survive."""
        await asyncio.sleep(0.5)
        export = await asyncio.to_thread(self.replay, "export", "--out", "-")
        for line in export.stdout.splitlines():
            entry = json.loads(line)
            event = entry["event"]
            ours = any(c.user_id == event["actorId"] for c in self.clients)
            if ours and event["type"] == "message.sent" and str(event["data"].get("clientMsgId", "")).startswith("tamper-"):
                redis = self.services.env["PARLEY_REDIS_PORT"]
                stream = "parley:log:{%d}" % entry["partition"]
                subprocess.run(["redis-cli", "-p", redis, "XDEL", stream, entry["entryId"]], check=True, capture_output=True)
                log(f"XDEL {stream} {entry['entryId']} (message {event['data']['messageId']})")
                return

    async def scenario(self, tag, title, fault):
        log(f"{title}: {self.options.rate} msg/s for {self.options.seconds} s")
        reconnects = sum(c.reconnects for c in self.clients)
        errors = sum(sum(c.errors.values()) for c in self.clients)
        # A pause must end while the load goes on: the woken process then reads new entries beside the new holder.
        seconds = max(self.options.seconds, self.options.pause + 12) if tag == "pause" else self.options.seconds
        sent = await self.load(tag, seconds, self.options.seconds / 3, fault)
        settled = await self.settle(sent)
        row = self.check(tag, sent)
        row["fault"] = title
        row["reconnects"] = sum(c.reconnects for c in self.clients) - reconnects
        row["errors"] = sum(sum(c.errors.values()) for c in self.clients) - errors
        if not settled:
            row["problems"].append("did not settle in 90 s (sends without ack or deliveries missing)")
        self.rows.append(row)
        log(f"{title}: sent {row['sent']}, acknowledged {row['acknowledged']}, delivered {row['delivered']}, "
            f"lost {row['lost']}, duplicated {row['duplicated']}, reconnects {row['reconnects']}, "
            f"error frames {row['errors']}, verify {row['verify']}")
        for problem in row["problems"]:
            log(f"  PROBLEM: {problem}")

    def table(self):
        lines = ["| fault | messages sent | acknowledged | delivered to every member | lost | duplicated | client reconnects | error frames (retried) | `parley-replay verify` |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in self.rows:
            lines.append(f"| {r['fault']} | {r['sent']} | {r['acknowledged']} | {r['delivered']} | {r['lost']} | "
                         f"{r['duplicated']} | {r['reconnects']} | {r['errors']} | {r['verify']} |")
        return "\n".join(lines)


FAULTS = {
    "server": ("kill -9 of a parley-server (API + hub)", lambda c: c.kill_api),
    "projector": ("kill -9 of the projector process", lambda c: c.kill_projector),
    "pause": ("SIGSTOP of the projector process past its lease (14 s; a second one takes over), then SIGCONT",
              lambda c: c.pause_projector),
    "redis": ("kill -9 of Redis (restart from its AOF)", lambda c: c.store_fault("redis")),
    "primary": ("kill -9 of a Redis Cluster primary (its replica promoted)", lambda c: c.kill_primary),
    "postgresql": ("kill -9 of PostgreSQL", lambda c: c.store_fault("postgresql")),
    "mongodb": ("kill -9 of the MongoDB server (nx-27017)", lambda c: c.store_fault("mongodb")),
    # Not in the default set: shows that the checks do catch a loss (the run must fail).
    "tamper": ("control: one acknowledged message removed from the log (XDEL)", lambda c: c.tamper),
}


def write_docs(path, table, command, options):
    where = (f"a Redis Cluster of 3 primaries and 3 replicas, 6 partitions, `PARLEY_ACK_REPLICAS={options.ack_replicas}`"
             if options.cluster else "one Redis")
    body = (f"{table}\n\nProduced by `{command}` on {time.strftime('%Y-%m-%d')}: {options.users} users on two "
            f"API instances, {options.rate} messages/s for {options.seconds:g} s per fault, the killed process "
            f"restarted {options.down:g} s later, {where}, `appendfsync {options.appendfsync}`.")
    marker = f"chaos-cluster-{options.ack_replicas}" if options.cluster else "chaos"
    replace_section(path, f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->", body)


async def main():
    parser = argparse.ArgumentParser(description="kill -9 under load; nothing acknowledged may be lost or duplicated")
    parser.add_argument("--bin", required=True, help="folder with parley-server and parley-replay")
    parser.add_argument("--faults", default=",".join(f for f in FAULTS if f != "tamper"), help="comma-separated: " + ", ".join(FAULTS))
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--rate", type=float, default=50, help="messages/s offered in total")
    parser.add_argument("--seconds", type=float, default=9, help="load per fault")
    parser.add_argument("--down", type=float, default=2, help="seconds the killed process stays down")
    parser.add_argument("--pause", type=float, default=14, help="seconds the paused projector stays stopped (its lease: 10 s)")
    parser.add_argument("--appendfsync", default=os.environ.get("PARLEY_REDIS_APPENDFSYNC", "everysec"))
    parser.add_argument("--write", help="write the table into this markdown file")
    parser.add_argument("--command", default="scripts/chaos", help="the command named beside the table")
    parser.add_argument("--keep", action="store_true", help="leave the private services running")
    parser.add_argument("--cluster", action="store_true", help="run on a private Redis Cluster (3 primaries, 3 replicas)")
    parser.add_argument("--ack-replicas", type=int, default=1, help="PARLEY_ACK_REPLICAS with --cluster")
    options = parser.parse_args()
    chaos = Chaos(options)
    failed = False
    try:
        await chaos.setup()
        for name in options.faults.split(","):
            title, fault = FAULTS[name]
            await chaos.scenario(name, title, fault(chaos))
    except Exception as error:  # noqa: BLE001 - reported as the run's failure
        log(f"FAILED: {error}")
        failed = True
    finally:
        if hasattr(chaos, "clients"):
            await chaos.teardown()
        elif not options.keep:
            chaos.services.down()
    print(chaos.table())
    if any(r["problems"] for r in chaos.rows):
        failed = True
    if options.write and chaos.rows and not failed:
        write_docs(options.write, chaos.table(), options.command, options)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
