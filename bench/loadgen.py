"""One load generator for Parley and Matrix Synapse: the same workload shape against both.

`users` users in `rooms` group rooms (users / rooms members each). For each offered rate,
messages are sent at that fixed rate (on a schedule, not as fast as possible) by the
rooms' members in turn, for `seconds`; every other member of the room must receive each
one. Latency is send-to-deliver, measured from the time the send was *scheduled*, so a
generator or a server that falls behind shows it. Latencies go into HdrHistograms (the
`hdrh` package), merged across processes.

The clients are split over `processes` worker processes (each with its own event loop and
sockets); the parent registers the users and makes the rooms, then merges the results.

- Parley: sends are WebSocket `send` frames; delivery is the `event` frame on each
  member's WebSocket.
- Synapse: sends are `PUT /_matrix/client/v3/rooms/{room}/send/m.room.message/{txn}`;
  delivery is the event in each member's `/sync` long-poll.

Prints one JSON object with a row per rate: offered, sent, send errors, deliveries expected
and received, delivered/s, p50/p90/p99/p99.9/max in ms.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import sys
import time
import urllib.parse

import aiohttp
from hdrh.histogram import HdrHistogram

DRAIN_SECONDS = 10


def histogram():
    return HdrHistogram(1, 120_000_000, 3)  # microseconds, up to 120 s


# --- set-up (parent) -------------------------------------------------------------------

async def setup_parley(base, users, rooms, prefix):
    async with aiohttp.ClientSession() as http:
        async def register(i):
            async with http.post(f"{base}/v1/auth/register", json={"username": f"{prefix}{i}", "password": "benchmark password"}) as r:
                body = await r.json()
                if r.status != 201:
                    raise RuntimeError(f"register: {r.status} {body}")
                return {"id": body["user"]["id"], "token": body["token"]}
        accounts = []
        for start in range(0, users, 50):
            accounts += await asyncio.gather(*(register(i) for i in range(start, min(users, start + 50))))
        members = users // rooms
        room_ids = []
        for r in range(rooms):
            group = accounts[r * members:(r + 1) * members]
            headers = {"Authorization": f"Bearer {group[0]['token']}"}
            async with http.post(f"{base}/v1/rooms", json={"name": f"bench {r}", "invite": [a["id"] for a in group[1:]]}, headers=headers) as resp:
                body = await resp.json()
                room_ids.append(body["room"]["id"])
            for a in group[1:]:
                async with http.post(f"{base}/v1/rooms/{room_ids[-1]}/join", headers={"Authorization": f"Bearer {a['token']}"}) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"join: {resp.status} {await resp.text()}")
        return accounts, room_ids


async def setup_synapse(base, users, rooms, prefix):
    async with aiohttp.ClientSession() as http:
        async def register(i):
            body = {"username": f"{prefix}{i}", "password": "benchmark password", "auth": {"type": "m.login.dummy"},
                    "inhibit_login": False}
            async with http.post(f"{base}/_matrix/client/v3/register", json=body) as r:
                reply = await r.json()
                if r.status != 200:
                    raise RuntimeError(f"register: {r.status} {reply}")
                return {"id": reply["user_id"], "token": reply["access_token"]}
        accounts = []
        for start in range(0, users, 20):
            accounts += await asyncio.gather(*(register(i) for i in range(start, min(users, start + 20))))
        members = users // rooms
        room_ids = []
        for r in range(rooms):
            group = accounts[r * members:(r + 1) * members]
            headers = {"Authorization": f"Bearer {group[0]['token']}"}
            async with http.post(f"{base}/_matrix/client/v3/createRoom", json={"preset": "public_chat", "name": f"bench {r}"}, headers=headers) as resp:
                body = await resp.json()
                if resp.status != 200:
                    raise RuntimeError(f"createRoom: {resp.status} {body}")
                room_ids.append(body["room_id"])
            for a in group[1:]:
                path = f"{base}/_matrix/client/v3/join/{urllib.parse.quote(room_ids[-1])}"
                async with http.post(path, json={}, headers={"Authorization": f"Bearer {a['token']}"}) as resp:
                    if resp.status != 200:
                        raise RuntimeError(f"join: {resp.status} {await resp.text()}")
        return accounts, room_ids


# --- a worker process ------------------------------------------------------------------

class Worker:
    def __init__(self, spec):
        self.spec = spec
        self.phase_hist = {}
        self.delivered = {}
        self.sent = {}
        self.send_errors = {}
        self.stop = False

    def record(self, body, now_ns):
        # body: "p<phase> t<scheduled ns> n<n>"
        try:
            parts = body.split(" ")
            phase = int(parts[0][1:])
            scheduled = int(parts[1][1:])
        except (ValueError, IndexError):
            return
        h = self.phase_hist.setdefault(phase, histogram())
        h.record_value(max(1, (now_ns - scheduled) // 1000))
        self.delivered[phase] = self.delivered.get(phase, 0) + 1

    # Parley: one WebSocket per user, for receiving and sending.
    async def parley_client(self, http, account, ready):
        ws_url = self.spec["base"].replace("http", "ws", 1) + f"/v1/ws?token={account['token']}"
        async with http.ws_connect(ws_url, max_msg_size=1 << 22, heartbeat=None) as ws:
            account["ws"] = ws
            async for message in ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                now = time.monotonic_ns()
                frame = json.loads(message.data)
                kind = frame.get("type")
                if kind == "hello":
                    ready.set()
                elif kind == "event":
                    event = frame["event"]
                    if event.get("type") == "message.sent" and event.get("actorId") != account["id"]:
                        self.record(event["data"].get("body", ""), now)
                elif kind == "error":
                    self.send_errors[-1] = self.send_errors.get(-1, 0) + 1

    async def parley_send(self, http, account, room, body, phase):
        ws = account.get("ws")
        if ws is None or ws.closed:
            self.send_errors[phase] = self.send_errors.get(phase, 0) + 1
            return
        await ws.send_str(json.dumps({"type": "send", "roomId": room, "body": body, "clientMsgId": body.split(" ")[2] + "-" + str(phase)}))

    # Synapse: one /sync long-poll loop per user; sends over the client-server API.
    async def synapse_client(self, http, account, ready):
        base = self.spec["base"]
        headers = {"Authorization": f"Bearer {account['token']}"}
        # The first sync only needs the position; later ones must not truncate the timeline
        # (a "limited" timeline would drop messages and undercount deliveries).
        first = json.dumps({"room": {"timeline": {"limit": 1}, "state": {"lazy_load_members": True}},
                            "presence": {"types": []}, "account_data": {"types": []}})
        flt = json.dumps({"room": {"timeline": {"limit": 1000}, "state": {"lazy_load_members": True}},
                          "presence": {"types": []}, "account_data": {"types": []}})
        async with http.get(f"{base}/_matrix/client/v3/sync", params={"filter": first, "timeout": "0"}, headers=headers) as r:
            since = (await r.json())["next_batch"]
        ready.set()
        while not self.stop:
            try:
                async with http.get(f"{base}/_matrix/client/v3/sync", params={"filter": flt, "since": since, "timeout": "30000"},
                                    headers=headers, timeout=aiohttp.ClientTimeout(total=60)) as r:
                    body = await r.json()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                await asyncio.sleep(0.1)
                continue
            now = time.monotonic_ns()
            since = body.get("next_batch", since)
            for room in body.get("rooms", {}).get("join", {}).values():
                for event in room.get("timeline", {}).get("events", []):
                    if event.get("type") == "m.room.message" and event.get("sender") != account["id"]:
                        self.record(event.get("content", {}).get("body", ""), now)

    async def synapse_send(self, http, account, room, body, phase):
        txn = f"{body.split(' ')[2]}-{phase}-{random.randrange(1 << 30)}"
        url = f"{self.spec['base']}/_matrix/client/v3/rooms/{urllib.parse.quote(room)}/send/m.room.message/{txn}"
        try:
            async with http.put(url, json={"msgtype": "m.text", "body": body}, headers={"Authorization": f"Bearer {account['token']}"}) as r:
                if r.status != 200:
                    self.send_errors[phase] = self.send_errors.get(phase, 0) + 1
        except aiohttp.ClientError:
            self.send_errors[phase] = self.send_errors.get(phase, 0) + 1

    async def run(self, start_event, results):
        spec = self.spec
        parley = spec["target"] == "parley"
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as http:
            clients = []
            for account in spec["accounts"]:
                ready = asyncio.Event()
                task = asyncio.ensure_future((self.parley_client if parley else self.synapse_client)(http, account, ready))
                clients.append((task, ready))
            for task, ready in clients:
                await asyncio.wait_for(ready.wait(), 120)
            # Wait for the parent's common start time (the other workers connect too).
            while not start_event.is_set():
                await asyncio.sleep(0.05)
            send = self.parley_send if parley else self.synapse_send
            t0 = spec["t0_ns"] if spec.get("t0_ns") else time.monotonic_ns()
            t0 = max(t0, time.monotonic_ns())
            pending = set()
            for phase, rate in enumerate(spec["rates"]):
                phase_start = t0 + phase * int((spec["seconds"] + DRAIN_SECONDS) * 1e9)
                while time.monotonic_ns() < phase_start:
                    await asyncio.sleep(0.01)
                total = int(rate * spec["seconds"])
                # This worker sends every `processes`-th message of the common schedule.
                n = spec["index"]
                while n < total:
                    scheduled = phase_start + int(n * 1e9 / rate)
                    delay = (scheduled - time.monotonic_ns()) / 1e9
                    if delay > 0:
                        await asyncio.sleep(delay)
                    room_index = n % len(spec["rooms"])
                    senders = spec["senders"][room_index]
                    if senders:
                        account = spec["accounts"][senders[(n // len(spec["rooms"])) % len(senders)]]
                        body = f"p{phase} t{scheduled} n{n}"
                        task = asyncio.ensure_future(send(http, account, spec["rooms"][room_index], body, phase))
                        pending.add(task)
                        task.add_done_callback(pending.discard)
                        self.sent[phase] = self.sent.get(phase, 0) + 1
                    n += spec["processes"]
            # The last phase's drain.
            end = t0 + len(spec["rates"]) * int((spec["seconds"] + DRAIN_SECONDS) * 1e9)
            while time.monotonic_ns() < end:
                await asyncio.sleep(0.05)
            self.stop = True
            for task, _ in clients:
                task.cancel()
        results.put({
            "hist": {p: h.encode().decode() for p, h in self.phase_hist.items()},
            "delivered": self.delivered, "sent": self.sent, "send_errors": self.send_errors,
        })


def worker_main(spec, start_event, results):
    try:
        asyncio.run(Worker(spec).run(start_event, results))
    except Exception as error:  # reported to the parent
        results.put({"error": f"{type(error).__name__}: {error}"})


# --- the parent ------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=["parley", "synapse"], required=True)
    parser.add_argument("--base", required=True, help="http://127.0.0.1:PORT")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--rates", type=float, nargs="+", default=[50, 100, 200])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    prefix = f"lg{int(time.time()) % 1000000}u"
    setup = setup_parley if args.target == "parley" else setup_synapse
    print(f"loadgen: setting up {args.users} users in {args.rooms} rooms on {args.target}", file=sys.stderr)
    accounts, rooms = asyncio.run(setup(args.base, args.users, args.rooms, prefix))
    members = args.users // args.rooms

    ctx = multiprocessing.get_context("spawn")
    start_event = ctx.Event()
    results = ctx.Queue()
    workers = []
    for index in range(args.processes):
        mine = list(range(index, args.users, args.processes))  # this worker's users (indexes)
        local = {u: i for i, u in enumerate(mine)}
        senders = []
        for r in range(args.rooms):
            senders.append([local[u] for u in range(r * members, (r + 1) * members) if u in local])
        spec = {"target": args.target, "base": args.base, "accounts": [dict(accounts[u]) for u in mine],
                "rooms": rooms, "senders": senders, "rates": args.rates, "seconds": args.seconds,
                "processes": args.processes, "index": index}
        # Rooms without a sender of this worker: another worker sends those slots.
        process = ctx.Process(target=worker_main, args=(spec, start_event, results))
        process.start()
        workers.append(process)
    # Every worker has connected its clients before the common start.
    time.sleep(2 + args.users / 200)
    start_event.set()
    merged = {}
    outputs = [results.get(timeout=600 + len(args.rates) * (args.seconds + DRAIN_SECONDS)) for _ in workers]
    for process in workers:
        process.join(timeout=30)
    errors = [o["error"] for o in outputs if "error" in o]
    if errors:
        print(json.dumps({"error": errors}))
        sys.exit(1)
    rows = []
    for phase, rate in enumerate(args.rates):
        h = histogram()
        delivered = sent = send_errors = 0
        for o in outputs:
            encoded = o["hist"].get(phase) or o["hist"].get(str(phase))
            if encoded:
                h.add(HdrHistogram.decode(encoded.encode()))
            delivered += o["delivered"].get(phase, 0) + o["delivered"].get(str(phase), 0)
            sent += o["sent"].get(phase, 0) + o["sent"].get(str(phase), 0)
            send_errors += o["send_errors"].get(phase, 0) + o["send_errors"].get(str(phase), 0)
        expected = sent * (members - 1)
        window = args.seconds
        rows.append({
            "offered_per_s": rate, "sent": sent, "send_errors": send_errors, "deliveries_expected": expected,
            "delivered": delivered, "delivered_per_s": round(delivered / window),
            "p50_ms": h.get_value_at_percentile(50) / 1000, "p90_ms": h.get_value_at_percentile(90) / 1000,
            "p99_ms": h.get_value_at_percentile(99) / 1000, "p999_ms": h.get_value_at_percentile(99.9) / 1000,
            "max_ms": h.get_max_value() / 1000,
        })
    print(json.dumps({"target": args.target, "users": args.users, "rooms": args.rooms, "seconds": args.seconds,
                      "processes": args.processes, "rows": rows}))


if __name__ == "__main__":
    main()
