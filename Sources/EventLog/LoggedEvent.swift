import Events

/// An event as the log holds it: its partition, its stream entry id (its position inside
/// the partition), the decoded event and the exact JSON stored.
public struct LoggedEvent: Sendable, Equatable {
    /// The partition (the stream) the event is in.
    public var partition: Int
    /// Its stream entry id: its position inside the partition.
    public var entryID: String
    /// The decoded event.
    public var event: Event
    /// The stored JSON, byte for byte: what the hash chain covers and the WebSocket frame carries.
    public var json: String

    /// An event as read from `partition` at `entryID`.
    public init(partition: Int, entryID: String, event: Event, json: String) {
        self.partition = partition
        self.entryID = entryID
        self.event = event
        self.json = json
    }
}

/// A position in the whole log: one stream entry id per partition, written as one opaque
/// string (`id.id.id`), which is what clients hold and send back (`since`).
public struct LogPosition: Sendable, Equatable, CustomStringConvertible {
    /// The last entry id taken into account in each partition ("0-0": none).
    public var entryIDs: [String]

    /// A position from one entry id per partition, in partition order.
    public init(entryIDs: [String]) { self.entryIDs = entryIDs }

    /// The position before the first event of every partition.
    public static func start(partitions: Int) -> LogPosition {
        LogPosition(entryIDs: Array(repeating: "0-0", count: partitions))
    }

    /// Parses a token; nil when it is not one of this log's positions.
    public init?(token: String, partitions: Int) {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == partitions, parts.allSatisfy(StreamID.isValid) else { return nil }
        self.entryIDs = parts
    }

    /// The opaque token clients hold (`id.id.id`).
    public var description: String { entryIDs.joined(separator: ".") }

    /// The position just after `event`.
    public mutating func advance(past event: LoggedEvent) {
        if StreamID.less(entryIDs[event.partition], event.entryID) { entryIDs[event.partition] = event.entryID }
    }

    /// Whether `event` comes after this position (so it is still to be delivered).
    public func isBefore(_ event: LoggedEvent) -> Bool {
        StreamID.less(entryIDs[event.partition], event.entryID)
    }
}

/// Redis stream entry ids, `milliseconds-sequence`.
public enum StreamID {
    /// Whether `id` is a stream entry id (`ms-seq`), as a `since` token must hold.
    public static func isValid(_ id: String) -> Bool { parse(id) != nil }

    /// The milliseconds part of an id (Redis' clock when it was appended).
    public static func milliseconds(_ id: String) -> Int64? { parse(id).map { Int64($0.0) } }

    static func parse(_ id: String) -> (UInt64, UInt64)? {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let ms = UInt64(parts[0]), let seq = UInt64(parts[1]) else { return nil }
        return (ms, seq)
    }

    /// Whether `a` comes before `b` in a stream.
    public static func less(_ a: String, _ b: String) -> Bool {
        guard let x = parse(a), let y = parse(b) else { return a < b }
        return x < y
    }
}
