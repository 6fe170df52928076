import Foundation
import TestSupport
import Testing

@testable import Drivers

/// Slots, routing and redirections: the pure parts always, the rest against the local
/// Redis Cluster of `scripts/services up --cluster` when the tests run on it.
@Suite("Redis Cluster routing")
struct RedisClusterTests {
    @Test func slotsAreTheOnesRedisComputes() {
        // `CLUSTER KEYSLOT` answers (STORES.md, and the Redis Cluster specification's own examples).
        #expect(RedisSlot.of("{0}") == 13907)
        #expect(RedisSlot.of("{1}") == 9842)
        #expect(RedisSlot.of("{3}") == 1584)
        #expect(RedisSlot.of("foo") == 12182)
        #expect(RedisSlot.of("{user1000}.following") == RedisSlot.of("user1000"))
        #expect(RedisSlot.of("foo{}{bar}") != RedisSlot.of("bar"))  // an empty tag: the whole key is hashed
        #expect(RedisSlot.of("foo{{bar}}zap") == RedisSlot.of("{bar"))
        #expect(RedisSlot.of("parley:log:{7}") == RedisSlot.of("parley:g:{7}:members:r1"))
    }

    @Test func commandsAreRoutedByTheKeyTheyName() {
        #expect(RedisSlot.routingKey(of: ["EVALSHA", "abc", "2", "k1", "k2", "arg"]) == "k1")
        #expect(RedisSlot.routingKey(of: ["EVALSHA", "abc", "0", "arg"]) == nil)
        #expect(RedisSlot.routingKey(of: ["XREADGROUP", "GROUP", "g", "c", "COUNT", "5", "BLOCK", "9", "STREAMS", "s", ">"]) == "s")
        #expect(RedisSlot.routingKey(of: ["XINFO", "GROUPS", "s"]) == "s")
        #expect(RedisSlot.routingKey(of: ["PUBLISH", "channel", "m"]) == nil)
        #expect(RedisSlot.routingKey(of: ["HSET", "h", "f", "v"]) == "h")
        #expect(RedisSlot.onlyReads(["XRANGE", "s", "-", "+"]) && !RedisSlot.onlyReads(["EVALSHA", "x", "1", "k"]))
        let units = RedisCluster.units([
            ["GET", "a"], ["MULTI"], ["SMEMBERS", "b"], ["XREVRANGE", "b", "+", "-"], ["EXEC"], ["GET", "c"],
        ])
        #expect(units.map(\.commands) == [[0], [1, 2, 3, 4], [5]])
        #expect(units.map(\.key) == ["a", "b", "c"])
        #expect(RedisCluster.Redirection(.error("MOVED 3999 127.0.0.1:7001")) == .moved(slot: 3999, node: "127.0.0.1:7001"))
        #expect(RedisCluster.Redirection(.error("ASK 3999 127.0.0.1:7002")) == .ask(node: "127.0.0.1:7002"))
        #expect(RedisCluster.Redirection(.error("CLUSTERDOWN The cluster is down")) == .later)
        #expect(RedisCluster.Redirection(.error("ERR wrong number of arguments")) == nil)
    }

    @Test func theSlotMapIsReadFromClusterSlots() throws {
        let reply = RedisValue.array([
            .array([
                .integer(0), .integer(5460), .array([.string("127.0.0.1"), .integer(7000), .string("a")]),
                .array([.string("127.0.0.1"), .integer(7004), .string("d")]),
            ]),
            .array([.integer(5461), .integer(16383), .array([.string(""), .integer(7001), .string("b")])]),
        ])
        let map = try RedisCluster.slotMap(reply, askedNode: "10.0.0.9:7001")
        #expect(map.owners[0] == "127.0.0.1:7000" && map.owners[5460] == "127.0.0.1:7000")
        #expect(map.owners[5461] == "10.0.0.9:7001" && map.owners[16383] == "10.0.0.9:7001")
        #expect(map.primaries == ["127.0.0.1:7000", "10.0.0.9:7001"])
        #expect(map.nodes.contains("127.0.0.1:7004"))
    }

    // MARK: - Against the cluster

    static let onCluster = !TestStores.redisCluster.isEmpty

    /// A client of one node, which answers MOVED/ASK as they are instead of following them.
    static func node(_ address: String) throws -> RedisClient {
        try RedisClient(.init(url: "redis://\(address)/0", maxConnections: 2))
    }

