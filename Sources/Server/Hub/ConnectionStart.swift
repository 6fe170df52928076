import EventLog
import Events

/// Where a new connection starts: the user's membership at the hub's position when the
/// connection was opened, and, for a client that reconnects with `since`, the frames of
/// every event after `since` up to that position that `Audience` says reach the user,
/// judged by the membership the user had at each event, not the one they have now (a
/// member removed while offline is replayed what was said before the removal).
///
/// The membership is read with the log position it holds at (`EventLog.joinedRooms`) and
/// wound back over the user's own membership events to where it is needed. A removal does
/// not tell whether the removed user had joined or was only invited; the partition is then
/// read backwards from `since` for the user's previous membership event in that room, at
/// most `lookBack` entries. Found nowhere that far back, the room is taken as not joined
/// (nothing that may not be theirs is sent) and `recovered` is false.
struct ConnectionStart {
    let log: EventLog
    let userId: String
    /// More visible events than this after `since`: none are replayed, `recovered` is false.
    let maxReplay: Int
    var lookBack = 20_000
    var pageSize = 1000
    /// A replay window of at most this many events is read once and kept; a larger one is
    /// read again for the frames.
    var keepInMemory = 5000
    /// The most log entries read to replay one reconnection: a `since` further back than this (a client that was away for
    /// a week) is not replayed at all (`recovered` false; the client refetches by HTTP), so one connection costs the
    /// server a bounded amount of reading whatever position it names.
    var maxScan = 200_000

    struct Result {
        /// The user's membership at `start`.
        var viewer: Viewer
        var frames: [String]
        var recovered: Bool
    }

    func run(start: LogPosition, since: LogPosition?) async throws -> Result {
        let (rooms, snapshot) = try await log.joinedRooms(of: userId)
        var base = start
        if let since {
            for p in base.entryIDs.indices where StreamID.less(since.entryIDs[p], start.entryIDs[p]) {
                base.entryIDs[p] = since.entryIDs[p]
            }
        }
        // The user's own membership events from `base` to the snapshot, oldest first; the
        // replay window's events are kept too while they are few, so that a short replay
        // reads the log once.
        var mine: [LoggedEvent] = []
        var window: [LoggedEvent]? = since == nil ? nil : []
        var cursor = base
        var scanned = 0
        while true {
            let page = try await log.reader.merged(after: cursor, until: snapshot, count: pageSize)
            if page.isEmpty { break }
            scanned += page.events.count
            if since != nil, scanned > maxScan {
                // Too far back to replay: start as a new connection does, and say nothing was recovered.
                var fresh = try await run(start: start, since: nil)
                fresh.recovered = false
                return fresh
            }
            cursor = page.reached
            mine += page.events.filter { Audience.concerns(userId, $0.event) }
            if window != nil {
                window! += page.events.filter { !start.isBefore($0) }
                if window!.count > keepInMemory { window = nil }
            }
        }
        let now = Viewer(userId: userId, rooms: rooms)
        var (atBase, unresolved) = now.rewound(over: mine.map(\.event))
        if !unresolved.isEmpty {
            var told: [String: Bool] = [:]
            for roomId in unresolved { told[roomId] = try await joinedBefore(roomId, position: base) }
            (atBase, unresolved) = now.rewound(over: mine.map(\.event)) { told[$0] ?? nil }
        }
        var atStart = atBase
        for logged in mine where !start.isBefore(logged) { _ = atStart.receives(logged.event) }
        guard let since else { return Result(viewer: atStart, frames: [], recovered: true) }

        var recovered = unresolved.isEmpty
        if try await log.reader.lostEntries(after: since) { recovered = false }
        if try await log.reader.namesLostEntries(since) { recovered = false }
        var replay = Replay(viewer: atBase, since: since, maxFrames: maxReplay)
        if let window {
            replay.take(window)
        } else {
            cursor = base
            while replay.frames != nil {
                let page = try await log.reader.merged(after: cursor, until: start, count: pageSize)
                if page.isEmpty { break }
                cursor = page.reached
                replay.take(page.events)
            }
        }
        return Result(viewer: atStart, frames: replay.frames ?? [], recovered: recovered && replay.frames != nil)
    }

    /// The replay's frames, event by event, oldest first.
    private struct Replay {
        var viewer: Viewer
        /// Positions in the frames never go back from the client's own (where `since` is
        /// ahead of this instance's hub, it stays as it was).
        var position: LogPosition
        let since: LogPosition
        let maxFrames: Int
        /// nil once there are more than `maxFrames`: none are sent, the client refetches.
        var frames: [String]? = []

        init(viewer: Viewer, since: LogPosition, maxFrames: Int) {
            self.viewer = viewer
            self.position = since
            self.since = since
            self.maxFrames = maxFrames
        }

        mutating func take(_ events: [LoggedEvent]) {
            for logged in events where frames != nil {
                position.advance(past: logged)
                guard viewer.receives(logged.event), since.isBefore(logged) else { continue }
                frames!.append(Frame.event(logged, position: position))
                if frames!.count > maxFrames { frames = nil }
            }
        }
    }

    /// Whether the user was a joined member of `roomId` at `position`, from their last
    /// membership event in the room before it; nil when none is within `lookBack` entries.
    private func joinedBefore(_ roomId: String, position: LogPosition) async throws -> Bool? {
        let partition = log.partitioning.partition(ofRoom: roomId)
        var before = position.entryIDs[partition]
        var read = 0
        while read < lookBack {
            let page = try await log.reader.page(partition: partition, before: before, inclusive: read == 0, count: pageSize)
            for logged in page.events where logged.event.roomId == roomId {
                if let joined = Audience.joinedAfter(userId, logged.event) { return joined }
            }
            guard page.entries == pageSize, let last = page.lastEntryID else {
                // The start of the log: never a member, unless its oldest entries are gone (trimmed with no archive to
                // read them from: with one, the pages above went on into it).
                if log.reader.archive != nil { return false }
                return try await log.reader.wasTrimmed(partition: partition) ? nil : false
            }
            before = last
            read += page.entries
        }
        return nil
    }
}
