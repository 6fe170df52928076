import NIOConcurrencyHelpers

/// A Lua script run with EVALSHA. The script is loaded (SCRIPT LOAD) on first use and again
/// whenever Redis answers NOSCRIPT (after a restart or SCRIPT FLUSH), so callers never see it.
public final class RedisScript: Sendable {
    /// The Lua text, sent with SCRIPT LOAD whenever Redis does not know the script's SHA1 (yet, or any more).
    public let source: String
    private let sha = NIOLockedValueBox<String?>(nil)

    /// Contacts nothing: the script is loaded on its first run. Keep one instance per script for the process's life (a
    /// global or `static let`), so that its SHA1 is learnt once.
    public init(_ source: String) {
        self.source = source
    }

    /// Runs the script with `keys` and `arguments`; an error raised by the script comes back
    /// as `.error` (so callers can map their own refusals), connection failures throw.
    public func run(on connection: RedisConnection, keys: [String], arguments: [String]) throws -> RedisValue {
        let known = sha.withLockedValue { $0 }
        if let known {
            let reply = try connection.command(["EVALSHA", known, String(keys.count)] + keys + arguments)
            if case .error(let text) = reply, text.hasPrefix("NOSCRIPT") {
                return try loadAndRun(on: connection, keys: keys, arguments: arguments)
            }
            return reply
        }
        return try loadAndRun(on: connection, keys: keys, arguments: arguments)
    }

    /// Runs the script through a pooled connection of `client` (to the primary of its first key's slot with a cluster).
    public func run(_ client: RedisClient, keys: [String], arguments: [String]) async throws -> RedisValue {
        try await client.routed(by: keys.first) { try self.run(on: $0, keys: keys, arguments: arguments) }
    }

    /// The script's SHA1, loading it into Redis first when it is not known yet (into the node of `key` with a cluster:
    /// each node has a script cache of its own).
    public func sha(loadingWith client: RedisClient, forKey key: String? = nil) async throws -> String {
        if let known = sha.withLockedValue({ $0 }) { return known }
        let loaded = try await client.command(["SCRIPT", "LOAD", source], routedBy: key)
        guard let digest = loaded.string else { throw DriverError(.redis, .invalid, "SCRIPT LOAD answered \(loaded)") }
        sha.withLockedValue { $0 = digest }
        return digest
    }

    /// Forgets the SHA1 (after NOSCRIPT), so that the next run loads the script again.
    public func forget() {
        sha.withLockedValue { $0 = nil }
    }

    private func loadAndRun(on connection: RedisConnection, keys: [String], arguments: [String]) throws -> RedisValue {
        let loaded = try connection.command(["SCRIPT", "LOAD", source]).orThrow()
        guard let digest = loaded.string else { throw DriverError(.redis, .invalid, "SCRIPT LOAD answered \(loaded)") }
        sha.withLockedValue { $0 = digest }
        let reply = try connection.command(["EVALSHA", digest, String(keys.count)] + keys + arguments)
        // Flushed again between the load and the run (SCRIPT FLUSH, a failover): the source itself, once.
        if case .error(let text) = reply, text.hasPrefix("NOSCRIPT") {
            return try connection.command(["EVAL", source, String(keys.count)] + keys + arguments)
        }
        return reply
    }
}
