import Drivers
import Events

/// Reads the log in pages, oldest first: the one reader behind the hub's replay after
/// `since`, rebuilds, `verify`, `audit`, `export` and the chain check. An entry that cannot
/// be decoded is reported in its page, never thrown: one bad entry must not stop a replay
/// or a rebuild, and the caller says what to do with it (skip and count, log, park).
///
/// With an archive, the log is the archive's entries followed by the stream's: a page that
/// starts before the stream's oldest entry is read from the archive first (entries older
/// than the stream's oldest, which the archiver copied before they were trimmed), then
/// from the stream, with no gap and no entry twice at the seam.
public struct LogReader: Sendable {
    let redis: RedisClient
    let keys: Keys
    /// How many partitions the log has.
    public let partitions: Int
    /// Where trimmed entries are (nil: nothing is ever trimmed, the stream is the whole log).
    public let archive: LogArchive?

    /// An entry the reader could not turn into an event, and why.
    public struct Unreadable: Sendable, Equatable {
        /// The partition read.
        public var partition: Int
        /// The entry's id in the stream.
        public var entryID: String
        /// The stored JSON ("" when the entry has no `event` field).
        public var json: String
        /// Why it could not be decoded.
        public var reason: String
    }

    /// One page of one partition.
    public struct Page: Sendable {
        /// The partition read.
        public var partition: Int
        /// The decoded events, oldest first.
        public var events: [LoggedEvent]
        /// The entries that could not be decoded, for the caller to report, skip or park.
        public var unreadable: [Unreadable]
        /// The id of the last entry read (nil when the page is empty): the next page starts after it.
        public var lastEntryID: String?
        /// Entries read, readable or not.
        public var entries: Int
    }

    /// The entries of `partition` after `after` (exclusive) up to `until` (inclusive), at most
    /// `count`. `cache`: the process's decode cache, for live readers only (see `EventLog.decode`).
    public func page(partition: Int, after: String, until: String = "+", count: Int, cache: DecodedEvents? = nil) async throws -> Page {
        Self.decode(try await entries(partition: partition, after: after, until: until, count: count), partition: partition, cache: cache)
    }

    /// The stored entries behind `page`: the archive's older ones first, then the stream's.
    public func entries(partition: Int, after: String, until: String = "+", count: Int) async throws -> [StreamEntry] {
        let start = after == "0-0" ? "-" : "(" + after
        let stream = keys.stream(partition)
        guard let archive else { return try await redis.xrange(stream, from: start, to: until, count: count) }
        // The stream's oldest entry and the page, in one round trip (one key: one node of a cluster).
        let replies = try await redis.pipeline([
            ["XRANGE", stream, "-", "+", "COUNT", "1"], ["XRANGE", stream, start, until, "COUNT", String(count)],
        ])
        let oldest = Self.firstID(try replies[0].orThrow())
        let newer = try RedisClient.entries(try replies[1].orThrow())
        guard oldest == "0-0" || StreamID.less(after, oldest) else { return newer }
        // Up to what the stream's read gave: a trim between the two reads of the pipeline moved the oldest entry on.
        let seam = newer.first?.id ?? (oldest == "0-0" ? nil : oldest)
        let older = try await archive.entries(partition: partition, after: after, before: seam, until: until, count: count)
        return older.isEmpty ? newer : Array((older + newer).prefix(count))
    }

    /// Calls `body` with every page of `partition` after `after` up to `until`, in order.
    public func forEachPage(
        partition: Int, after: String = "0-0", until: String = "+", count: Int, _ body: (Page) async throws -> Void
    ) async throws {
        var cursor = after
        while true {
            try Task.checkCancellation()
            let page = try await page(partition: partition, after: cursor, until: until, count: count)
            if page.entries > 0 { try await body(page) }
            guard page.entries == count, let last = page.lastEntryID else { return }
            cursor = last
        }
    }

