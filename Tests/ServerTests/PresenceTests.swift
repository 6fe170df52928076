import Foundation
import TestSupport
import Testing

/// Presence across two instances: a user comes online and goes offline for the users who share a room with them, and
/// only for them; an instance killed with SIGKILL takes its users offline once their marks expire; a user in many
/// shared rooms reaches each connection once.
@Suite("Presence across instances")
struct PresenceTests {
    /// The next presence frame about `userId` (other frames are skipped).
    static func presence(_ ws: WSTestClient, of userId: String, seconds: Double = 10) async throws -> [String: Any] {
        while true {
            let frame = try await ws.next(type: "presence", seconds: seconds)
            if frame["userId"] as? String == userId { return frame }
        }
    }

    @Test func onlineAndOfflineReachThoseWhoShareARoomOnEveryInstanceAndADeadInstanceTakesItsUsersOffline() async throws {
        let environment = ["PARLEY_PRESENCE_TTL_SECONDS": "4"]
        let a = try await ServerProcess(environment: environment)
        let b = try await ServerProcess(sharing: a, environment: environment)
        let ann = try await a.register("prann")
        let bob = try await a.register("prbob")
        let cat = try await a.register("prcat")
        let created = try await a.request("POST", "/v1/rooms", token: ann.token, body: ["name": "p", "invite": [bob.id]])
        let room = try #require(created["room", "id"] as? String)
        #expect(try await a.request("POST", "/v1/rooms/\(room)/join", token: bob.token).status == 200)
        let annWS = WSTestClient(port: a.port, token: ann.token)
        let catWS = WSTestClient(port: a.port, token: cat.token)
        for ws in [annWS, catWS] { _ = try await ws.next(type: "hello") }
        #expect(try await a.request("GET", "/v1/users/\(bob.id)/presence", token: ann.token)["status"] as? String == "offline")

        // Bob connects to the other instance: ann (who shares a room) is told, on hers.
        let bobWS = WSTestClient(port: b.port, token: bob.token)
        _ = try await bobWS.next(type: "hello")
        let online = try await Self.presence(annWS, of: bob.id)
        #expect(online["status"] as? String == "online" && online["lastSeenAt"] is String)
        let asked = try await b.request("GET", "/v1/users/\(bob.id)/presence", token: cat.token)
        #expect(asked.status == 200 && asked["status"] as? String == "online")
        // Ann came online before bob was connected; bob learns of ann by asking.
        #expect(try await b.request("GET", "/v1/users/\(ann.id)/presence", token: bob.token)["status"] as? String == "online")
        // A second connection of bob's changes nothing; closing one of two neither.
        let bobAgain = WSTestClient(port: a.port, token: bob.token)
        _ = try await bobAgain.next(type: "hello")
        bobAgain.close()
        bobWS.close()
        let offline = try await Self.presence(annWS, of: bob.id)
        #expect(offline["status"] as? String == "offline")
        let seen = try await a.request("GET", "/v1/users/\(bob.id)/presence", token: ann.token)
        #expect(seen["status"] as? String == "offline" && seen["lastSeenAt"] as? String == offline["lastSeenAt"] as? String)

        // Cat shares no room with bob: the only presence frames cat got are none about bob.
        try catWS.send(["type": "ping"])
        while true {
            let frame = try await catWS.next()
            if frame["type"] as? String == "pong" { break }
            #expect(frame["type"] as? String != "presence", "cat was sent \(frame)")
        }

        // Bob again, on b, which then dies without a word: ann sees him go offline once his mark expires.
        let bobLast = WSTestClient(port: b.port, token: bob.token)
        _ = try await bobLast.next(type: "hello")
        #expect(try await Self.presence(annWS, of: bob.id)["status"] as? String == "online")
        kill(b.process.processIdentifier, SIGKILL)
        let gone = try await Self.presence(annWS, of: bob.id, seconds: 30)
        #expect(gone["status"] as? String == "offline")
        #expect(try await a.request("GET", "/v1/users/\(bob.id)/presence", token: ann.token)["status"] as? String == "offline")
        #expect(try await a.request("GET", "/v1/users/nobody/presence", token: ann.token).error == "not_found")
        for ws in [annWS, catWS, bobLast] { ws.close() }
        await b.stop()
        try await a.cleanUp()
    }

    @Test func aUserInManySharedRoomsReachesEachConnectionOnce() async throws {
        let s = try await ServerProcess()
        let ann = try await s.register("prmany")
        let bob = try await s.register("prmanyb")
        for n in 0..<30 {
            let created = try await s.request("POST", "/v1/rooms", token: ann.token, body: ["name": "r\(n)", "invite": [bob.id]])
            let room = try #require(created["room", "id"] as? String)
            #expect(try await s.request("POST", "/v1/rooms/\(room)/join", token: bob.token).status == 200)
        }
        let annWS = WSTestClient(port: s.port, token: ann.token)
        _ = try await annWS.next(type: "hello")
        let bobWS = WSTestClient(port: s.port, token: bob.token)
        _ = try await bobWS.next(type: "hello")
        #expect(try await Self.presence(annWS, of: bob.id)["status"] as? String == "online")
        // One frame, not thirty: the next frame after a ping's pong would show a second one.
        try await Task.sleep(for: .seconds(1))
        try annWS.send(["type": "ping"])
        while true {
            let frame = try await annWS.next()
            if frame["type"] as? String == "pong" { break }
            #expect(!(frame["type"] as? String == "presence" && frame["userId"] as? String == bob.id), "a second frame: \(frame)")
        }
        annWS.close()
        bobWS.close()
        try await s.cleanUp()
    }
}
