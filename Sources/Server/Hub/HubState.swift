import EventLog
import Events

/// The hub's bookkeeping as a value, with no sockets and no I/O: which connections are
/// open, which are still being set up (and the live events held for them), and, for each
/// user with a live connection here, the rooms they are a joined member of. Each mutating
/// function takes what happened and returns what to do, in the manner of postgres-nio's
/// state machines; `Hub` holds it under one lock and carries the actions out. Who receives
/// an event is `Audience`'s rule, the same one the replay after `since` and
/// `parley-replay audit user` apply.
///
/// Bounded by the connections open here: everything is keyed by a connection or by a user
/// or room of one, and removed when the last connection that needs it closes; the events
/// held for a connection being set up are capped (`maxHeld`).
struct HubState: Sendable {
    typealias ConnectionID = UInt64

    /// An event and the log position just after it (what its `event` frame carries).
    struct Delivery: Sendable, Equatable {
        let event: LoggedEvent
        let position: LogPosition
    }

    let maxConnectionsPerUser: Int
    /// Live events held for one connection being set up, at most; past it the connection
    /// ends as too slow (its replay could not keep up with the log).
    let maxHeld: Int

    /// Where the hub's tail of the log is (nil until it has read the head).
    private(set) var position: LogPosition?
    private var nextID: ConnectionID = 0
    private var userOf: [ConnectionID: String] = [:]
    private var connectionsOf: [String: Set<ConnectionID>] = [:]
    private var held: [ConnectionID: [Delivery]] = [:]
    private var overflowed: Set<ConnectionID> = []
    private var live: [String: Set<ConnectionID>] = [:]
    private var viewers: [String: Viewer] = [:]
    private var joinedHere: [String: Set<String>] = [:]
    /// Live connections whose client's `since` is ahead of the hub in some partition (it
    /// was connected to an instance further ahead): what they already have is not sent
    /// again, until the hub has passed their `since`.
    private var ahead: [ConnectionID: LogPosition] = [:]

    init(maxConnectionsPerUser: Int, maxHeld: Int) {
        self.maxConnectionsPerUser = maxConnectionsPerUser
        self.maxHeld = maxHeld
    }

    var connectionCount: Int { userOf.count }

    /// Entries in all of the state's maps and sets together: what the open connections cost in bookkeeping. Back to 0
    /// once every connection has closed, whatever they did (`parley_ws_hub_entries`).
    var footprint: Int {
        userOf.count + connectionsOf.values.reduce(0) { $0 + 1 + $1.count } + held.values.reduce(0) { $0 + 1 + $1.count }
            + overflowed.count + live.values.reduce(0) { $0 + 1 + $1.count } + viewers.count
            + joinedHere.values.reduce(0) { $0 + 1 + $1.count } + ahead.count
    }

    /// The hub read the log's head: connections can be set up from here on.
    mutating func started(at head: LogPosition) {
        position = head
    }

    enum Opening: Equatable {
        /// Set up from `start`: live events after it are held until `activate`.
        case opened(ConnectionID, start: LogPosition)
        case tooMany(limit: Int)
        /// The hub has not read the log's head yet.
        case notStarted
    }

    /// A user opens a connection.
    mutating func open(userId: String) -> Opening {
        guard let position else { return .notStarted }
        if (connectionsOf[userId]?.count ?? 0) >= maxConnectionsPerUser { return .tooMany(limit: maxConnectionsPerUser) }
        nextID += 1
        userOf[nextID] = userId
        connectionsOf[userId, default: []].insert(nextID)
        held[nextID] = []
        return .opened(nextID, start: position)
    }

    /// What to do with a tailed event.
    struct Fanout: Equatable {
        /// The hub's position just after the event.
        var position: LogPosition
        /// Live connections to send the event to.
        var deliver: [ConnectionID] = []
        /// Connections being set up whose held events overflowed: end them.
        var overflowed: [ConnectionID] = []
    }

    /// An event read from the log's tail, after every event the hub had of its partition: the hub's position moves
    /// past it (`Fanout.position`, what its `event` frame carries).
    mutating func tailed(_ event: LoggedEvent) -> Fanout {
        var position = self.position ?? .start(partitions: event.partition + 1)
        position.advance(past: event)
        self.position = position
        var fanout = Fanout(position: position)
        if !held.isEmpty {
            // Through the values' indices: mutating while iterating `held.keys` would copy the
            // whole dictionary for every event.
            var index = held.startIndex
            while index != held.endIndex {
                held.values[index].append(Delivery(event: event, position: position))
                if held.values[index].count > maxHeld { fanout.overflowed.append(held.keys[index]) }
                held.formIndex(after: &index)
            }
            for id in fanout.overflowed {
                held[id] = nil
                overflowed.insert(id)
            }
        }
        guard let roomId = event.event.roomId else { return fanout }
        let recipients = Audience.recipients(of: event.event, joinedBefore: joinedHere[roomId] ?? [])
        for userId in recipients { fanout.deliver += live[userId] ?? [] }
        if !ahead.isEmpty {
            fanout.deliver.removeAll { ahead[$0].map { !$0.isBefore(event) } ?? false }
            ahead = ahead.filter { _, since in
                (0..<since.entryIDs.count).contains { StreamID.less(position.entryIDs[$0], since.entryIDs[$0]) }
            }
        }
        for (userId, _) in Audience.membershipChanges(event.event) where viewers[userId] != nil {
            _ = viewers[userId]!.receives(event.event)
            setJoined(userId, roomId, viewers[userId]!.rooms.contains(roomId))
        }
        return fanout
    }