    /// A page of the whole log: every partition's entries after `position`, at most `count`
    /// per partition and none past `until`, merged by entry id (a room's events keep their
    /// order: a room lives in one partition).
    public struct MergedPage: Sendable {
        /// The decoded events, oldest first.
        public var events: [LoggedEvent]
        /// The entries that could not be decoded, for the caller to report, skip or park.
        public var unreadable: [Unreadable]
        /// The position after everything this page read, readable or not.
        public var reached: LogPosition
        /// Whether nothing was read (the log holds nothing more up to `until`).
        public var isEmpty: Bool

        /// The pages of several partitions read after `position`, merged by entry id.
        init(_ pages: [Page], after position: LogPosition) {
            events = pages.flatMap(\.events)
            unreadable = pages.flatMap(\.unreadable)
            reached = position
            isEmpty = true
            for page in pages {
                guard let last = page.lastEntryID else { continue }
                reached.entryIDs[page.partition] = last
                isEmpty = false
            }
            events.sort { StreamID.less($0.entryID, $1.entryID) || ($0.entryID == $1.entryID && $0.partition < $1.partition) }
        }
    }

    /// Reads one merged page (see `MergedPage`).
    public func merged(after position: LogPosition, until: LogPosition? = nil, count: Int) async throws -> MergedPage {
        var pages: [Page] = []
        for partition in 0..<partitions {
            let end = until?.entryIDs[partition] ?? "+"
            if end != "+", !StreamID.less(position.entryIDs[partition], end) { continue }
            pages.append(try await page(partition: partition, after: position.entryIDs[partition], until: end, count: count))
        }
        return MergedPage(pages, after: position)
    }

    /// The position of the last entry of every partition now.
    public func head() async throws -> LogPosition {
        let replies = try await redis.pipeline((0..<partitions).map { ["XREVRANGE", keys.stream($0), "+", "-", "COUNT", "1"] })
        return LogPosition(entryIDs: replies.map(Self.firstID))
    }

    /// The id of the last entry of one partition ("0-0" when empty).
    public func head(partition: Int) async throws -> String {
        Self.firstID(try await redis.command(["XREVRANGE", keys.stream(partition), "+", "-", "COUNT", "1"]))
    }

    /// The id of the oldest entry one partition still keeps ("0-0" when empty).
    public func oldest(partition: Int) async throws -> String {
        Self.firstID(try await redis.command(["XRANGE", keys.stream(partition), "-", "+", "COUNT", "1"]))
    }

    /// The id of the oldest entry each partition still keeps ("0-0" for an empty one).
    public func oldest() async throws -> [String] {
        let replies = try await redis.pipeline((0..<partitions).map { ["XRANGE", keys.stream($0), "-", "+", "COUNT", "1"] })
        return replies.map(Self.firstID)
    }

    /// How many entries the partitions hold now (all of them when `partitions` is nil), the archived ones older than
    /// each stream included.
    public func length(partitions chosen: [Int]? = nil) async throws -> Int {
        let chosen = chosen ?? Array(0..<partitions)
        let replies = try await redis.pipeline(chosen.map { ["XLEN", keys.stream($0)] })
        var total = replies.reduce(0) { $0 + Int($1.int ?? 0) }
        if let archive {
            let oldest = try await oldest()
            for partition in chosen {
                total += try await archive.count(partition: partition, before: oldest[partition] == "0-0" ? nil : oldest[partition])
            }
        }
        return total
    }

    /// Whether anything after `position` is gone from the log: a partition whose oldest
    /// entry is newer than the position and that had entries trimmed or deleted
    /// (`entries-added` beyond `length`). A client replaying from there cannot be told
    /// everything it missed.
    ///
    /// With an archive, entries trimmed after they were archived are not gone: only a stream whose oldest entry the
    /// archive does not reach (entries removed some other way, `XDEL` or a restore) counts.
    public func lostEntries(after position: LogPosition) async throws -> Bool {
        let oldest = try await oldest()
        for partition in 0..<partitions where StreamID.less(position.entryIDs[partition], oldest[partition]) {
            if let archive, !StreamID.less(try await archive.archivedThrough(partition: partition), oldest[partition]) { continue }
            if try await wasTrimmed(partition: partition) { return true }
        }
        return false
    }

