import ArgumentParser
import Drivers
import EventLog
import Events
import Foundation

/// `parley-server seed`: writes a small chat (three users, a group with an invite, messages
/// with an edit, a reply and a deletion, a private message) through the real append path,
/// for trying Parley before the HTTP API and for looking at the log and read models.
struct Seed: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Append a small demo chat to the log (dev use).")

    func run() async throws {
        let logger = makeLogger()
        try await startOrExit(logger) {
            let environment = ProcessInfo.processInfo.environment
            // The same settings as the server, so the chat lands in the log it serves.
            let configuration = try ServerConfiguration(
                environment: environment.merging(["PARLEY_DEV_MODE": "1"]) { a, _ in a }, flags: try ServeOptions.parse([]))
            let redis = try RedisClient(configuration.stores.redis)
            let log = EventLog(redis: redis, partitions: configuration.logPartitions, namespace: configuration.namespace, logger: logger)
            try await log.checkPartitionCount(claim: true)
            let suffix = String(newID().prefix(4))
            var ids: [String: String] = [:]
            for name in ["alice", "bob", "carol"] {
                let id = newID()
                try await log.execute(
                    .register(
                        userId: id, username: "\(name)\(suffix)", displayName: name.capitalized,
                        passwordHash: "$2b$12$seeded-not-a-real-hash"), actor: id)
                ids[name] = id
            }
            let (alice, bob, carol) = (ids["alice"]!, ids["bob"]!, ids["carol"]!)
            let room = "r-" + newID()
            try await log.execute(.createGroup(roomId: room, name: "Seeded \(suffix)", invite: [bob, carol]), actor: alice)
            try await log.execute(.join(roomId: room), actor: bob)
            try await log.execute(
                .send(roomId: room, messageId: "m1-\(suffix)", body: "Welcome!", clientMsgId: "c1", replyTo: nil), actor: alice)
            try await log.execute(
                .send(roomId: room, messageId: "m2-\(suffix)", body: "Thanks, glad to be hre", clientMsgId: "c2", replyTo: "m1-\(suffix)"),
                actor: bob)
            try await log.execute(.edit(roomId: room, messageId: "m2-\(suffix)", body: "Thanks, glad to be here"), actor: bob)
            try await log.execute(
                .send(roomId: room, messageId: "m3-\(suffix)", body: "wrong room, sorry", clientMsgId: "c3", replyTo: nil), actor: bob)
            try await log.execute(.delete(roomId: room, messageId: "m3-\(suffix)"), actor: alice)
            try await log.execute(.markRead(roomId: room, seq: 2), actor: alice)
            let direct = try await log.execute(
                .sendDirect(to: carol, messageId: "d1-\(suffix)", body: "Psst, join us!", clientMsgId: "c4"), actor: alice)
            log.shutdown()
            await redis.shutdown()
            return {
                print("seeded: users alice\(suffix)=\(alice) bob\(suffix)=\(bob) carol\(suffix)=\(carol)")
                print("seeded: group \(room), direct \(direct.events.first?.event.roomId ?? "")")
            }
        }
    }
}
