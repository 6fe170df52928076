import EventLog
import Events
import Foundation
import Projections
import TestSupport
import Testing

/// `parley-replay` run as an operator runs it, against the real Redis, PostgreSQL and
/// MongoDB-protocol server.
@Suite("parley-replay against the real stores")
struct ReplayCommandTests {
    @Test func verifyPassesNamesACorruptedRowAndDocumentAndAShadowRebuildRepairsThem() async throws {
        let f = try await ReplayFixture()
        let ids = try await f.log.scriptedChat()
        try await f.sendMany(40, ids: ids)
        try await f.project()

        let clean = try await f.replay(["verify"])
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
        #expect(clean.stdout.contains("verify: OK"))

        // Someone edits the read models behind the log's back.
        try await f.postgres.query("UPDATE \(f.schema).rooms SET name = 'Hacked' WHERE id = 'club'")
        try await f.postgres.query(
            "UPDATE \(f.schema).room_members SET role = 'owner' WHERE room_id = 'club' AND user_id = $1", [ids["cyd"]!])
        _ = try await f.messages.documents().deleteMany(["_id": "c2"])

        let dirty = try await f.replay(["verify"])
        #expect(dirty.status == 1)
        #expect(dirty.stdout.contains(#"rooms club: name is "Hacked", the log makes "The Club""#), "\(dirty.stdout)")
        #expect(dirty.stdout.contains(#"room_members club/\#(ids["cyd"]!): role is "owner", the log makes "member""#), "\(dirty.stdout)")
        #expect(dirty.stdout.contains("messages c2: missing from the live read model"), "\(dirty.stdout)")
        #expect(dirty.stdout.contains("verify: FAILED, 3 difference(s)"))

        let rebuilt = try await f.replay(["rebuild", "--shadow"])
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(
            rebuilt.stdout.contains("rebuild metadata: shadow swapped in") && rebuilt.stdout.contains("rebuild messages: shadow swapped in")
        )
        let repaired = try await f.replay(["verify"])
        #expect(repaired.status == 0, "\(repaired.stdout)")
        // What a reader gets is right again.
        let room = try await MetadataReadModel(postgres: f.postgres, schema: f.schema).room(id: "club")
        #expect(room?.name == "The Club")
        #expect(try await f.messages.documents().findOne(["_id": "c2"])?["body"]?.stringValue == "hi bea")
        try await f.cleanUp()
    }

    /// The search read model is a third projector like the others: `verify --projection search` compares its rows with
    /// the log's, names what was changed behind its back, and `rebuild --shadow --projection search` repairs it without
    /// touching the metadata tables beside it.
    @Test func verifyAndAShadowRebuildCoverTheSearchReadModel() async throws {
        let f = try await ReplayFixture()
        let ids = try await f.log.scriptedChat()
        try await f.sendMany(30, ids: ids)
        try await f.project()
        let clean = try await f.replay(["verify", "--projection", "search"])
        #expect(clean.status == 0 && clean.stdout.contains("search_messages"), "\(clean.stdout)\(clean.stderr)")
        let search = SearchReadModel(postgres: f.postgres, schema: f.schema)
        #expect(try await search.search(try #require(SearchQuery("hello")), userId: ids["bea"]!).hits.map(\.messageId) == ["c1"])

        try await f.postgres.query("UPDATE \(f.schema).search_messages SET body = 'tampered' WHERE message_id = 'c1'")
        try await f.postgres.query("DELETE FROM \(f.schema).search_messages WHERE message_id = 'c2'")
        try await f.postgres.query(
            "INSERT INTO \(f.schema).search_messages (room_id, message_id, seq, sender_id, body, sent_ms) VALUES ('club', 'c3', 3, 'x', 'oops', 0)"
        )
        let dirty = try await f.replay(["verify", "--projection", "search"])
        #expect(dirty.status == 1)
        #expect(dirty.stdout.contains(#"search_messages club/c1: body is "tampered", the log makes "hello!!""#), "\(dirty.stdout)")
        #expect(dirty.stdout.contains("search_messages club/c2: missing from the live read model"), "\(dirty.stdout)")
        #expect(dirty.stdout.contains("search_messages club/c3: in the live read model but not made by the log"), "\(dirty.stdout)")
        #expect(dirty.stdout.contains("verify: FAILED, 3 difference(s)"), "\(dirty.stdout)")

        let members = try await f.postgres.query("SELECT count(*) AS n FROM \(f.schema).room_members").first?.int("n")
        let rebuilt = try await f.replay(["rebuild", "--shadow", "--projection", "search"])
        #expect(rebuilt.status == 0 && rebuilt.stdout.contains("rebuild search: shadow swapped in"), "\(rebuilt.stdout)\(rebuilt.stderr)")
        #expect(!rebuilt.stdout.contains("rebuild metadata"))
        let repaired = try await f.replay(["verify"])
        #expect(repaired.status == 0, "\(repaired.stdout)")
        #expect(try await search.search(try #require(SearchQuery("hello")), userId: ids["bea"]!).hits.map(\.body) == ["hello!!"])
        // The metadata tables in the same schema were not moved, and no shadow schema is left.
        #expect(try await f.postgres.query("SELECT count(*) AS n FROM \(f.schema).room_members").first?.int("n") == members)
        let left = try await f.postgres.query("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, $1)", [f.schema + "_search"])
        #expect(left.isEmpty, "\(left.map { $0.string("nspname") ?? "" })")
        try await f.cleanUp()
    }