    @Test(.enabled(if: onCluster)) func everyKeyLandsOnItsSlotsPrimaryThroughCommandsAndPipelines() async throws {
        let redis = try TestStores.redis()
        let prefix = TestStores.unique("t:route")
        let keys = (0..<300).map { "\(prefix):\($0)" }
        for reply in try await redis.pipeline(keys.map { ["SET", $0, "v-" + $0] }) { #expect(reply == .status("OK")) }
        #expect(try await redis.pipeline(keys.map { ["GET", $0] }) == keys.map { .string("v-" + $0) })
        #expect(try await redis.command("GET", keys[7]) == .string("v-" + keys[7]))
        // Each key is where Redis itself puts it, and the keys reached every primary.
        let primaries = try await redis.cluster!.primaries()
        #expect(primaries.count == 3)
        var perPrimary: [String: Int] = [:]
        for key in keys.prefix(60) {
            #expect(try await redis.command("CLUSTER", "KEYSLOT", key).int == Int64(RedisSlot.of(key)))
            let owner = redis.cluster!.owner(ofSlot: RedisSlot.of(key))!
            let direct = try Self.node(owner)
            #expect(try await direct.command("GET", key) == .string("v-" + key))
            await direct.shutdown()
            perPrimary[owner, default: 0] += 1
        }
        #expect(perPrimary.count == 3)
        #expect(try await redis.keys(matching: "\(prefix):*").count == 300)
        #expect(try await redis.deleteKeys(matching: "\(prefix):*") == 300)
        await redis.shutdown()
    }

    @Test(.enabled(if: onCluster)) func aScriptOverTwoSlotsIsRefusedWithCrossslot() async throws {
        let redis = try TestStores.redis()
        let script = RedisScript("return redis.call('SET', KEYS[1], '1') and redis.call('SET', KEYS[2], '1')")
        let reply = try await script.run(redis, keys: ["{a}x", "{b}x"], arguments: [])
        #expect(reply.description.contains("CROSSSLOT"), "\(reply)")
        #expect(try await redis.command("EXISTS", "{a}x").int == 0)
        await redis.shutdown()
    }

    /// Moves `slot` from `source` to `target` the way `redis-cli --cluster reshard` does, in two steps so that the
    /// test can look between them.
    struct Migration {
        let slot: Int
        let source: String
        let target: String
        let primaries: [String]

        func id(_ node: String) async throws -> String {
            let client = try RedisClusterTests.node(node)
            defer { Task { await client.shutdown() } }
            return try await client.command("CLUSTER", "MYID").string!
        }

        func begin() async throws {
            let (from, to) = (try RedisClusterTests.node(source), try RedisClusterTests.node(target))
            try await to.command("CLUSTER", "SETSLOT", String(slot), "IMPORTING", try await id(source))
            try await from.command("CLUSTER", "SETSLOT", String(slot), "MIGRATING", try await id(target))
            await from.shutdown()
            await to.shutdown()
        }

        func move(_ key: String) async throws {
            let from = try RedisClusterTests.node(source)
            let port = target.split(separator: ":").last!
            try await from.command("MIGRATE", "127.0.0.1", String(port), "", "0", "5000", "KEYS", key)
            await from.shutdown()
        }

        func finish() async throws {
            let owner = try await id(target)
            for node in primaries {
                let client = try RedisClusterTests.node(node)
                try await client.command("CLUSTER", "SETSLOT", String(slot), "NODE", owner)
                await client.shutdown()
            }
        }
    }

    @Test(.enabled(if: onCluster)) func aSlotBeingMigratedIsFollowedThroughAskThenMoved() async throws {
        let redis = try TestStores.redis()
        let tag = TestStores.unique("mig")
        let (old, new) = ("{\(tag)}old", "{\(tag)}new")
        let slot = RedisSlot.of(old)
        try await redis.command("SET", old, "1")
        let primaries = try await redis.cluster!.primaries()
        let source = redis.cluster!.owner(ofSlot: slot)!
        let target = primaries.first { $0 != source }!
        let forth = Migration(slot: slot, source: source, target: target, primaries: primaries)
        try await forth.begin()
        // A key the source does not have is answered by ASK: read and written on the target.
        #expect(try await redis.command("GET", new) == .null)
        try await redis.command("SET", new, "2")
        let onTarget = try Self.node(target)
        #expect(try await onTarget.pipeline([["ASKING"], ["GET", new]])[1] == .string("2"))
        // A key still on the source is served there; once moved, the source sends the client on with ASK.
        #expect(try await redis.command("GET", old) == .string("1"))
        try await forth.move(old)
        #expect(try await redis.command("GET", old) == .string("1"))
        // The slot is the target's: the client's map still names the source, which answers MOVED.
        try await forth.finish()
        #expect(redis.cluster!.owner(ofSlot: slot) == source)
        #expect(try await redis.pipeline([["GET", old], ["GET", new]]) == [.string("1"), .string("2")])
        #expect(redis.cluster!.owner(ofSlot: slot) == target)
        #expect(try await onTarget.command("GET", old) == .string("1"))

        // And back, so the cluster is as the other tests expect it.
        let back = Migration(slot: slot, source: target, target: source, primaries: primaries)
        try await back.begin()
        try await back.move(old)
        try await back.move(new)
        try await back.finish()
        #expect(try await redis.command("GET", new) == .string("2"))
        try await redis.command("DEL", old, new)
        await onTarget.shutdown()
        await redis.shutdown()
    }
}
