import Foundation
import NIOConcurrencyHelpers
import TestSupport
import Testing

/// `parley-replay` against a running server: the operator's repair happens while users chat.
@Suite("parley-replay while the server serves WebSocket clients")
struct ReplayWhileServingTests {
    @Test func aShadowRebuildRepairsCorruptedReadModelsWhileClientsKeepChatting() async throws {
        let s = try await ServerProcess()
        let replayEnvironment = ["PARLEY_NAMESPACE": s.namespace, "PARLEY_POSTGRES_SCHEMA": s.schema, "PARLEY_MONGO_COLLECTION": s.schema]
        let ann = try await s.register("rpann")
        let bob = try await s.register("rpbob")
        let created = try await s.request("POST", "/v1/rooms", token: ann.token, body: ["name": "Ops", "invite": [bob.id]])
        let roomId = try #require(created["room", "id"] as? String)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/join", token: bob.token).status == 200)

        let annWS = WSTestClient(port: s.port, token: ann.token)
        let bobWS = WSTestClient(port: s.port, token: bob.token)
        _ = try await annWS.next(type: "hello")
        _ = try await bobWS.next(type: "hello")
        func send(_ n: Int) async throws {
            try annWS.send(["type": "send", "roomId": roomId, "body": "message \(n)", "clientMsgId": "c\(n)"])
            let ack = try await annWS.next(type: "ack")
            #expect(ack["message", "seq"] as? Int == n)
        }
        for n in 1...20 { try await send(n) }
        _ = try await s.until("/v1/rooms/\(roomId)/messages?limit=50", token: bob.token) { ($0.json["messages"] as? [Any])?.count == 20 }
        // Both read models have caught up (the metadata projector runs apart from the messages one).
        _ = try await s.until("/v1/rooms/\(roomId)", token: bob.token) { $0["room", "lastSeq"] as? Int == 20 }

        // The read models are damaged behind the log's back.
        let postgres = TestStores.postgres()
        let mongo = try TestStores.mongo()
        try await postgres.query("UPDATE \(s.schema).rooms SET name = 'Hacked' WHERE id = $1", [roomId])
        _ = try await mongo.collection(s.schema).deleteMany(["roomId": .string(roomId), "seq": .int64(5)])
        let damaged = try await runParley("parley-replay", ["verify"], environment: replayEnvironment)
        #expect(damaged.status == 1 && damaged.stdout.contains("name is \"Hacked\""), "\(damaged.stdout)")
        #expect(try await s.request("GET", "/v1/rooms/\(roomId)", token: bob.token)["room", "name"] as? String == "Hacked")

        // Ann keeps sending while the shadow rebuild runs and swaps in.
        let done = NIOLockedValueBox(false)
        let rebuild = Task {
            defer { done.withLockedValue { $0 = true } }
            return try await runParley("parley-replay", ["rebuild", "--shadow", "--batch", "10"], environment: replayEnvironment)
        }
        var n = 20
        while n < 40 || !done.withLockedValue({ $0 }) {
            n += 1
            try await send(n)
            try await Task.sleep(for: .milliseconds(20))
        }
        let rebuilt = try await rebuild.value
        #expect(rebuilt.status == 0, "\(rebuilt.stderr)")
        for _ in 0..<5 {
            n += 1
            try await send(n)
        }

        // Bob got every message once, in order; the readers see the repaired models, with
        // every message sent before, during and after the swap.
        // His client keeps every frame it was sent; they are read once Ann is done, so a quiet pause (`verify` above
        // takes seconds on a loaded machine) is never taken for the end.
        var seqs: [Int] = []
        while seqs.last.map({ $0 < n }) ?? true, let frame = try? await bobWS.next(type: "event", seconds: 30) {
            if frame["event", "type"] as? String == "message.sent", let seq = frame["event", "seq"] as? Int { seqs.append(seq) }
        }
        #expect(seqs == Array(1...n))
        let room = try await s.until("/v1/rooms/\(roomId)", token: bob.token) { $0["room", "name"] as? String == "Ops" }
        #expect(room["room", "name"] as? String == "Ops")
        // Every page of the history: Ann sends for as long as the rebuild runs, which can pass a page of 100.
        var seqsRead: [Int] = []
        for _ in 0..<150 where seqsRead != Array(1...n) {
            seqsRead = try await everySeq(in: roomId, of: s, token: bob.token)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(seqsRead == Array(1...n))
        let verified = try await runParley("parley-replay", ["verify"], environment: replayEnvironment)
        #expect(verified.status == 0, "\(verified.stdout)")
        annWS.close()
        bobWS.close()
        await postgres.shutdown()
        await mongo.shutdown()
        try await s.cleanUp()
    }

    /// Seen before the pointer swap: on nx-27017 the second `rebuild --shadow` failed with `no such table`, and the live
    /// messages collection was gone (history empty, every message missing in `verify`).
    @Test func threeShadowRebuildsInARowKeepTheLiveReadModelAndVerifyAfterEach() async throws {
        let s = try await ServerProcess()
        let replayEnvironment = ["PARLEY_NAMESPACE": s.namespace, "PARLEY_POSTGRES_SCHEMA": s.schema, "PARLEY_MONGO_COLLECTION": s.schema]
        let ann = try await s.register("rrann")
        let bob = try await s.register("rrbob")
        let created = try await s.request("POST", "/v1/rooms", token: ann.token, body: ["name": "Thrice", "invite": [bob.id]])
        let roomId = try #require(created["room", "id"] as? String)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/join", token: bob.token).status == 200)
        let annWS = WSTestClient(port: s.port, token: ann.token)
        _ = try await annWS.next(type: "hello")
        var n = 0
        func send() async throws {
            n += 1
            try annWS.send(["type": "send", "roomId": roomId, "body": "round message \(n)", "clientMsgId": "r\(n)"])
            #expect(try await annWS.next(type: "ack")["message", "seq"] as? Int == n)
        }
        for _ in 0..<10 { try await send() }
        let mongo = try TestStores.mongo()

        for round in 1...3 {
            let done = NIOLockedValueBox(false)
            let rebuild = Task {
                defer { done.withLockedValue { $0 = true } }
                // On a loaded machine nx-27017 takes a few events a second in batches of 5: minutes, not seconds.
                return try await runParley(
                    "parley-replay", ["rebuild", "--shadow", "--batch", "5"], environment: replayEnvironment, timeout: 240)
            }
            // Ann keeps chatting while each rebuild runs and swaps in, faster than a loaded machine rebuilds at times.
            while !done.withLockedValue({ $0 }) {
                try await send()
                try await Task.sleep(for: .milliseconds(20))
            }
            let rebuilt = try await rebuild.value
            #expect(rebuilt.status == 0, "round \(round): \(rebuilt.stdout)\(rebuilt.stderr)")
            #expect(rebuilt.stdout.contains("readers now follow \(s.schema)_v\(round)"), "round \(round): \(rebuilt.stdout)")
            for _ in 0..<3 { try await send() }

            // Every message acknowledged so far is in the history Bob reads, and the read models match the log.
            let expected = n
            var seqs: [Int] = []
            for _ in 0..<150 where seqs.count != expected {
                seqs = try await everySeq(in: roomId, of: s, token: bob.token)
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(seqs == Array(1...expected), "round \(round): \(rebuilt.stdout)")
            let verified = try await runParley("parley-replay", ["verify"], environment: replayEnvironment)
            #expect(verified.status == 0, "round \(round): \(verified.stdout)")
            #expect(verified.stdout.contains("verify: OK"), "round \(round): \(verified.stdout)")
            // The collection it replaced is gone; the one readers follow holds every message.
            let replaced = round == 1 ? s.schema : "\(s.schema)_v\(round - 1)"
            #expect(try await mongo.collection(replaced).count() == 0, "round \(round): \(replaced) was not dropped")
            #expect(try await mongo.collection("\(s.schema)_v\(round)").count() == expected)
        }
        annWS.close()
        await mongo.shutdown()
        try await s.cleanUp()
    }

    /// The `seq` of every message in the room's history, oldest first, read a page of 100 at a time.
    private func everySeq(in roomId: String, of s: ServerProcess, token: String) async throws -> [Int] {
        var seqs: [Int] = []
        while true {
            let page = try await s.request("GET", "/v1/rooms/\(roomId)/messages?after=\(seqs.last ?? 0)&limit=100", token: token)
            let got = (page.json["messages"] as? [[String: Any]] ?? []).compactMap { $0["seq"] as? Int }
            seqs += got
            if got.count < 100 { return seqs }
        }
    }
}
