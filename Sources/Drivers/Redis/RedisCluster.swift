import Foundation
import NIOConcurrencyHelpers

/// The client side of a Redis Cluster: which primary serves each of the 16,384 slots
/// (learnt with `CLUSTER SLOTS` from any node that answers), one pool of connections per
/// node, and the routing of each command to the primary of its key's slot.
///
/// A reply `MOVED <slot> <node>` updates that slot at once and the whole map soon after,
/// then the command is sent to its new owner; `ASK <slot> <node>` (a slot being migrated)
/// sends it once to `<node>` after `ASKING`. A refusal for the cluster's state
/// (`CLUSTERDOWN`, `TRYAGAIN`, `LOADING`, `MASTERDOWN`) and a node that cannot be reached
/// (a primary that died, before its replica is promoted) are retried with the map read
/// again, for at most `failoverWait`. A command whose connection broke after it was sent
/// is retried only when it only reads: a script may have run, and running it twice could
/// append twice.
final class RedisCluster: Sendable {
    private struct State {
        /// The node (`host:port`) serving each slot; nil until learnt.
        var owners: [String?] = Array(repeating: nil, count: RedisSlot.count)
        /// The primaries serving slots, in slot order.
        var primaries: [String] = []
        /// Every node seen (seeds first): where the map is asked for.
        var known: [String]
        var pools: [String: BlockingConnections<RedisConnection>] = [:]
        var refreshing: Task<Void, any Error>?
        var closed = false
    }

    /// What a reply asks of the router.
    enum Redirection: Equatable {
        case moved(slot: Int, node: String)
        case ask(node: String)
        case later

        init?(_ reply: RedisValue) {
            guard case .error(let text) = reply else { return nil }
            let words = text.split(separator: " ")
            switch words.first {
            case "MOVED" where words.count == 3:
                guard let slot = Int(words[1]) else { return nil }
                self = .moved(slot: slot, node: String(words[2]))
            case "ASK" where words.count == 3:
                self = .ask(node: String(words[2]))
            case "CLUSTERDOWN", "TRYAGAIN", "LOADING", "MASTERDOWN":
                self = .later
            default:
                return nil
            }
        }
    }

    let configuration: RedisClient.Configuration
    /// The credentials every node is logged in to with (from the configuration's URL).
    private let credentials: RedisEndpoint
    private let state: NIOLockedValueBox<State>

    init(seeds: [String], configuration: RedisClient.Configuration, credentials: RedisEndpoint) throws {
        for seed in seeds { _ = try Self.endpoint(seed, credentials: credentials) }
        self.configuration = configuration
        self.credentials = credentials
        self.state = NIOLockedValueBox(State(known: seeds))
    }

    /// `host:port` as an endpoint with the cluster's credentials (database 0: a cluster has no other).
    static func endpoint(_ node: String, credentials: RedisEndpoint) throws -> RedisEndpoint {
        guard let colon = node.lastIndex(of: ":"), let port = Int(node[node.index(after: colon)...]), colon != node.startIndex
        else { throw DriverError(.redis, .invalid, "a Redis Cluster node must be host:port, not '\(node)'") }
        var endpoint = credentials
        endpoint.host = String(node[..<colon])
        endpoint.port = port
        endpoint.database = 0
        return endpoint
    }

    /// The endpoint of `node`, for connections that live outside the pools (the append writers, pub/sub).
    func endpoint(of node: String) throws -> RedisEndpoint { try Self.endpoint(node, credentials: credentials) }

    // MARK: - The slot map

    /// The node serving `slot` by the map as it is now, without asking the cluster (nil: not known yet).
    func owner(ofSlot slot: Int) -> String? { state.withLockedValue { $0.owners[slot] } }

    /// The node to send a command of `key` to (any primary for none), learning the map first when it is not known.
    func serving(_ key: String?) async throws -> String {
        if let node = nodeNow(key) { return node }
        try await refresh()
        if let node = nodeNow(key) { return node }
        let slot = key.map { String(RedisSlot.of($0)) } ?? "any"
        throw DriverError(.redis, .server, "CLUSTERDOWN no node of the cluster serves slot \(slot)")
    }

    /// Like `serving`, from the map as it is (nil: not known).
    func nodeNow(_ key: String?) -> String? {
        state.withLockedValue { state in key.map { state.owners[RedisSlot.of($0)] } ?? state.primaries.first }
    }

    /// The primaries, learning the map first when it is not known.
    func primaries() async throws -> [String] {
        if state.withLockedValue({ $0.primaries.isEmpty }) { try await refresh() }
        return state.withLockedValue { $0.primaries }
    }

