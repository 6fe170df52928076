import Drivers
import Foundation
import TestSupport
import Testing

@Suite("Redis driver against a real redis-server")
struct RedisTests {
    @Test func commandsRoundTripTypedReplies() async throws {
        let redis = try TestStores.redis()
        // One hash tag: on a cluster, MGET and DEL of several keys need them in one slot.
        let key = "{\(TestStores.unique("t:kv"))}"
        #expect(try await redis.command("SET", key, "héllo wörld") == .status("OK"))
        #expect(try await redis.command("GET", key) == .string("héllo wörld"))
        #expect(try await redis.command("INCRBY", key + ":n", "41") == .integer(41))
        #expect(try await redis.command("GET", key + ":missing") == .null)
        #expect(try await redis.command("MGET", key, key + ":missing") == .array([.string("héllo wörld"), .null]))
        await #expect(throws: DriverError.self) { try await redis.command("INCR", key) }  // not an integer
        try await redis.command("DEL", key, key + ":n")
        await redis.shutdown()
    }

    @Test func streamRoundTripThroughConsumerGroupWithAckAndAutoclaim() async throws {
        let redis = try TestStores.redis()
        let stream = TestStores.unique("t:stream")
        try await redis.xgroupCreate(stream, group: "g", startID: "0")
        try await redis.xgroupCreate(stream, group: "g", startID: "0")  // existing group: no error
        var ids: [String] = []
        for i in 0..<5 { ids.append(try await redis.xadd(stream, fields: [("event", "{\"n\":\(i)}")])) }

        let range = try await redis.xrange(stream)
        #expect(range.map(\.id) == ids)
        #expect(range[2]["event"] == "{\"n\":2}")

        // Consumer a reads three and acks only the first; then "dies".
        let first = try await redis.xreadgroup(group: "g", consumer: "a", [(stream, ">")], count: 3)
        #expect(first.first?.entries.map(\.id) == Array(ids[0..<3]))
        #expect(try await redis.xack(stream, group: "g", ids: [ids[0]]) == 1)

        // Consumer b gets the remaining new ones, then claims a's pending entries.
        let rest = try await redis.xreadgroup(group: "g", consumer: "b", [(stream, ">")], count: 10)
        #expect(rest.first?.entries.map(\.id) == Array(ids[3...]))
        #expect(try await redis.xack(stream, group: "g", ids: Array(ids[3...])) == 2)
        try await Task.sleep(for: .milliseconds(60))
        let claimed = try await redis.xautoclaim(stream, group: "g", consumer: "b", minIdleMs: 50)
        #expect(claimed.entries.map(\.id) == [ids[1], ids[2]])
        #expect(claimed.entries.map { $0["event"] } == ["{\"n\":1}", "{\"n\":2}"])
        #expect(try await redis.xack(stream, group: "g", ids: [ids[1], ids[2]]) == 2)

        let groups = try await redis.xinfoGroups(stream)
        #expect(groups.first?["pending"]?.int == 0)
        let info = try await redis.xinfoStream(stream)
        #expect(info["length"]?.int == 5)
        #expect(info["last-generated-id"]?.string == ids.last)
        try await redis.command("DEL", stream)
        await redis.shutdown()
    }

    @Test func pipelinedBatchOfTenThousandXadds() async throws {
        let redis = try TestStores.redis()
        let stream = TestStores.unique("t:pipe")
        let commands = (0..<10_000).map { RedisClient.xaddArguments(stream, fields: [("event", "e\($0)")]) }
        let replies = try await redis.pipeline(commands)
        #expect(replies.count == 10_000)
        #expect(replies.allSatisfy { $0.string?.contains("-") == true })
        #expect(try await redis.command("XLEN", stream) == .integer(10_000))
        let last = try await redis.xrange(stream, from: "+", to: "-", count: 1)
        #expect(last.isEmpty)  // + .. - is an empty range: order matters
        let tail = try await redis.command(["XREVRANGE", stream, "+", "-", "COUNT", "1"])
        #expect(tail.array?.first?.array?[0].string == replies.last?.string)
        try await redis.command("DEL", stream)
        await redis.shutdown()
    }