    /// The newest entry id the partition's stream ever had (`last-generated-id`, kept even when that entry is deleted);
    /// "0-0" for a stream that does not exist. A read model that has applied past it holds events the log has lost: Redis
    /// came back from an older snapshot or AOF, or its stream was deleted and written again.
    public func lastGenerated(partition: Int) async throws -> String {
        do {
            return try await redis.xinfoStream(keys.stream(partition))["last-generated-id"]?.string ?? "0-0"
        } catch let error as DriverError where error.code == .server {
            return "0-0"  // no such key
        }
    }

    /// Whether `position` names, in some partition, an entry the stream does not have: a client that saw events the log
    /// has since lost (Redis came back from an older snapshot), also once newer entries are appended. Such a client
    /// cannot be told it missed nothing.
    public func namesLostEntries(_ position: LogPosition) async throws -> Bool {
        for partition in 0..<min(partitions, position.entryIDs.count) {
            if try await lacks(partition: partition, entryID: position.entryIDs[partition]) { return true }
        }
        return false
    }

    /// Whether the partition's stream lacks the entry `entryID`, one a read model applied: true means the log lost it
    /// (Redis came back from an older snapshot, or the entry was deleted), also once newer entries have been appended
    /// since. "0-0" is never missing; an entry older than a stream that was trimmed cannot be told and counts as there.
    public func lacks(partition: Int, entryID: String) async throws -> Bool {
        guard entryID != "0-0" else { return false }
        let stream = keys.stream(partition)
        if try await !redis.xrange(stream, from: entryID, to: entryID, count: 1).isEmpty { return false }
        let first = try await redis.xrange(stream, count: 1).first?.id ?? "0-0"
        if StreamID.less(entryID, first), try await wasTrimmed(partition: partition) { return false }
        return true
    }

    /// Whether entries were ever trimmed or deleted from the partition's stream (Redis
    /// counts every entry added: more than it holds means some are gone).
    public func wasTrimmed(partition: Int) async throws -> Bool {
        let info = try await redis.xinfoStream(keys.stream(partition))
        guard let added = info["entries-added"]?.int, let length = info["length"]?.int else { return false }
        return added > length
    }

    static func firstID(_ reply: RedisValue) -> String {
        reply.array?.first?.array?.first?.string ?? "0-0"
    }

    static func decode(_ entries: [StreamEntry], partition: Int, cache: DecodedEvents?) -> Page {
        var page = Page(partition: partition, events: [], unreadable: [], lastEntryID: entries.last?.id, entries: entries.count)
        page.events.reserveCapacity(entries.count)
        for entry in entries {
            do {
                page.events.append(try EventLog.decode(entry, partition: partition, cache: cache))
            } catch {
                page.unreadable.append(Unreadable(partition: partition, entryID: entry.id, json: entry["event"] ?? "", reason: "\(error)"))
            }
        }
        return page
    }
}

extension LogReader {
    /// The entries of `partition` before `before` (and `before` itself when `inclusive`: a
    /// position's own entry is part of what came up to it), newest first, at most `count`.
    /// Past the stream's oldest entry, the archive's go on.
    public func page(partition: Int, before: String, inclusive: Bool = false, count: Int) async throws -> Page {
        guard before != "0-0" else { return Page(partition: partition, events: [], unreadable: [], lastEntryID: nil, entries: 0) }
        let end = inclusive ? before : "(" + before
        let reply = try await redis.command(["XREVRANGE", keys.stream(partition), end, "-", "COUNT", String(count)])
        var entries = try RedisClient.entries(reply)
        if let archive, entries.count < count {
            // Fewer than asked: the stream's oldest entry was reached (or `before` is older still).
            entries += try await archive.entries(
                partition: partition, before: entries.last?.id ?? before, inclusive: entries.isEmpty && inclusive,
                count: count - entries.count)
        }
        return Self.decode(entries, partition: partition, cache: nil)
    }
}