    /// Every node seen, primaries first: where a pub/sub connection may subscribe (a message published on any node
    /// reaches the subscribers of every node).
    func knownNodes() -> [String] {
        state.withLockedValue { state in state.primaries + state.known.filter { !state.primaries.contains($0) } }
    }

    /// Reads the slot map again from the first node that answers; concurrent callers share one read.
    func refresh() async throws {
        let task: Task<Void, any Error> = state.withLockedValue { state in
            if let running = state.refreshing { return running }
            let task = Task { try await self.readSlotMap() }
            state.refreshing = task
            return task
        }
        defer { state.withLockedValue { if $0.refreshing == task { $0.refreshing = nil } } }
        try await task.value
    }

    /// Starts a refresh without waiting for it (after a MOVED or a node that broke).
    func refreshSoon() {
        Task { try? await refresh() }
    }

    private func readSlotMap() async throws {
        var failures: [String] = []
        for node in knownNodes() {
            do {
                let reply = try await pool(of: node).withConnection { try $0.command(["CLUSTER", "SLOTS"]) }.orThrow()
                let (owners, primaries, nodes) = try Self.slotMap(reply, askedNode: node)
                guard !primaries.isEmpty else { throw DriverError(.redis, .server, "CLUSTERDOWN \(node) knows no primary") }
                state.withLockedValue { state in
                    state.owners = owners
                    state.primaries = primaries
                    for found in nodes where !state.known.contains(found) { state.known.append(found) }
                }
                return
            } catch let error as DriverError {
                failures.append("\(node): \(error.message)")
            }
        }
        throw DriverError(.redis, .unavailable, "no node of the Redis Cluster answered CLUSTER SLOTS (\(failures.joined(separator: "; ")))")
    }

