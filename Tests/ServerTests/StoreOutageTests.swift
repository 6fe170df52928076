import Foundation
import TestSupport
import Testing

/// What users see while the log's store is down, and after it is back.
@Suite("A Redis outage under a running server")
struct StoreOutageTests {
    @Test func commandsGet503WhileRedisIsDownAndServiceResumesByItselfWithNothingLost() async throws {
        // A Redis of the test's own, fsyncing every append, that the test stops and starts.
        let redis = try PrivateServer("redis-outage") { port, dir in
            (
                "/usr/bin/redis-server",
                [
                    "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                    "--appendfsync", "always", "--dir", dir.path,
                ], nil
            )
        }
        try await redis.start()
        let s = try await ServerProcess(environment: [
            "PARLEY_REDIS_CLUSTER": "", "PARLEY_REDIS_URL": "redis://127.0.0.1:\(redis.port)/0", "PARLEY_STORE_TIMEOUT_MS": "500",
        ])
        let ann = try await s.register("outann")
        let bob = try await s.register("outbob")
        let before = try await s.request(
            "POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "before", "clientMsgId": "b1"])
        #expect(before.status == 201)
        let roomId = try #require(before["room", "id"] as? String)
        let bobWS = WSTestClient(port: s.port, token: bob.token)
        _ = try await bobWS.next(type: "hello")

        await redis.kill()
        // A command answers 503 service_unavailable: no hang (a 15 s bound), no 500.
        let down = try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "while down"], timeout: 15)
        #expect(down.status == 503 && down.error == "service_unavailable", "\(down.text)")
        #expect(try await s.request("GET", "/readyz", timeout: 15).status == 503)
        // A WebSocket send gets an error frame, and the connection stays open.
        try bobWS.send(["type": "send", "roomId": roomId, "body": "ws while down", "clientMsgId": "w1"])
        let error = try await bobWS.next(type: "error", seconds: 15)
        #expect(error["code"] as? String == "service_unavailable" && error["ref"] as? String == "w1")
        // A new WebSocket cannot be authenticated (the user is looked up in Redis): it is told
        // so and closed with 1013, try again later, not as unauthorized.
        let (refusal, closeCode) = try await RawWebSocket.refusal(port: s.port, path: "/v1/ws?token=\(ann.token)")
        #expect(refusal["type"] as? String == "error" && refusal["code"] as? String == "service_unavailable", "\(refusal)")
        #expect(closeCode == 1013)

        // Redis comes back (from its AOF): service resumes with no restart of the server.
        try await redis.start()
        let after = try await eventually(seconds: 30) {
            let result = try await s.request(
                "POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "after", "clientMsgId": "a1"], timeout: 15)
            guard result.status == 201 else { throw URLError(.badServerResponse) }
            return result
        }
        #expect(after["message", "seq"] as? Int == 2)  // the acknowledged "before" is still seq 1; nothing refused was appended
        var bodies: [String] = []
        while !bodies.contains("after") {
            let frame = try await bobWS.next(type: "event", seconds: 20)
            if let body = frame["event", "data", "body"] as? String { bodies.append(body) }
        }
        #expect(bodies == ["after"])
        let history = try await s.until("/v1/rooms/\(roomId)/messages", token: bob.token) { ($0.json["messages"] as? [Any])?.count == 2 }
        #expect((history.json["messages"] as? [[String: Any]])?.compactMap { $0["body"] as? String } == ["after", "before"])
        bobWS.close()
        try await s.cleanUp()
        await redis.kill()
    }
}

/// A Redis that is up but refuses writes: full under `maxmemory` with `noeviction` (the
/// setting a log needs), or a replica after a failover. Users are told to come back, the
/// operator sees a metric, and nothing already stored is lost.
@Suite("A Redis that refuses writes")
struct RedisRefusalTests {
    @Test func aFullRedisGives503AndACountedRefusalAndServiceResumesWhenThereIsRoom() async throws {
        let redis = try PrivateServer("redis-full") { port, dir in
            (
                "/usr/bin/redis-server",
                [
                    "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir.path,
                    "--maxmemory-policy", "noeviction",
                ], nil
            )
        }
        try await redis.start()
        let s = try await ServerProcess(environment: ["PARLEY_REDIS_CLUSTER": "", "PARLEY_REDIS_URL": "redis://127.0.0.1:\(redis.port)/0"])
        let ann = try await s.register("fullann")
        let bob = try await s.register("fullbob")
        let before = try await s.request("POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "before"])
        #expect(before.status == 201)
        let roomId = try #require(before["room", "id"] as? String)
        let bobWS = WSTestClient(port: s.port, token: bob.token)
        _ = try await bobWS.next(type: "hello")

        // Redis is full: its memory limit is set below what it holds.
        let cli = "/usr/bin/redis-cli"
        _ = try await runProcess(cli, ["-p", "\(redis.port)", "CONFIG", "SET", "maxmemory", "1"])
        let full = try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "while full"])
        #expect(full.status == 503 && full.error == "service_unavailable", "\(full.text)")
        try bobWS.send(["type": "send", "roomId": roomId, "body": "ws while full", "clientMsgId": "w1"])
        let error = try await bobWS.next(type: "error", seconds: 15)
        #expect(error["code"] as? String == "service_unavailable" && error["ref"] as? String == "w1", "\(error)")
        let metrics = try await s.request("GET", "/metrics", token: ann.token)
        #expect(metrics.text.contains("parley_redis_refusals{reason=\"OOM\"} 2"), "\(metrics.text.prefix(3000))")

