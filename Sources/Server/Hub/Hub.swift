import Drivers
import EventLog
import Events
import Foundation
import Logging
import Metrics
import NIOConcurrencyHelpers
import NIOCore
import NIOWebSocket
import ServiceLifecycle

/// One connected WebSocket. Frames are written straight onto its NIO channel, on the
/// channel's event loop, so a delivery costs no task switch: the hub hands each event to
/// each event loop once, and the loop writes it to its recipients. The frames a connection
/// has been handed and the kernel has not yet taken are bounded (`capacity`): a client that
/// cannot keep up overflows it and is closed (4001); it never slows the hub or other clients.
final class HubConnection: Sendable {
    /// Why the server ends a connection on its own.
    enum Ending: Sendable { case overflow, idle, shutdown }

    let id: UInt64
    let userId: String
    let channel: any Channel
    let capacity: Int
    private struct State {
        /// Frames handed to the channel and not yet written to the socket.
        var inFlight = 0
        /// Set once; after it nothing more is written.
        var ending: Ending?
        var waiter: CheckedContinuation<Ending?, Never>?
    }
    private let state = NIOLockedValueBox(State())
    /// See `frameEncoder()`; touched on the channel's event loop only.
    private let encoder: NIOLoopBoundBox<ChannelHandlerContext?>

    init(id: UInt64, userId: String, channel: any Channel, capacity: Int) {
        self.id = id
        self.userId = userId
        self.channel = channel
        self.capacity = capacity
        self.encoder = .makeEmptyBox(valueType: ChannelHandlerContext.self, eventLoop: channel.eventLoop)
    }

    /// Sends a text frame, from any thread; frames sent from one task go out in order.
    func send(_ text: String) {
        let frame = Self.textFrame(text)
        let loop = channel.eventLoop
        if loop.inEventLoop { write(frame) } else { loop.execute { self.write(frame) } }
    }

    /// Sends `text` to every connection in `targets`: the frame is encoded once, and handed
    /// to each event loop once, however many of its connections receive it.
    static func send(_ text: String, to targets: [HubConnection]) {
        guard !targets.isEmpty else { return }
        let frame = textFrame(text)
        var byLoop: [ObjectIdentifier: (loop: any EventLoop, connections: [HubConnection])] = [:]
        for connection in targets {
            let loop = connection.channel.eventLoop
            byLoop[ObjectIdentifier(loop), default: (loop, [])].connections.append(connection)
        }
        for (_, group) in byLoop {
            let connections = group.connections
            group.loop.execute { for connection in connections { connection.write(frame) } }
        }
    }

    /// A server's text frame (final, unmasked) around `text`, header and payload in one
    /// buffer. A server's frames are the same bytes for every recipient, so one buffer is
    /// shared by all of them, where NIO's encoder would add a header buffer per recipient.
    static func textFrame(_ text: String) -> ByteBuffer {
        let count = text.utf8.count
        var frame = ByteBufferAllocator().buffer(capacity: count + 10)
        frame.writeInteger(UInt8(0x81))  // FIN, text
        if count <= 125 {
            frame.writeInteger(UInt8(count))
        } else if count <= 0xFFFF {
            frame.writeInteger(UInt8(126))
            frame.writeInteger(UInt16(count))
        } else {
            frame.writeInteger(UInt8(127))
            frame.writeInteger(UInt64(count))
        }
        frame.writeString(text)
        return frame
    }

    /// Writes one encoded frame; on the channel's event loop only. Past `capacity` frames
    /// in flight the connection ends as too slow instead.
    private func write(_ frame: ByteBuffer) {
        enum Outcome { case write, skip, overflow }
        let outcome = state.withLockedValue { state -> Outcome in
            guard state.ending == nil else { return .skip }
            guard state.inFlight < capacity else { return .overflow }
            state.inFlight += 1
            return .write
        }
        switch outcome {
        case .skip: return
        case .overflow: end(.overflow)
        case .write:
            let promise = channel.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete { _ in self.state.withLockedValue { $0.inFlight -= 1 } }
            guard let encoder = frameEncoder() else {
                // No encoder (the channel is closing): the write fails and frees its place.
                promise.fail(ChannelError.ioOnClosedChannel)
                return
            }
            // Below NIO's frame encoder: the bytes are a frame already.
            encoder.writeAndFlush(NIOAny(frame), promise: promise)
        }
    }

