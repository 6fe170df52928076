import Drivers
import EventLog
import Events
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import ServiceLifecycle

/// One connected WebSocket: a bounded queue of outgoing frames. A client that cannot keep
/// up overflows its queue and is closed; it never slows the hub or other clients.
final class HubConnection: Sendable {
    let id: UInt64
    let userId: String
    let frames: AsyncStream<String>
    private let continuation: AsyncStream<String>.Continuation
    private let overflow = NIOLockedValueBox(false)

    init(id: UInt64, userId: String, capacity: Int) {
        self.id = id
        self.userId = userId
        (frames, continuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingOldest(capacity))
    }

    /// Queues a frame; on overflow the queue is closed and the connection marked.
    func send(_ frame: String) {
        if case .dropped = continuation.yield(frame) {
            overflow.withLockedValue { $0 = true }
            continuation.finish()
        }
    }

    var overflowed: Bool { overflow.withLockedValue { $0 } }

    func finish() { continuation.finish() }
}

/// The WebSocket hub of one server instance: tails the log once (XREAD BLOCK over every
/// partition) and fans each event out to the connected users who may see it: the joined
/// members of its room, plus the user a membership event concerns (so an invite or a
/// removal reaches them). Membership is tracked from the events themselves, so after a
/// removal nothing more of the room reaches the removed user.
final class Hub: Service, Sendable {
    struct Session {
        let connection: HubConnection
        let hello: String
        let replay: [String]
    }

    private struct State {
        var position: LogPosition?
        var nextID: UInt64 = 0
        var connections: [UInt64: HubConnection] = [:]
        /// Connections being set up: the live events they will get once set up.
        var pending: [UInt64: [(LoggedEvent, LogPosition)]] = [:]
        var connectionsOfUser: [String: Set<UInt64>] = [:]
        var roomsOfUser: [String: Set<String>] = [:]
        var usersOfRoom: [String: Set<String>] = [:]
    }

    let log: EventLog
    let logger: Logger
    let queueCapacity: Int
    let maxReplay: Int
    let maxConnectionsPerUser: Int
    private let state = NIOLockedValueBox(State())

    init(log: EventLog, logger: Logger, queueCapacity: Int = 1024, maxReplay: Int = 10_000, maxConnectionsPerUser: Int = 32) {
        self.log = log
        self.logger = logger
        self.queueCapacity = queueCapacity
        self.maxReplay = maxReplay
        self.maxConnectionsPerUser = maxConnectionsPerUser
    }

    /// A user already has `maxConnectionsPerUser` WebSockets open here.
    struct TooManyConnections: Error {
        let limit: Int
    }

    var connectionCount: Int { state.withLockedValue { $0.connections.count } }

    /// Whether `userId` already has `maxConnectionsPerUser` connections here.
    func isAtConnectionLimit(_ userId: String) -> Bool {
        state.withLockedValue { ($0.connectionsOfUser[userId]?.count ?? 0) >= maxConnectionsPerUser }
    }

