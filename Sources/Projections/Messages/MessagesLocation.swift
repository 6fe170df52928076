import Drivers
import Foundation
import Synchronization

/// Which MongoDB collection holds the live messages read model. A shadow rebuild never
/// renames a collection: it builds a new version beside the live one (`<base>_v<n>`) and
/// then moves one pointer, the document `{_id: "live", collection, version}` in
/// `<base>_pointer`, that the projector and the history readers follow. With no pointer the
/// live collection is `<base>` itself (as before the first shadow rebuild). This works the
/// same on a real MongoDB, on a sharded one (where `renameCollection` is refused) and on
/// nx-27017 (whose rename loses collections).
///
/// Readers keep the name for `readerRefresh` before they read the pointer again; the
/// projector follows it when it fences and when the area it writes says it moved
/// (`MessagesProjector`). A fixed location (a shadow or verify area, a benchmark) never
/// reads a pointer.
public final class MessagesLocation: Sendable {
    /// `PARLEY_MONGO_COLLECTION` (`messages`): the name the versions and the pointer are named after.
    public let base: String
    let mongo: MongoClient
    /// nil for a fixed location.
    let pointer: MongoCollection?
    private let cached: Mutex<(area: String, read: ContinuousClock.Instant)?>

    /// How long a reader uses the collection it last read from the pointer: a swap
    /// reaches every reader within this, and the replayer waits twice as long before it
    /// drops the collection it replaced.
    public static let readerRefresh: Duration = .seconds(1)

    /// Follows `<base>_pointer`.
    public init(mongo: MongoClient, base: String) {
        self.mongo = mongo
        self.base = base
        self.pointer = mongo.collection(base + "_pointer")
        self.cached = Mutex(nil)
    }

    /// Always `collection`, never a pointer (a shadow or scratch area).
    public init(mongo: MongoClient, fixed collection: String) {
        self.mongo = mongo
        self.base = collection
        self.pointer = nil
        self.cached = Mutex((collection, .now))
    }

    /// Whether this location follows a pointer (the live read model) or names one collection.
    public var followsPointer: Bool { pointer != nil }

    /// The live collection's name: the one read last, unless that was longer than
    /// `maxAge` ago (nil: however long ago), then the pointer is read again.
    public func area(maxAge: Duration? = MessagesLocation.readerRefresh) async throws -> String {
        if let known = cached.withLock({ $0 }), pointer == nil || maxAge.map({ ContinuousClock.now - known.read < $0 }) ?? true {
            return known.area
        }
        return try await refresh()
    }

    /// Reads the pointer now.
    @discardableResult
    public func refresh() async throws -> String {
        let area = try await pointed().area
        cached.withLock { $0 = (area, .now) }
        return area
    }

    /// The live collection, its version (0: `<base>` itself, before any swap), and the collections a swap replaced and
    /// has not dropped yet.
    public func pointed() async throws -> (area: String, version: Int, retiring: [String]) {
        guard let pointer else { return (base, 0, []) }
        guard let document = try await pointer.findOne(["_id": "live"]), let area = document["collection"]?.stringValue else {
            return (base, 0, [])
        }
        return (area, Int(document["version"]?.int64Value ?? 0), Self.names(document["retiring"]))
    }

    /// The collection the next version is built in (`<base>_v<n+1>`).
    public func nextArea() async throws -> String {
        "\(base)_v\(try await pointed().version + 1)"
    }

    /// Points readers and the projector at `area`, version `version` (one document write: atomic), recording the
    /// collections it replaces as `retiring` until they are dropped.
    public func point(to area: String, version: Int, retiring: [String] = []) async throws {
        guard let pointer else { preconditionFailure("a fixed location has no pointer") }
        try await pointer.updateOne(
            filter: ["_id": "live"],
            update: [
                "$set": [
                    "collection": .string(area), "version": .int64(Int64(version)), "at": .date(Date()),
                    "retiring": .array(retiring.map(BSON.string)),
                ]
            ], upsert: true)
        cached.withLock { $0 = (area, .now) }
    }

    /// A replaced collection was dropped: no longer `retiring`.
    public func retired(_ area: String) async throws {
        guard let pointer, let document = try await pointer.findOne(["_id": "live"]) else { return }
        let retiring = Self.names(document["retiring"]).filter { $0 != area }
        try await pointer.updateOne(filter: ["_id": "live"], update: ["$set": ["retiring": .array(retiring.map(BSON.string))]])
    }

    /// A list of names as MongoDB keeps an array given to `$set` (nx-27017 keeps its JSON text).
    static func names(_ value: BSON?) -> [String] {
        if case .string(let json)? = value, let names = try? JSONDecoder().decode([String].self, from: Data(json.utf8)) { return names }
        return (value?.arrayValue ?? []).compactMap(\.stringValue)
    }

    /// The version a collection named by `nextArea()` has (nil for `<base>` or another name).
    public func version(of area: String) -> Int? {
        guard area.hasPrefix(base + "_v") else { return nil }
        return Int(area.dropFirst(base.count + 2))
    }
}