    /// The context of the channel's `WebSocketFrameEncoder`, found on the first write:
    /// writing through it sends bytes on toward the socket, past the encoder.
    private func frameEncoder() -> ChannelHandlerContext? {
        if let context = encoder.value { return context }
        let context = try? channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self)
        encoder.value = context
        return context
    }

    /// Ends the connection from the server's side (the first reason given wins): nothing
    /// more is written, and `waitForEnding` returns.
    func end(_ ending: Ending) {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Ending?, Never>? in
            guard state.ending == nil else { return nil }
            state.ending = ending
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: ending)
    }

    /// Returns why the server ends this connection once it does, or nil when the calling
    /// task is cancelled first. No polling: idle connections cost no wake-ups.
    func waitForEnding() async -> Ending? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (waiter: CheckedContinuation<Ending?, Never>) in
                let now = state.withLockedValue { state -> Ending?? in
                    if let ending = state.ending { return .some(ending) }
                    // Cancelled already (the flag is set before `onCancel` runs, which takes
                    // this lock): do not wait for a resume that will not come.
                    if Task.isCancelled { return .some(nil) }
                    state.waiter = waiter
                    return nil
                }
                if let now { waiter.resume(returning: now) }
            }
        } onCancel: {
            let waiter = state.withLockedValue { state -> CheckedContinuation<Ending?, Never>? in
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(returning: nil)
        }
    }
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
        /// The rooms the user had joined at the connection's start position.
        let rooms: Set<String>
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
    /// Made once (the metrics system is bootstrapped before the hub exists): making a
    /// counter looks it up in the registry, which cost more than the fan-out itself.
    private let fannedOut = Counter(label: "parley.ws.events_fanned_out")

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
        for connection in connections { connection.end(.shutdown) }
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
        HubConnection.send(frame, to: targets)
        if !targets.isEmpty { fannedOut.increment(by: targets.count) }
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

    /// Sets up a connection of `userId`: its hello and the events it missed since `since`
    /// (replayed from the log). Live events that arrive meanwhile are held for it until
    /// `activate`, which the session calls once hello and replay are written: no gap and
    /// no duplicate at the seam.
    func connect(userId: String, channel: any Channel, since: LogPosition?, sinceGiven: Bool) async throws -> Session {
        while state.withLockedValue({ $0.position == nil }) { try await Task.sleep(for: .milliseconds(20)) }
        let connection: HubConnection
        let start: LogPosition
        let limit = maxConnectionsPerUser
        (connection, start) = try state.withLockedValue { state in
            if (state.connectionsOfUser[userId]?.count ?? 0) >= limit { throw TooManyConnections(limit: limit) }
            state.nextID += 1
            let connection = HubConnection(id: state.nextID, userId: userId, channel: channel, capacity: queueCapacity)
            state.connections[connection.id] = connection
            state.pending[connection.id] = []
            state.connectionsOfUser[userId, default: []].insert(connection.id)
            return (connection, state.position!)
        }
        Gauge(label: "parley.ws.connections").record(connectionCount)
        do {
            let rooms = try await log.joinedRooms(of: userId)
            var replay: [String] = []
            var recovered = !sinceGiven || since != nil
            if let since {
                (replay, recovered) = try await self.replay(userId: userId, rooms: rooms, from: since, to: start)
            }
            return Session(
                connection: connection, hello: Frame.hello(userId: userId, position: start, recovered: recovered), replay: replay,
                rooms: rooms)
        } catch {
            disconnect(connection)
            throw error
        }
    }

    /// Makes a connection live: sends it the events held since it was set up, then every
    /// live event it may see.
    func activate(_ session: Session) {
        let connection = session.connection
        let userId = connection.userId
        var rooms = session.rooms
        state.withLockedValue { state in
            guard let held = state.pending[connection.id] else { return }  // disconnected meanwhile
            for (logged, position) in held {
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
        connection.end(.shutdown)
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
        HubConnection.send(frame, to: targets)
    }
}