    func run() async throws {
        let head = try await log.head()
        state.withLockedValue { $0.position = head }
        try await cancelWhenGracefulShutdown {
            var position = head
            while !Task.isCancelled {
                do {
                    let events = try await self.log.tail(after: position, count: 1000, blockMs: 1000)
                    for event in events {
                        position.advance(past: event)
                        self.process(event, position: position)
                    }
                } catch is CancellationError {
                    break
                } catch {
                    self.logger.warning("hub cannot read the log", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        let connections = state.withLockedValue { Array($0.connections.values) }
        for connection in connections { connection.finish() }
    }

    // MARK: - Fan-out

    private func process(_ logged: LoggedEvent, position: LogPosition) {
        let frame = Frame.event(logged, position: position)
        let targets: [HubConnection] = state.withLockedValue { state in
            state.position = position
            for id in state.pending.keys { state.pending[id]?.append((logged, position)) }
            for (userId, joined) in Self.membershipChanges(logged.event) where state.connectionsOfUser[userId] != nil {
                Self.setMember(&state, userId: userId, roomId: logged.event.roomId ?? "", joined: joined)
            }
            let users = Self.recipients(logged.event, members: state.usersOfRoom[logged.event.roomId ?? ""] ?? [])
            return users.flatMap { state.connectionsOfUser[$0] ?? [] }
                .filter { state.pending[$0] == nil }
                .compactMap { state.connections[$0] }
        }
        for connection in targets { connection.send(frame) }
        if !targets.isEmpty { Counter(label: "parley.ws.events_fanned_out").increment(by: targets.count) }
    }

    /// Who joins (true) or stops being a member (false) of the event's room.
    static func membershipChanges(_ event: Event) -> [(String, Bool)] {
        switch event.data {
        case .roomCreated(let created):
            return created.kind == .direct ? (created.members ?? []).map { ($0, true) } : [(event.actorId, true)]
        case .memberJoined(let m): return [(m.userId, true)]
        case .memberLeft(let m), .memberRemoved(let m), .inviteDeclined(let m): return [(m.userId, false)]
        default: return []
        }
    }

    /// The users an event goes to: the room's joined members, plus the user a membership
    /// event concerns (an invitee, the removed member), plus the members a room starts with.
    static func recipients(_ event: Event, members: Set<String>) -> Set<String> {
        guard event.roomId != nil else { return [] }  // user events go to nobody
        var users = members
        if let concerned = event.data.member?.userId { users.insert(concerned) }
        if case .roomCreated = event.data { users.formUnion(membershipChanges(event).map(\.0)) }
        return users
    }

    private static func setMember(_ state: inout State, userId: String, roomId: String, joined: Bool) {
        if joined {
            state.roomsOfUser[userId, default: []].insert(roomId)
            state.usersOfRoom[roomId, default: []].insert(userId)
        } else {
            state.roomsOfUser[userId]?.remove(roomId)
            state.usersOfRoom[roomId]?.remove(userId)
            if state.usersOfRoom[roomId]?.isEmpty == true { state.usersOfRoom[roomId] = nil }
        }
    }

    // MARK: - Connections

    /// Sets up a connection of `userId`: its hello, the events it missed since `since`
    /// (replayed from the log), then every live event, with no gap and no duplicate at
    /// the seam: live events that arrive while it is set up are held for it.
    func connect(userId: String, since: LogPosition?, sinceGiven: Bool) async throws -> Session {
        while state.withLockedValue({ $0.position == nil }) { try await Task.sleep(for: .milliseconds(20)) }
        let connection: HubConnection
        let start: LogPosition
        let limit = maxConnectionsPerUser
        (connection, start) = try state.withLockedValue { state in
            if (state.connectionsOfUser[userId]?.count ?? 0) >= limit { throw TooManyConnections(limit: limit) }
            state.nextID += 1
            let connection = HubConnection(id: state.nextID, userId: userId, capacity: queueCapacity)
            state.connections[connection.id] = connection
            state.pending[connection.id] = []
            state.connectionsOfUser[userId, default: []].insert(connection.id)
            return (connection, state.position!)
        }
        Gauge(label: "parley.ws.connections").record(connectionCount)
        do {
            var rooms = try await log.joinedRooms(of: userId)
            var replay: [String] = []
            var recovered = !sinceGiven || since != nil
            if let since {
                (replay, recovered) = try await self.replay(userId: userId, rooms: rooms, from: since, to: start)
            }
            state.withLockedValue { state in
                for (logged, position) in state.pending[connection.id] ?? [] {
                    for (user, joined) in Self.membershipChanges(logged.event) where user == userId {
                        if joined { rooms.insert(logged.event.roomId ?? "") } else { rooms.remove(logged.event.roomId ?? "") }
                    }
                    if Self.recipients(logged.event, members: rooms.contains(logged.event.roomId ?? "") ? [userId] : []).contains(userId) {
                        connection.send(Frame.event(logged, position: position))
                    }
                }
                state.pending[connection.id] = nil
                for roomId in state.roomsOfUser[userId] ?? [] where !rooms.contains(roomId) {
                    Self.setMember(&state, userId: userId, roomId: roomId, joined: false)
                }
                for roomId in rooms { Self.setMember(&state, userId: userId, roomId: roomId, joined: true) }
            }
            return Session(connection: connection, hello: Frame.hello(userId: userId, position: start, recovered: recovered), replay: replay)
        } catch {
            disconnect(connection)
            throw error
        }
    }

    /// The visible events after `from` up to `to`; `recovered` is false when the log no
    /// longer holds everything after `from` or there is too much to replay.
    private func replay(userId: String, rooms: Set<String>, from: LogPosition, to: LogPosition) async throws -> ([String], Bool) {
        let oldest = try await log.oldest()
        var recovered = true
        for partition in 0..<oldest.count where StreamID.less(from.entryIDs[partition], oldest[partition]) {
            // Entries were trimmed (or deleted) from this stream and the client's position
            // is before what is left: some of what it missed is gone.
            let info = try await log.redis.xinfoStream(log.partitioning.streamKey(partition))
            if let added = info["entries-added"]?.int, let length = info["length"]?.int, added > length { recovered = false }
        }
        var frames: [String] = []
        var position = from
        var cursor = from
        var visibleRooms = rooms
        while true {
            let batch = try await log.read(after: cursor, count: 1000).filter { !StreamID.less(to.entryIDs[$0.partition], $0.entryID) }
            if batch.isEmpty { break }
            for logged in batch {
                cursor.advance(past: logged)
                position.advance(past: logged)
                for (user, joined) in Self.membershipChanges(logged.event) where user == userId {
                    if joined { visibleRooms.insert(logged.event.roomId ?? "") }
                }
                if Self.recipients(logged.event, members: visibleRooms.contains(logged.event.roomId ?? "") ? [userId] : []).contains(userId) {
                    frames.append(Frame.event(logged, position: position))
                    if frames.count > maxReplay { return ([], false) }
                }
            }
        }
        return (frames, recovered)
    }

    func disconnect(_ connection: HubConnection) {
        state.withLockedValue { state in
            state.connections[connection.id] = nil
            state.pending[connection.id] = nil
            state.connectionsOfUser[connection.userId]?.remove(connection.id)
            if state.connectionsOfUser[connection.userId]?.isEmpty == true {
                state.connectionsOfUser[connection.userId] = nil
                for roomId in state.roomsOfUser[connection.userId] ?? [] {
                    Self.setMember(&state, userId: connection.userId, roomId: roomId, joined: false)
                }
                state.roomsOfUser[connection.userId] = nil
            }
        }
        connection.finish()
        Gauge(label: "parley.ws.connections").record(connectionCount)
    }

    /// Whether `userId` is, as far as this hub knows, a joined member of `roomId`.
    func isMember(_ userId: String, of roomId: String) -> Bool {
        state.withLockedValue { $0.roomsOfUser[userId]?.contains(roomId) ?? false }
    }

    /// A typing signal (from any instance, through pub/sub) to the room's other members here.
    func typing(roomId: String, userId: String) {
        let frame = Frame.typing(roomId: roomId, userId: userId)
        let targets = state.withLockedValue { state in
            (state.usersOfRoom[roomId] ?? []).filter { $0 != userId }.flatMap { state.connectionsOfUser[$0] ?? [] }
                .filter { state.pending[$0] == nil }.compactMap { state.connections[$0] }
        }
        for connection in targets { connection.send(frame) }
    }
}
