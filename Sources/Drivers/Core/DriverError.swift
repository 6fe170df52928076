/// The one error type of the Drivers layer: which store, what kind of failure, and the
/// store's own words. Callers switch on `code`; people read `description`.
public struct DriverError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The store an error came from.
    public enum Store: String, Sendable {
        case redis = "Redis"
        case mongo = "MongoDB"
        case postgres = "PostgreSQL"
    }

    /// What kind of failure: stable values to switch on.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let raw: String
        /// The server could not be reached or the connection broke; retrying later may work.
        public static let unavailable = Code(raw: "unavailable")
        /// The server refused our credentials.
        public static let authentication = Code(raw: "authentication")
        /// No answer (or no free connection) within the configured time.
        public static let timeout = Code(raw: "timeout")
        /// The server answered the command with an error.
        public static let server = Code(raw: "server")
        /// A unique index or constraint refused a write (MongoDB 11000, PostgreSQL 23505).
        public static let duplicateKey = Code(raw: "duplicate_key")
        /// A URL, argument or reply that Parley cannot use.
        public static let invalid = Code(raw: "invalid")
        /// The client was shut down.
        public static let closed = Code(raw: "closed")
        /// The stable word (`duplicate_key`, `timeout`, …) shown in `DriverError.description` and logs.
        public var description: String { raw }
    }

    /// Which store failed; `sqlState` is only set for PostgreSQL, `redisErrorCode` only for Redis.
    public let store: Store
    /// The kind of failure, the one thing to switch on; unlike `message`, its values are stable.
    public let code: Code
    /// The store's (or the driver's) own words, for people and logs; only `redisErrorCode` parses it.
    public let message: String
    /// PostgreSQL's SQLSTATE (e.g. `23505`), when the error came from PostgreSQL.
    public let sqlState: String?
    /// The server's numeric error code (MongoDB), when it gave one.
    public let serverCode: Int?

    /// `sqlState` and `serverCode` carry the store's own code when it gave one; leave them nil otherwise.
    public init(_ store: Store, _ code: Code, _ message: String, sqlState: String? = nil, serverCode: Int? = nil) {
        self.store = store
        self.code = code
        self.message = message
        self.sqlState = sqlState
        self.serverCode = serverCode
    }

    /// Whether the failure is of the store's state rather than of the command: the connection failed or timed out, or
    /// Redis refused the command for a while (`refusedByRedis`). The caller may retry once the store is back.
    public var isTransient: Bool { code == .unavailable || code == .timeout || refusedByRedis != nil }

    /// The reply's code word when Redis refused a command for its state, not for the command: out of memory under
    /// `maxmemory` (`OOM`), a failed background save (`MISCONF`), a replica or a failed-over primary (`READONLY`), loading
    /// its data (`LOADING`), a script running too long (`BUSY`), a cluster not serving the slot (`CLUSTERDOWN`,
    /// `TRYAGAIN`, `MASTERDOWN`), too few replicas (`NOREPLICAS`). A script refused so wrote nothing: Redis refuses at its
    /// first write. Operators should hear of every one (`parley_redis_refusals`).
    public var refusedByRedis: Substring? {
        guard let word = redisErrorCode, Self.refusalCodes.contains(String(word)) else { return nil }
        return word
    }

    static let refusalCodes: Set<String> = [
        "OOM", "MISCONF", "READONLY", "LOADING", "BUSY", "CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "NOREPLICAS",
    ]

    /// The error's code word when Redis answered with an error reply (`NOGROUP`, `OOM`,
    /// `READONLY`, …): by the protocol's convention an error reply starts with it.
    public var redisErrorCode: Substring? {
        guard store == .redis, code == .server, let word = message.split(separator: " ", maxSplits: 1).first,
            word.allSatisfy({ $0.isUppercase || $0 == "_" })
        else { return nil }
        return word
    }

    /// `<Store> <code>: <message>`, plus `(SQLSTATE …)` when there is one: the form logs and people see.
    public var description: String {
        var text = "\(store.rawValue) \(code): \(message)"
        if let sqlState { text += " (SQLSTATE \(sqlState))" }
        return text
    }
}
