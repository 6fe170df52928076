import Foundation
import TestSupport
import Testing

/// An entry of the log that cannot be read (written past the rules, or by a newer version)
/// must not stop live delivery.
@Suite("A poison entry in the log")
struct PoisonEntryTests {
    @Test func liveDeliveryGoesOnPastAnEntryThatCannotBeReadAndMetricsCountIt() async throws {
        let s = try await ServerProcess()
        let ann = try await s.register("poisonann")
        let bob = try await s.register("poisonbob")
        let bobWS = WSTestClient(port: s.port, token: bob.token)
        _ = try await bobWS.next(type: "hello")
        #expect(try await s.request("POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "before"]).status == 201)
        while try await bobWS.next(type: "event")["event", "data", "body"] as? String != "before" {}
        let redis = try TestStores.redis()
        _ = try await redis.xadd(s.stream(), fields: [("event", #"{"type":"from.the.future","v":99}"#)])
        #expect(try await s.request("POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "after"]).status == 201)
        // On 69baa50 the hub retried the bad entry every second and bob never heard "after".
        #expect(try await bobWS.next(type: "event", seconds: 10)["event", "data", "body"] as? String == "after")
        let metrics = try await s.until("/metrics", token: ann.token) { $0.text.contains("parley_ws_unreadable_entries") }
        #expect(metrics.text.contains("parley_ws_unreadable_entries 1"))
        bobWS.close()
        await redis.shutdown()
        try await s.cleanUp()
    }
}
