import Drivers
import EventLog

/// Where the log and the read models are, as every Parley process reads it from the
/// environment (`parley-server`, `parley-replay`): one place, so they cannot disagree.
public struct ReadModelSettings: Sendable, Equatable {
    /// `PARLEY_LOG_PARTITIONS` (1).
    public var partitions = 1
    /// `PARLEY_NAMESPACE` (`parley`): the first part of every Redis key.
    public var namespace = "parley"
    /// `PARLEY_POSTGRES_SCHEMA` (`public`): the metadata tables.
    public var postgresSchema = "public"
    /// `PARLEY_MONGO_COLLECTION` (`messages`): the messages documents.
    public var mongoCollection = "messages"
    /// `PARLEY_ARCHIVE` (`postgres`): whether the log has an archive in `<postgresSchema>.log_archive` (every reader
    /// reads it before the streams; the archiver copies into it and trims); `off` keeps everything in Redis.
    public var archive = true
    /// `PARLEY_LOG_HOT_SECONDS` (604800): how long an archived, acknowledged entry stays in its stream.
    public var logHotSeconds = 604_800
    /// `PARLEY_DEDUPE_SECONDS` (604800): how long a `clientMsgId` is remembered (`DedupeWindow`).
    public var dedupeSeconds = 604_800

    /// The longest name accepted: the replayer adds suffixes (`_shadow`, `_verify`,
    /// `_retired_<unix time>`, `_v<n>_checkpoints`, at most 19 characters) within PostgreSQL's 63.
    public static let maxNameLength = 40

    /// A setting that cannot be used, named in one line.
    public struct Invalid: Error, CustomStringConvertible, Sendable {
        /// Names the variable, its value and what it must be (e.g. `PARLEY_LOG_PARTITIONS=0 is not a number in 1...1024`).
        public let description: String
    }

    /// The defaults, as an empty environment gives them.
    public init() {}

    /// Reads the four variables (an empty one keeps its default); throws `Invalid` for partitions outside 1...1024 or a
    /// name longer than `maxNameLength` or with other characters. The schema is lowercased.
    public init(environment: [String: String]) throws(Invalid) {
        if let text = environment["PARLEY_LOG_PARTITIONS"], !text.isEmpty {
            guard let value = Int(text), (1...1024).contains(value) else {
                throw Invalid(description: "PARLEY_LOG_PARTITIONS=\(text) is not a number in 1...1024")
            }
            partitions = value
        }
        func name(_ variable: String, _ fallback: String, allowing extra: Set<Character>) throws(Invalid) -> String {
            guard let value = environment[variable], !value.isEmpty else { return fallback }
            guard value.count <= Self.maxNameLength, value.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || extra.contains($0)) })
            else {
                throw Invalid(
                    description: "\(variable)=\(value) must be letters, digits or \(String(extra)) (at most \(Self.maxNameLength))")
            }
            return value
        }
        namespace = try name("PARLEY_NAMESPACE", "parley", allowing: ["-", "_"])
        postgresSchema = try name("PARLEY_POSTGRES_SCHEMA", "public", allowing: ["_"]).lowercased()
        mongoCollection = try name("PARLEY_MONGO_COLLECTION", "messages", allowing: ["_", "-"])
        switch (environment["PARLEY_ARCHIVE"] ?? "").lowercased() {
        case "", "postgres": archive = true
        case "off": archive = false
        case let other: throw Invalid(description: "PARLEY_ARCHIVE=\(other) is neither postgres nor off")
        }
        if let text = environment["PARLEY_LOG_HOT_SECONDS"], !text.isEmpty {
            guard let value = Int(text), value >= 0 else {
                throw Invalid(description: "PARLEY_LOG_HOT_SECONDS=\(text) is not a number of seconds (0 or more)")
            }
            logHotSeconds = value
        }
        if let text = environment["PARLEY_DEDUPE_SECONDS"], !text.isEmpty {
            guard let value = Int(text), value >= 1 else {
                throw Invalid(description: "PARLEY_DEDUPE_SECONDS=\(text) is not a number of seconds (1 or more)")
            }
            dedupeSeconds = value
        }
    }

    /// How long the log remembers client message ids.
    public var dedupe: DedupeWindow { DedupeWindow(seconds: dedupeSeconds) }

    /// The archive these settings name on `postgres` (nil with `PARLEY_ARCHIVE=off`).
    public func archive(on postgres: PostgresClient) -> LogArchive? {
        archive ? LogArchive(postgres: postgres, schema: postgresSchema) : nil
    }
}