        _ = try await runProcess(cli, ["-p", "\(redis.port)", "CONFIG", "SET", "maxmemory", "0"])
        let after = try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "after"])
        #expect(after.status == 201 && after["message", "seq"] as? Int == 2, "\(after.text)")
        let history = try await s.until("/v1/rooms/\(roomId)/messages", token: bob.token) { ($0.json["messages"] as? [Any])?.count == 2 }
        #expect((history.json["messages"] as? [[String: Any]])?.compactMap { $0["body"] as? String } == ["after", "before"])
        bobWS.close()
        try await s.cleanUp()
        await redis.kill()
    }
}

/// The messages read model's store going down: history is unavailable, the chat is not.
@Suite("A MongoDB outage under a running server")
struct MongoOutageTests {
    @Test func historyAnswers503SendsGoOnAndTheProjectorCatchesUpWithNothingLost() async throws {
        let mongo = try PrivateServer.mongo("mongo-outage")
        try await mongo.start()
        let s = try await ServerProcess(environment: [
            "PARLEY_MONGO_URI": "mongodb://127.0.0.1:\(mongo.port)/parley", "PARLEY_STORE_TIMEOUT_MS": "500",
        ])
        let ann = try await s.register("mgann")
        let bob = try await s.register("mgbob")
        let first = try await s.request("POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "one"])
        let roomId = try #require(first["room", "id"] as? String)
        _ = try await s.until("/v1/rooms/\(roomId)/messages", token: bob.token) { ($0.json["messages"] as? [Any])?.count == 1 }

        await mongo.kill()
        // History lives in MongoDB: 503, quickly. The chat itself lives in the log: sends go on.
        let history = try await s.request("GET", "/v1/rooms/\(roomId)/messages", token: bob.token, timeout: 15)
        #expect(history.status == 503 && history.error == "service_unavailable", "\(history.text)")
        #expect(try await s.request("GET", "/readyz", timeout: 15).status == 503)
        let second = try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: bob.token, body: ["body": "two"], timeout: 15)
        #expect(second.status == 201 && second["message", "seq"] as? Int == 2)

        // Back: the messages projector catches up by itself; both messages are there, once.
        try await mongo.start()
        let caughtUp = try await eventually(seconds: 30) {
            let result = try await s.request("GET", "/v1/rooms/\(roomId)/messages", token: bob.token, timeout: 15)
            guard (result.json["messages"] as? [Any])?.count == 2 else { throw URLError(.resourceUnavailable) }
            return result
        }
        #expect((caughtUp.json["messages"] as? [[String: Any]])?.compactMap { $0["body"] as? String } == ["two", "one"])
        try await s.cleanUp()
        await mongo.kill()
    }
}

/// The metadata read model's store going down: room lists are unavailable, the chat is not.
@Suite("A PostgreSQL outage under a running server")
struct PostgresOutageTests {
    @Test func roomListsAnswer503SendsGoOnAndTheProjectorCatchesUp() async throws {
        let pg = try await PrivateServer.postgres("pg-outage")
        // The server migrates its own database at start (the cluster's default one).
        let s = try await ServerProcess(environment: [
            "PARLEY_POSTGRES_URL": "postgresql://postgres@127.0.0.1:\(pg.port)/postgres", "PARLEY_STORE_TIMEOUT_MS": "500",
        ])
        let ann = try await s.register("pgann")
        let bob = try await s.register("pgbob")
        let first = try await s.request("POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "one"])
        let roomId = try #require(first["room", "id"] as? String)
        _ = try await s.until("/v1/rooms", token: bob.token) { ($0.json["rooms"] as? [Any])?.count == 1 }

        await pg.kill()
        // Room lists live in PostgreSQL: 503, quickly. Sends are checked against the log.
        let rooms = try await s.request("GET", "/v1/rooms", token: bob.token, timeout: 15)
        #expect(rooms.status == 503 && rooms.error == "service_unavailable", "\(rooms.text)")
        let second = try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: bob.token, body: ["body": "two"], timeout: 15)
        #expect(second.status == 201 && second["message", "seq"] as? Int == 2)

        // Back: the metadata projector catches up; Ann's list shows the last message and
        // one unread.
        try await pg.start()
        let caughtUp = try await eventually(seconds: 30) {
            let result = try await s.request("GET", "/v1/rooms", token: ann.token, timeout: 15)
            guard let room = (result.json["rooms"] as? [[String: Any]])?.first,
                (room["lastMessage"] as? [String: Any])?["body"] as? String == "two"
            else { throw URLError(.resourceUnavailable) }
            return room
        }
        #expect(caughtUp["unreadCount"] as? Int == 1)
        await s.stop()
        await pg.kill()
    }
}
