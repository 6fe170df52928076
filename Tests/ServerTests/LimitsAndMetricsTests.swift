import Foundation
import TestSupport
import Testing

@Suite("Rate limits and metrics")
struct LimitsAndMetricsTests {
    @Test func sendsOverTheRateGet429OnHTTPAndAnErrorFrameOnWebSocket() async throws {
        let s = try await ServerProcess(environment: ["PARLEY_RATE_SENDS_PER_SECOND": "1", "PARLEY_RATE_SEND_BURST": "3"])
        let ann = try await s.register("rateann")
        let bob = try await s.register("ratebob")
        for n in 0..<3 {
            #expect(try await s.request("POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "m\(n)"]).status == 201)
        }
        // Past the burst; the bucket refills at 1/s, so on a loaded machine a send or two
        // more may pass first, but not ten.
        var limited = try await s.request("POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "too many"])
        for n in 0..<10 where limited.status == 201 {
            limited = try await s.request("POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "too many \(n)"])
        }
        #expect(limited.status == 429 && limited.error == "rate_limited")
        let wait = try #require((limited.json["error"] as? [String: Any])?["retryAfterMs"] as? Int)
        #expect(wait > 0 && wait <= 1000)
        #expect(limited.retryAfter == "1")
        // Bob's budget is his own.
        #expect(try await s.request("POST", "/v1/users/\(ann.id)/messages", token: bob.token, body: ["body": "fine"]).status == 201)
        let ws = WSTestClient(port: s.port, token: ann.token)
        _ = try await ws.next(type: "hello")
        // The bucket refills at 1/s while the test connects (seconds under load): five sends
        // back to back are over the burst of 3 whatever it has refilled.
        for n in 0..<5 { try ws.send(["type": "send", "toUserId": bob.id, "body": "still too many", "clientMsgId": "r\(n)"]) }
        let error = try await ws.next(type: "error")
        #expect(
            error["code"] as? String == "rate_limited" && (error["ref"] as? String)?.hasPrefix("r") == true
                && (error["retryAfterMs"] as? Int ?? 0) > 0)
        ws.close()
        try await s.cleanUp()
    }

    @Test func accountCreationIsLimitedPerAddress() async throws {
        let s = try await ServerProcess(environment: ["PARLEY_RATE_REGISTRATIONS_PER_MINUTE": "2"])
        _ = try await s.register("first1")
        _ = try await s.register("second2")
        let third = try await s.request("POST", "/v1/auth/register", body: ["username": "third3", "password": "long enough password"])
        #expect(third.status == 429 && third.error == "rate_limited")
        try await s.cleanUp()
    }

    @Test func metricsAreServedAsPrometheusText() async throws {
        let s = try await ServerProcess()
        let ann = try await s.register("metricann")
        let bob = try await s.register("metricbob")
        let ws = WSTestClient(port: s.port, token: bob.token)
        _ = try await ws.next(type: "hello")
        #expect(try await s.request("POST", "/v1/users/\(bob.id)/messages", token: ann.token, body: ["body": "count me"]).status == 201)
        _ = try await ws.next(type: "event")
        let metrics = try await s.until("/metrics", token: ann.token) { $0.text.contains("parley_projector_lag_events") }
        for name in [
            "hb_requests", "parley_ws_connections", "parley_ws_events_fanned_out", "parley_projector_lag_ms", "parley_append_latency",
        ] {
            #expect(metrics.text.contains(name), "no \(name) in /metrics")
        }
        ws.close()
        try await s.cleanUp()
    }
}