    @Test func aShadowRebuildSwapsInWhileLiveProjectorsRunAndLosesNothing() async throws {
        let f = try await ReplayFixture()
        let ids = try await f.log.scriptedChat()
        try await f.sendMany(3000, ids: ids)
        let live = f.startLive()
        try await f.waitUntilProjected()

        // Messages keep coming during the whole rebuild and swap.
        let sending = Task {
            var sent = 0
            while !Task.isCancelled {
                try await f.log.execute(
                    .send(roomId: "club", messageId: "live-\(sent)", body: "during \(sent)", clientMsgId: nil, replyTo: nil),
                    actor: ids["bea"]!)
                sent += 1
                try? await Task.sleep(for: .milliseconds(3))
            }
            return sent
        }
        let rebuilt = try await f.replay(["rebuild", "--shadow", "--batch", "200"])
        try await Task.sleep(for: .milliseconds(300))
        sending.cancel()
        let duringRebuild = try await sending.value
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        #expect(duringRebuild > 10)

        // Every message sent before, during and after the swap is in the swapped-in model.
        try await f.waitUntilProjected()
        let documents = try await f.messages.documents().count()
        #expect(documents == 4 + 3000 + duringRebuild)
        let room = try await MetadataReadModel(postgres: f.postgres, schema: f.schema).room(id: "club")
        #expect(room?.lastSeq == Int64(3 + 3000 + duringRebuild))
        let verified = try await f.replay(["verify"])
        #expect(verified.status == 0, "\(verified.stdout)\(verified.stderr)")
        // The hold is gone: live projection goes on after the swap.
        try await f.log.execute(
            .send(roomId: "club", messageId: "after", body: "after the swap", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
        try await f.waitUntilProjected()
        #expect(try await f.messages.documents().findOne(["_id": "after"]) != nil)
        live.cancel()
        _ = try? await live.value
        try await f.cleanUp()
    }

    /// The operator accepts a log's loss as `docs/operations.md` says: before, the shadow swap waited 30 s for live
    /// projectors stuck on the lost tail to pause, and failed; and appends went on reusing the lost messages' numbers.
    @Test func aLogThatLostEntriesIsReconciledByAShadowRebuildWhileTheProjectorsRun() async throws {
        let f = try await ReplayFixture(partitions: 1)
        let ids = try await f.log.scriptedChat()
        try await f.sendMany(20, ids: ids, prefix: "kept")
        try await f.project()
        // Redis comes back from an older snapshot: the stream as it was five entries ago.
        let stream = f.log.keys.stream(0)
        let entries = try await f.redis.xrange(stream)
        try await f.redis.command("DEL", stream)
        for entry in entries.dropLast(5) { _ = try await f.redis.command(["XADD", stream, entry.id, "event", entry["event"] ?? ""]) }
        let live = f.startLive()
        _ = try await eventually(seconds: 30) {
            guard f.lag.lostTail.count == 2 else { throw ProjectionError("lost tail reported by \(f.lag.lostTail.count)") }
            return true
        }
        let send = Command.send(roomId: "club", messageId: "after", body: "after the repair", clientMsgId: nil, replyTo: nil)
        await #expect(throws: EventLog.LostEntries.self) { try await f.log.execute(send, actor: ids["ada"]!) }

        // Accept the loss: each read model becomes the log as it now is, swapped in while the projectors run.
        let rebuilt = try await f.replay(["rebuild", "--shadow"], timeout: 120)
        #expect(rebuilt.status == 0, "\(rebuilt.stdout)\(rebuilt.stderr)")
        _ = try await eventually(seconds: 30) {
            guard f.lag.lostTail.isEmpty else { throw ProjectionError("still lost: \(f.lag.lostTail)") }
            return true
        }
        // Appends and projection go on, and the read models are the log.
        _ = try await eventually(seconds: 10) { try await f.log.execute(send, actor: ids["ada"]!) }
        try await f.waitUntilProjected()
        #expect(try await f.history.message(id: "after")?.body == "after the repair")
        let verified = try await f.replay(["verify"])
        #expect(verified.status == 0, "\(verified.stdout)")
        live.cancel()
        _ = try? await live.value
        try await f.cleanUp()
    }

    @Test func auditChainNamesTheAlteredAndTheRemovedEntryOfACopiedLog() async throws {
        let f = try await ReplayFixture()
        let ids = try await f.log.scriptedChat()
        // Rooms in both partitions.
        for n in 0..<8 {
            try await f.log.execute(.createGroup(roomId: "g\(n)", name: "G\(n)", invite: []), actor: ids["ada"]!)
            try await f.log.execute(
                .send(roomId: "g\(n)", messageId: "g\(n)-1", body: "one", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
            try await f.log.execute(
                .send(roomId: "g\(n)", messageId: "g\(n)-2", body: "two", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
        }
        let intact = try await f.replay(["audit", "chain"])
        #expect(intact.status == 0, "\(intact.stdout)\(intact.stderr)")
        #expect(intact.stdout.contains("audit chain: OK"))

        // A copy of the log: in partition 0 one entry's body is altered, in partition 1
        // one entry is left out.
        let copy = TestStores.unique("trepcopy")
        let copyLog = Keys(namespace: copy, tags: f.log.keys.tags)
        var altered = ""
        var afterRemoved = ""
        for partition in 0..<2 {
            let entries = try await f.redis.xrange(f.log.keys.stream(partition))
            #expect(entries.count > 10)
            for (i, entry) in entries.enumerated() {
                var json = entry["event"]!
                if partition == 0 && i == 5 {
                    altered = entry.id
                    json = json.replacingOccurrences(of: "\"actorId\":\"", with: "\"actorId\":\"x")
                }
                if partition == 1 && i == 3 { continue }
                if partition == 1 && i == 4 { afterRemoved = entry.id }
                _ = try await f.redis.xadd(copyLog.stream(partition), id: entry.id, fields: [("event", json)])
            }
            let head = try await f.redis.command(["GET", f.log.keys.guards(partition).head]).string!
            try await f.redis.command(["SET", copyLog.guards(partition).head, head])
        }
        let broken = try await runParley(
            "parley-replay", ["audit", "chain"], environment: f.environment.merging(["PARLEY_NAMESPACE": copy]) { $1 })
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("BROKEN at 0:\(altered)"), "\(broken.stdout)")
        #expect(broken.stdout.contains("BROKEN at 1:\(afterRemoved)"), "\(broken.stdout)")
        #expect(broken.stdout.contains("audit chain: FAILED in 2 partition(s)"))

        // Removing the last event shows too: the stored chain head no longer matches.
        let last = try await f.redis.command(["XREVRANGE", copyLog.stream(0), "+", "-", "COUNT", "1"]).array![0].array![0].string!
        try await f.redis.command([
            "XDEL", copyLog.stream(1),
            try await f.redis.command(["XREVRANGE", copyLog.stream(1), "+", "-", "COUNT", "1"]).array![0].array![0].string!,
        ])
        let truncated = try await runParley(
            "parley-replay", ["audit", "chain"], environment: f.environment.merging(["PARLEY_NAMESPACE": copy]) { $1 })
        #expect(truncated.stdout.contains("BROKEN at 0:\(altered)"), "\(last)")
        #expect(truncated.stdout.contains("BROKEN at 1:\(afterRemoved)"))
        try await f.redis.deleteKeys(matching: "\(copy)*")
        try await f.cleanUp()
    }

    @Test func aRemovedLastEventBreaksTheChainAtTheEnd() async throws {
        let f = try await ReplayFixture(partitions: 1)
        _ = try await f.log.scriptedChat()
        let last = try await f.redis.command(["XREVRANGE", f.log.keys.stream(0), "+", "-", "COUNT", "1"]).array![0].array![0].string!
        try await f.redis.command(["XDEL", f.log.keys.stream(0), last])
        let result = try await f.replay(["audit", "chain"])
        #expect(result.status == 1)
        #expect(result.stdout.contains("BROKEN at the end (the last event was removed)"), "\(result.stdout)")
        try await f.cleanUp()
    }

    @Test func reactionsPinsAndReceiptsVerifyRebuildAndAuditLikeEverythingElse() async throws {
        let f = try await ReplayFixture()
        let ids = try await f.log.scriptedChat()
        try await f.log.reactionsPinsAndModeration(ids)
        try await f.sendMany(30, ids: ids)
        try await f.project()
        let clean = try await f.replay(["verify"])
        #expect(clean.status == 0, "\(clean.stdout)\(clean.stderr)")
        let live = try #require(try await f.messages.documents().findOne(["_id": "c1"]))
        #expect(live["reactions"]?.arrayValue?.compactMap(\.stringValue) == ["👍 \(ids["ada"]!)", "👍 \(ids["bea"]!)"])
        #expect(live["thread"]?.documentValue?["replyCount"]?.int64Value == 2)
        let mentions = try await f.postgres.query("SELECT user_id FROM \(f.schema).message_mentions WHERE room_id = 'club'")
        #expect(mentions.map { $0.string("user_id") } == [ids["ada"]!])
        let bans = try await MetadataReadModel(postgres: f.postgres, schema: f.schema).bans(roomId: "club")
        #expect(bans.map(\.userId) == [ids["cyd"]!] && bans.first?.reason == "spam" && bans.first?.bannedBy == ids["ada"])
        let blocks = try await MetadataReadModel(postgres: f.postgres, schema: f.schema).blocks(of: ids["ada"]!)
        #expect(blocks.map(\.userId) == [ids["cyd"]!])
        #expect(try await MetadataReadModel(postgres: f.postgres, schema: f.schema).blocks(of: ids["bea"]!).isEmpty)
        let pins = try await MetadataReadModel(postgres: f.postgres, schema: f.schema).pins(roomId: "club")
        #expect(pins.map(\.messageId) == ["c1"] && pins.first?.pinnedBy == ids["bea"])
        let receipts = try await MetadataReadModel(postgres: f.postgres, schema: f.schema).receipts(roomId: "club")
        #expect(receipts.allSatisfy { $0.at != nil } && receipts.contains { $0.userId == ids["bea"] && $0.seq >= 4 })

        // The new fields are compared too: a reaction, a pin and a receipt time changed behind the log's back.
        _ = try await f.messages.documents().updateOne(filter: ["_id": "c2"], update: ["$set": ["reactions": []]])
        try await f.postgres.query("DELETE FROM \(f.schema).room_pins WHERE room_id = 'club'")
        try await f.postgres.query(
            "UPDATE \(f.schema).room_members SET ban_reason = 'nothing' WHERE room_id = 'club' AND user_id = $1", [ids["cyd"]!])
        try await f.postgres.query("DELETE FROM \(f.schema).user_blocks")
        _ = try await f.messages.documents().updateOne(filter: ["_id": "c1"], update: ["$inc": ["thread.replyCount": .int64(5)]])
        try await f.postgres.query(
            "UPDATE \(f.schema).room_members SET last_read_at = now() - interval '1 day' WHERE room_id = 'club' AND user_id = $1",
            [ids["bea"]!])
        let dirty = try await f.replay(["verify"])
        #expect(dirty.status == 1)
        #expect(dirty.stdout.contains("messages c2: reactions is [], the log makes"), "\(dirty.stdout)")
        #expect(dirty.stdout.contains("room_pins club/c1: missing from the live read model"), "\(dirty.stdout)")
        #expect(dirty.stdout.contains(#"ban_reason is "nothing", the log makes "spam""#), "\(dirty.stdout)")
        #expect(dirty.stdout.contains("messages c1: thread is"), "\(dirty.stdout)")
        #expect(dirty.stdout.contains("user_blocks \(ids["ada"]!)/\(ids["cyd"]!): missing from the live read model"), "\(dirty.stdout)")
        #expect(dirty.stdout.contains("room_members club/\(ids["bea"]!): last_read_at is"), "\(dirty.stdout)")
        let rebuilt = try await f.replay(["rebuild", "--shadow"])
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        let repaired = try await f.replay(["verify"])
        #expect(repaired.status == 0, "\(repaired.stdout)")
        let c2 = try await f.messages.documents().findOne(["_id": "c2"])
        #expect(c2?["reactions"]?.arrayValue?.compactMap(\.stringValue) == ["❤️ \(ids["bea"]!)"])

        let table = try await f.replay(["audit", "room", "club"])
        for expected in [
            #"ada  reacted "👍" to bea's message 1"#, #"ada  took back "🎉" from bea's message 1"#, "bea  pinned bea's message 1",
            "ada  pinned ada's message 2", "bea  unpinned ada's message 2", "ada  unpinned ada's message 4", "bea  muted cyd",
            "ada  unmuted cyd", "ada  muted cyd until 2100-01-01 00:00:00", "ada  banned cyd: spam",
            #"bea  message t1: "in a thread" in the thread of bea's message 1 mentioning ada"#,
        ] {
            #expect(table.stdout.contains(expected), "no line has \(expected)")
        }
        try await f.cleanUp()
    }

    @Test func auditShowsWhoDidWhatWithEveryEditAndDeletionAndNoSecret() async throws {
        let f = try await ReplayFixture()
        let ids = try await f.log.scriptedChat()
        let table = try await f.replay(["audit", "room", "club"])
        #expect(table.status == 0, "\(table.stderr)")
        let lines = table.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("time (UTC)") == true)
        for expected in [
            #"ada  created group "Club""#, "ada  invited bea as member", "ada  invited cyd as member", "bea  bea joined as member",
            "ada  bea is now admin",
            #"bea  message c1: "hello""#, #"ada  message c2: "hi bea" (reply to c1)"#, #"bea  edited c1: "hello" → "hello!""#,
            #"bea  edited c1: "hello!" → "hello!!""#, #"bea  deleted c3 (sent by ada: "oops")"#, #"bea  renamed "Club" → "The Club""#,
            "bea  read up to seq 2",
        ] {
            #expect(lines.contains { $0.hasSuffix(expected) }, "no line ends with \(expected)")
        }
        // In log order, with the room's seqs on messages.
        let whats = lines.dropFirst(2)
        #expect(whats.count == 13)
        #expect(whats.firstIndex { $0.contains("edited c1") }! < whats.firstIndex { $0.contains("deleted c3") }!)

        let json = try await f.replay(["audit", "room", "club", "--format", "jsonl"])
        let objects = json.stdout.split(separator: "\n").map { try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        #expect(objects.count == 13)
        let edit = try #require(objects.first { $0["type"] as? String == "message.edited" })
        #expect(edit["previousBody"] as? String == "hello" && (edit["data"] as? [String: Any])?["body"] as? String == "hello!")
        #expect(
            edit["actorId"] as? String == ids["bea"] && edit["actor"] as? String == "bea" && edit["position"] is String
                && edit["at"] is String)

        let user = try await f.replay(["audit", "user", ids["cyd"]!])
        #expect(user.status == 0)
        #expect(user.stdout.contains(#"registered as "cyd""#) && user.stdout.contains("invited cyd as member"))
        #expect(user.stdout.contains("direct room of ada and cyd") && user.stdout.contains(#"message d1: "psst""#) == false)
        let ada = try await f.replay(["audit", "user", ids["ada"]!])
        #expect(ada.stdout.contains(#"message d1: "psst""#))
        // --received: what the hub's rule sent them. cyd was only invited to the club.
        let cydSaw = try await f.replay(["audit", "user", ids["cyd"]!, "--received"])
        #expect(cydSaw.status == 0 && cydSaw.stdout.contains(#"message d1: "psst""#) && !cydSaw.stdout.contains(#""hi bea""#))
        #expect(cydSaw.stdout.contains("invited cyd as member"))
        let beaSaw = try await f.replay(["audit", "user", ids["bea"]!, "--received"])
        #expect(beaSaw.stdout.contains(#""hi bea""#) && !user.stdout.contains(#""hi bea""#))

        let unknown = try await f.replay(["audit", "room", "nope"])
        #expect(unknown.status == 1 && unknown.stderr.contains("no events for room nope"))
        for output in [table.stdout, json.stdout, user.stdout, ada.stdout] { #expect(!output.contains("$2b$")) }
        try await f.cleanUp()
    }

    @Test func exportWritesTheLogAsJSONLinesWithoutPasswordHashes() async throws {
        let f = try await ReplayFixture()
        _ = try await f.log.scriptedChat()
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(TestStores.unique("export") + ".jsonl")
        let all = try await f.replay(["export", "--out", file.path])
        #expect(all.status == 0, "\(all.stderr)")
        let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
        let total = try await f.redis.pipeline((0..<2).map { ["XLEN", f.log.keys.stream($0)] }).reduce(0) { $0 + ($1.int ?? 0) }
        #expect(lines.count == total)
        #expect(!lines.contains { $0.contains("$2b$") || $0.contains("passwordHash") })
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            let event = try #require(object["event"] as? [String: Any])
            #expect(object["partition"] is Int && object["entryId"] is String && event["hash"] is String && event["type"] is String)
        }
        let registered = lines.filter { $0.contains("user.registered") }
        #expect(registered.count == 3 && registered.allSatisfy { $0.contains("\"username\"") })

        let room = try await f.replay(["export", "--out", file.path, "--room", "club"])
        #expect(room.status == 0)
        let roomLines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
        #expect(roomLines.count == 13 && roomLines.allSatisfy { $0.contains("\"roomId\":\"club\"") })
        let bad = try await f.replay(["export", "--out", "/nonexistent-dir/x.jsonl"])
        #expect(bad.status == 1 && bad.stderr.contains("cannot create"))
        try? FileManager.default.removeItem(at: file)
        try await f.cleanUp()
    }

    @Test func anInPlaceRebuildIsRefusedWhileLiveProjectorsRunAndResumesAfterCtrlC() async throws {
        let f = try await ReplayFixture()
        let ids = try await f.log.scriptedChat()
        try await f.sendMany(6000, ids: ids)

        // A live projector holds partition 1's lease: in place would race it.
        try await f.redis.command(["SET", "\(f.schema):lease:metadata:1", "server-a", "PX", "60000"])
        let refused = try await f.replay(["rebuild", "--projection", "metadata"])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("the live metadata projector is running (server-a holds partition 1)"), "\(refused.stderr)")
        #expect(refused.stderr.contains("--shadow"))
        try await f.redis.command(["DEL", "\(f.schema):lease:metadata:1"])

        // Ctrl-C part way: exit 130, and the next run resumes from the checkpoint.
        let run = try RunningReplay(
            ["rebuild", "--projection", "metadata", "--batch", "50", "--progress-interval", "0.05"], environment: f.environment)
        try await run.waitFor("events/s")
        kill(run.process.processIdentifier, SIGINT)
        let status = try await run.exitStatus()
        #expect(status == 130, "\(run.stderr)")
        #expect(run.stderr.contains("interrupted; what was done is kept"))
        let stopped = try await f.metadata.checkpoint(partition: 0)
        #expect(stopped != "0-0")
        #expect(try await f.redis.command(["EXISTS", "\(f.schema):rebuild:metadata"]).int == 1)
        // No lease is left behind.
        #expect(try await f.redis.keys(matching: "\(f.schema):lease:*").isEmpty)

        let resumed = try await f.replay(["rebuild", "--projection", "metadata"])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("(resumed)"))
        let room = try await MetadataReadModel(postgres: f.postgres, schema: f.schema).room(id: "club")
        #expect(room?.lastSeq == Int64(3 + 6000))
        let messages = try await f.replay(["rebuild", "--projection", "messages"])
        #expect(messages.status == 0, "\(messages.stderr)")
        let search = try await f.replay(["rebuild", "--projection", "search"])
        #expect(search.status == 0 && search.stdout.contains("rebuild search: done in place"), "\(search.stdout)\(search.stderr)")
        let verified = try await f.replay(["verify"])
        #expect(verified.status == 0, "\(verified.stdout)")
        try await f.cleanUp()
    }

    @Test func badSettingsStopWithOneLine() async throws {
        let result = try await runParley("parley-replay", ["audit", "chain"], environment: ["PARLEY_LOG_PARTITIONS": "zero"])
        #expect(result.status == 1)
        #expect(result.stderr == "parley-replay: bad configuration: PARLEY_LOG_PARTITIONS=zero is not a number in 1...1024\n")
        let unreachable = try await runParley(
            "parley-replay", ["audit", "chain"],
            environment: [
                "PARLEY_REDIS_CLUSTER": "", "PARLEY_REDIS_URL": "redis://127.0.0.1:\(TestStores.freePort())/0",
                "PARLEY_STORE_TIMEOUT_MS": "500",
            ])
        #expect(unreachable.status == 1 && unreachable.stderr.hasPrefix("parley-replay: cannot start:"), "\(unreachable.stderr)")
        #expect(unreachable.stderr.split(separator: "\n").count == 1, "\(unreachable.stderr)")
        let usage = try await runParley("parley-replay", ["rebuild", "--projection", "everything"])
        #expect(usage.status != 0 && usage.stderr.contains("everything"))
    }
}