    /// The hub read past entries of `partitions` it could not decode: its position there moves on to `reached`'s.
    mutating func reached(_ reached: LogPosition, in partitions: [Int]) {
        guard var position else { return }
        for partition in partitions { position.entryIDs[partition] = reached.entryIDs[partition] }
        self.position = position
    }

    enum Activation: Equatable {
        /// Send these held events, then the connection is live.
        case deliver([Delivery])
        /// Its held events overflowed meanwhile: end it as too slow.
        case overflowed
        /// It was closed meanwhile.
        case gone
    }

    /// A connection's hello and replay are written: it goes live. `viewer` is the user's
    /// membership at the connection's start position; held events it already has (not
    /// after `since`) are not sent again.
    mutating func activate(_ id: ConnectionID, viewer: Viewer, since: LogPosition?) -> Activation {
        guard let pending = held.removeValue(forKey: id), let userId = userOf[id] else {
            return overflowed.contains(id) ? .overflowed : .gone
        }
        var viewer = viewer
        var send: [Delivery] = []
        for delivery in pending where viewer.receives(delivery.event.event) {
            if since.map({ $0.isBefore(delivery.event) }) ?? true { send.append(delivery) }
        }
        for roomId in viewers[userId]?.rooms ?? [] where !viewer.rooms.contains(roomId) { setJoined(userId, roomId, false) }
        for roomId in viewer.rooms { setJoined(userId, roomId, true) }
        viewers[userId] = viewer
        live[userId, default: []].insert(id)
        if let since, let position, (0..<since.entryIDs.count).contains(where: { StreamID.less(position.entryIDs[$0], since.entryIDs[$0]) })
        {
            ahead[id] = since
        }
        return .deliver(send)
    }

    /// A connection ends; true when it was open.
    @discardableResult
    mutating func close(_ id: ConnectionID) -> Bool {
        overflowed.remove(id)
        held[id] = nil
        ahead[id] = nil
        guard let userId = userOf.removeValue(forKey: id) else { return false }
        connectionsOf[userId]?.remove(id)
        if connectionsOf[userId]?.isEmpty == true { connectionsOf[userId] = nil }
        live[userId]?.remove(id)
        if live[userId]?.isEmpty == true {
            live[userId] = nil
            for roomId in viewers[userId]?.rooms ?? [] { setJoined(userId, roomId, false) }
            viewers[userId] = nil
        }
        return true
    }

    /// The live connections of a room's other joined members here (for a typing signal).
    func typingTargets(roomId: String, from userId: String) -> [ConnectionID] {
        (joinedHere[roomId] ?? []).filter { $0 != userId }.flatMap { live[$0] ?? [] }
    }

    /// Whether `userId` has a live connection here and is a joined member of `roomId`.
    func isMember(_ userId: String, of roomId: String) -> Bool {
        viewers[userId]?.rooms.contains(roomId) ?? false
    }

    /// How many connections `userId` has open here.
    func connectionCount(of userId: String) -> Int { connectionsOf[userId]?.count ?? 0 }

    /// The users with a connection open here (their presence marks are renewed from it).
    var users: [String] { Array(connectionsOf.keys) }

    /// The rooms `userId` is a joined member of, if they have a live connection here.
    func rooms(of userId: String) -> Set<String>? { viewers[userId]?.rooms }

    /// The live connections of users other than `userId` who are joined members of any of `rooms` here, each once: a
    /// presence change reaches a connection once however many rooms its user shares with them.
    func presenceTargets(rooms: Set<String>, of userId: String) -> [ConnectionID] {
        var users: Set<String> = []
        for roomId in rooms { users.formUnion(joinedHere[roomId] ?? []) }
        users.remove(userId)
        return users.flatMap { live[$0] ?? [] }
    }

    /// Every open connection (to end them at shutdown).
    var allConnections: [ConnectionID] { Array(userOf.keys) }

    private mutating func setJoined(_ userId: String, _ roomId: String, _ joined: Bool) {
        if joined {
            joinedHere[roomId, default: []].insert(userId)
        } else {
            joinedHere[roomId]?.remove(userId)
            if joinedHere[roomId]?.isEmpty == true { joinedHere[roomId] = nil }
        }
    }
}