    @Test func blockingReadWakesOnNewEntryAndTimesOutEmpty() async throws {
        let redis = try TestStores.redis()
        let stream = TestStores.unique("t:block")
        let empty = try await redis.xread([(stream, "$")], blockMs: 100)
        #expect(empty.isEmpty)
        async let woken = redis.xread([(stream, "$")], count: 10, blockMs: 5000)
        try await Task.sleep(for: .milliseconds(200))
        let id = try await redis.xadd(stream, fields: [("event", "x")])
        let result = try await woken
        #expect(result.first?.entries.map(\.id) == [id])
        try await redis.command("DEL", stream)
        await redis.shutdown()
    }

    @Test func scriptsRunWithEvalshaAndReloadAfterFlush() async throws {
        let redis = try TestStores.redis(maxConnections: 1)
        let key = TestStores.unique("t:lua")
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        #expect(try await script.run(redis, keys: [key], arguments: ["2"]) == .integer(2))
        try await redis.command("SCRIPT", "FLUSH")  // as after a restart
        #expect(try await script.run(redis, keys: [key], arguments: ["3"]) == .integer(5))
        let failing = RedisScript("return redis.error_reply('not_a_member')")
        #expect(try await failing.run(redis, keys: [], arguments: []) == .error("ERR not_a_member"))
        try await redis.command("DEL", key)
        await redis.shutdown()
    }

    @Test func callersWaitForAFreeConnectionThenTimeOut() async throws {
        let redis = try RedisClient(.init(url: TestStores.redisURL, maxConnections: 1, acquireTimeout: .milliseconds(300)))
        let stream = TestStores.unique("t:busy")
        async let blocked = redis.xread([(stream, "$")], blockMs: 10_000)
        // Time for the XREAD to take the only connection, also on a loaded machine (200 ms, then 1.5 s, were seen too
        // short in CI).
        try await Task.sleep(for: .milliseconds(3000))
        do {
            try await redis.command("PING")
            Issue.record("PING should have timed out waiting for the only connection")
        } catch let error as DriverError {
            #expect(error.code == .timeout)
        }
        _ = try await blocked
        #expect(try await redis.command("PING") == .status("PONG"))  // the connection is back
        await redis.shutdown()
    }

    @Test func wrongPasswordAndUnreachableServerAreClearErrors() async throws {
        let server = try PrivateServer("redis-auth") { port, dir in
            (
                "/usr/bin/redis-server",
                [
                    "--port", "\(port)", "--bind", "127.0.0.1", "--requirepass", "right-password",
                    "--save", "", "--appendonly", "no", "--dir", dir.path,
                ], nil
            )
        }
        try await server.start()
        let wrong = try RedisClient(.init(url: "redis://:wrong@127.0.0.1:\(server.port)/0"))
        do {
            try await wrong.ping()
            Issue.record("a wrong password was accepted")
        } catch let error as DriverError {
            #expect(error.code == .authentication)
            #expect(error.description.contains("AUTH"))
        }
        let right = try RedisClient(.init(url: "redis://:right-password@127.0.0.1:\(server.port)/0"))
        try await right.ping()

        let nowhere = try RedisClient(.init(url: "redis://127.0.0.1:\(TestStores.freePort())/0"))
        do {
            try await nowhere.ping()
            Issue.record("an unreachable server answered")
        } catch let error as DriverError {
            #expect(error.code == .unavailable)
            #expect(error.message.contains("Connection refused"))
        }
        #expect(throws: DriverError.self) { try RedisClient(.init(url: "http://127.0.0.1:6379")) }
        await wrong.shutdown()
        await right.shutdown()
        await nowhere.shutdown()
    }

    @Test func serverStoppedMidUseGivesClearErrorThenRecovers() async throws {
        let server = try PrivateServer("redis-stop") { port, dir in
            (
                "/usr/bin/redis-server",
                [
                    "--port", "\(port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--dir", dir.path,
                ], nil
            )
        }
        try await server.start()
        let redis = try RedisClient(.init(url: "redis://127.0.0.1:\(server.port)/0", maxConnections: 4, connectTimeout: .seconds(1)))
        // Open several pooled connections, then kill the server under them.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 { group.addTask { try await redis.command("SET", "k", "v") } }
            try await group.waitForAll()
        }
        await server.kill()
        do {
            try await redis.command("GET", "k")
            Issue.record("a command succeeded with the server stopped")
        } catch let error as DriverError {
            #expect(error.code == .unavailable)
            #expect(error.store == .redis)
        }
        // While it is down: fast, clear errors (no hang).
        await #expect(throws: DriverError.self) { try await redis.command("PING") }

        try await server.start()
        let reply = try await eventually { try await redis.command("PING") }
        #expect(reply == .status("PONG"))
        await redis.shutdown()
    }
}
