import Foundation
import TestSupport
import Testing

/// A client reconnecting with a `since` older than anything the stream still holds: the
/// server's archiver role has copied those events to PostgreSQL and trimmed them from
/// Redis, and the hub replays them from the archive, then from the stream.
@Suite("WebSocket recovery across the archive")
struct ArchiveRecoveryTests {
    struct NotYet: Error { let length: Int64 }

    @Test func aSinceFromBeforeTheTrimIsReplayedFromTheArchiveThenTheStream() async throws {
        // Entries leave the stream as soon as they are archived and every projector has them.
        let s = try await ServerProcess(environment: ["PARLEY_LOG_HOT_SECONDS": "0"])
        let ann = try await s.register("archann")
        let bob = try await s.register("archbob")
        let created = try await s.request("POST", "/v1/rooms", token: ann.token, body: ["name": "archive", "invite": [bob.id]])
        let roomId = try #require(created["room", "id"] as? String)
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/join", token: bob.token).status == 200)
        let first = WSTestClient(port: s.port, token: bob.token)
        _ = try await first.next(type: "hello")
        #expect(try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "before"]).status == 201)
        let position = try #require(try await first.next(type: "event")["position"] as? String)
        first.close()
        for n in 1...60 {
            #expect(
                try await s.request("POST", "/v1/rooms/\(roomId)/messages", token: ann.token, body: ["body": "missed \(n)"]).status == 201)
        }
        // The archiver trims every 10 s: wait until the stream has dropped what bob last saw and most of what he missed.
        let redis = try TestStores.redis()
        _ = try await eventually(seconds: 40) {
            let length = try await redis.command("XLEN", s.stream()).int ?? 0
            guard length < 10 else { throw NotYet(length: length) }
            return length
        }
        let again = WSTestClient(port: s.port, token: bob.token, since: position)
        let hello = try await again.next(type: "hello")
        #expect(hello["recovered"] as? Bool == true)
        var bodies: [String] = []
        while bodies.count < 60 {
            let frame = try await again.next(type: "event")
            if let body = frame["event", "data", "body"] as? String { bodies.append(body) }
        }
        #expect(bodies == (1...60).map { "missed \($0)" })
        // History and the metrics say the same.
        let history = try await s.request("GET", "/v1/rooms/\(roomId)/messages?limit=100", token: bob.token)
        #expect((history["messages"] as? [[String: Any]])?.count == 61)
        let metrics = try await s.request("GET", "/metrics", token: ann.token)
        #expect(metrics.text.contains("parley_archive_trimmed"), "\(metrics.text.prefix(300))")
        again.close()
        await redis.shutdown()
        try await s.cleanUp()
    }
}