    /// Parses `CLUSTER SLOTS`: `[[start, end, [host, port, id], replica…], …]`. An empty host means the node asked.
    static func slotMap(_ reply: RedisValue, askedNode: String) throws -> (owners: [String?], primaries: [String], nodes: [String]) {
        var owners = [String?](repeating: nil, count: RedisSlot.count)
        var primaries: [String] = []
        var nodes: [String] = []
        let askedHost = String(askedNode[..<(askedNode.lastIndex(of: ":") ?? askedNode.endIndex)])
        for range in reply.array ?? [] {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].int, let end = parts[1].int,
                start >= 0, end < RedisSlot.count, start <= end
            else { throw DriverError(.redis, .invalid, "CLUSTER SLOTS answered \(range)") }
            let servers: [String] = parts[2...].compactMap { server in
                guard let fields = server.array, fields.count >= 2, let port = fields[1].int else { return nil }
                let host = fields[0].string.flatMap { $0.isEmpty ? nil : $0 } ?? askedHost
                return "\(host):\(port)"
            }
            guard let primary = servers.first else { continue }
            for slot in Int(start)...Int(end) { owners[slot] = primary }
            if !primaries.contains(primary) { primaries.append(primary) }
            for node in servers where !nodes.contains(node) { nodes.append(node) }
        }
        return (owners, primaries, nodes)
    }

    private func learn(slot: Int, servedBy node: String) {
        state.withLockedValue { state in
            state.owners[slot] = node
            if !state.known.contains(node) { state.known.append(node) }
        }
    }

    // MARK: - Sending

    /// The pool of `node`, opened on first use (one per node, each with the configured size and threads of its own).
    func pool(of node: String) throws -> BlockingConnections<RedisConnection> {
        let endpoint = try endpoint(of: node)
        let configuration = self.configuration
        return try state.withLockedValue { state in
            if state.closed { throw DriverError(.redis, .closed, "the client was shut down") }
            if let pool = state.pools[node] { return pool }
            let pool = BlockingConnections<RedisConnection>(
                store: .redis, maxConnections: configuration.maxConnections, acquireTimeout: configuration.acquireTimeout
            ) {
                try RedisConnection(
                    endpoint: endpoint, connectTimeoutMs: configuration.connectTimeout.milliseconds,
                    commandTimeoutMs: configuration.commandTimeout.milliseconds)
            }
            state.pools[node] = pool
            return pool
        }
    }

    /// Runs `body` on a connection to the primary of `key`'s slot, following redirections and waiting out a failover
    /// (see the type's comment). `retrySafe` says the body only reads.
    func run(
        routingKey key: String?, retrySafe: Bool, _ body: @escaping @Sendable (RedisConnection) throws -> RedisValue
    ) async throws -> RedisValue {
        let deadline = ContinuousClock.now + configuration.failoverWait
        var redirect: (node: String, asking: Bool)?
        for _ in 0..<64 {
            let node: String
            if let redirect { node = redirect.node } else { node = try await serving(key) }
            let asking = redirect?.asking ?? false
            redirect = nil
            let sent = NIOLockedValueBox(false)
            do {
                let reply = try await pool(of: node).withConnection { connection in
                    if asking { _ = try connection.command(["ASKING"]).orThrow() }
                    sent.withLockedValue { $0 = true }
                    return try body(connection)
                }
                switch Redirection(reply) {
                case .moved(let slot, let owner):
                    learn(slot: slot, servedBy: owner)
                    refreshSoon()
                    redirect = (owner, false)
                case .ask(let target):
                    redirect = (target, true)
                case .later:
                    guard ContinuousClock.now < deadline else { return reply }
                    try await Task.sleep(for: .milliseconds(100))
                    try? await refresh()
                case nil:
                    return reply
                }
            } catch let error as DriverError where error.code == .unavailable || error.code == .timeout {
                let wasSent = sent.withLockedValue { $0 }
                let retry = (!wasSent && error.code == .unavailable) || retrySafe
                guard retry, ContinuousClock.now < deadline else {
                    refreshSoon()
                    throw error
                }
                try await Task.sleep(for: .milliseconds(200))
                try? await refresh()
            }
        }
        throw DriverError(.redis, .server, "CLUSTERDOWN the command was redirected 64 times without an answer")
    }

    /// Sends each command to its slot's primary, one pipeline per node (the nodes at once), and returns the replies in
    /// the commands' order. A `MULTI` … `EXEC` block goes as one, to the slot of its first key. A command (or block)
    /// redirected, or not sent because its node could not be reached, is sent again on its own through `run`.
    func pipeline(_ commands: [[String]]) async throws -> [RedisValue] {
        let units = Self.units(commands)
        var groups: [String: [Int]] = [:]
        for (index, unit) in units.enumerated() { groups[try await serving(unit.key), default: []].append(index) }
        var replies = [RedisValue?](repeating: nil, count: commands.count)
        try await withThrowingTaskGroup(of: ([Int], [RedisValue]?).self) { group in
            for (node, unitIndices) in groups {
                let indices = unitIndices.flatMap { units[$0].commands }
                let batch = indices.map { commands[$0] }
                let pool = try pool(of: node)
                group.addTask {
                    let sent = NIOLockedValueBox(false)
                    do {
                        let replies = try await pool.withConnection { connection in
                            sent.withLockedValue { $0 = true }
                            return try connection.pipeline(batch)
                        }
                        return (indices, replies)
                    } catch let error as DriverError where error.code == .unavailable && !sent.withLockedValue({ $0 }) {
                        return (indices, nil)
                    }
                }
            }
            for try await (indices, answered) in group {
                guard let answered else { continue }
                for (index, reply) in zip(indices, answered) { replies[index] = reply }
            }
        }
        for unit in units where unit.commands.contains(where: { replies[$0].map { Redirection($0) != nil } ?? true }) {
            let batch = unit.commands.map { commands[$0] }
            let again = try await run(routingKey: unit.key, retrySafe: batch.allSatisfy(RedisSlot.onlyReads)) { connection in
                let replies = try connection.pipeline(batch)
                // A redirection anywhere in the unit is followed for the whole unit.
                return replies.first { Redirection($0) != nil } ?? .array(replies)
            }
            let answered = again.array ?? []
            for (offset, index) in unit.commands.enumerated() { replies[index] = offset < answered.count ? answered[offset] : again }
        }
        return replies.map { $0 ?? .null }
    }

    /// The commands of a pipeline in the units they are routed as: one command, or a whole `MULTI` … `EXEC` block.
    static func units(_ commands: [[String]]) -> [(commands: [Int], key: String?)] {
        var units: [(commands: [Int], key: String?)] = []
        var index = 0
        while index < commands.count {
            guard commands[index].first?.uppercased() == "MULTI" else {
                units.append(([index], RedisSlot.routingKey(of: commands[index])))
                index += 1
                continue
            }
            var end = index
            while end + 1 < commands.count, commands[end].first?.uppercased() != "EXEC" { end += 1 }
            let block = Array(index...end)
            units.append((block, block.lazy.compactMap { RedisSlot.routingKey(of: commands[$0]) }.first))
            index = end + 1
        }
        return units
    }

    /// Runs `body` on a connection to `node` itself (a `SCAN` of one primary's keys).
    func run<T: Sendable>(on node: String, _ body: @escaping @Sendable (RedisConnection) throws -> T) async throws -> T {
        try await pool(of: node).withConnection(body)
    }

    /// Closes every node's pool.
    func shutdown() async {
        let pools = state.withLockedValue { state in
            state.closed = true
            defer { state.pools = [:] }
            return Array(state.pools.values)
        }
        for pool in pools { await pool.shutdown() }
    }
}
