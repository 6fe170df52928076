import EventLog
import Events
import Foundation
import Testing

@testable import Server

/// The hub's bookkeeping without sockets: what each tailed event does, what a connection
/// being set up is held and then sent, and what ends it.
@Suite("HubState")
struct HubStateTests {
    var entry = 0

    mutating func logged(_ actor: String, _ room: String, _ data: EventData) -> LoggedEvent {
        entry += 1
        return LoggedEvent(
            partition: 0, entryID: "1-\(entry)", event: Event(id: "e\(entry)", at: Date(), actorId: actor, roomId: room, data: data),
            json: "")
    }

    mutating func message(_ room: String) -> LoggedEvent { logged("ann", room, .messageSent(.init(messageId: "m\(entry)", body: "hi"))) }

    static func position(_ event: LoggedEvent) -> LogPosition { LogPosition(entryIDs: [event.entryID]) }

    static func opened(_ opening: HubState.Opening) throws -> HubState.ConnectionID {
        struct NotOpened: Error { let opening: HubState.Opening }
        guard case .opened(let id, _) = opening else { throw NotOpened(opening: opening) }
        return id
    }

    @Test mutating func liveEventsReachJoinedMembersAndARemovalEndsThem() throws {
        var state = HubState(maxConnectionsPerUser: 2, maxHeld: 100)
        #expect(state.open(userId: "bob") == .notStarted)
        state.started(at: .start(partitions: 1))
        let bob = try Self.opened(state.open(userId: "bob"))
        // Held while it is set up: nothing is sent to it yet.
        let early = message("club")
        #expect(state.tailed(early).deliver.isEmpty)
        guard case .deliver(let held) = state.activate(bob, viewer: Viewer(userId: "bob", rooms: ["club"]), since: nil) else {
            Issue.record("not activated")
            return
        }
        #expect(held.map(\.event) == [early])
        #expect(state.isMember("bob", of: "club"))
        let live = message("club")
        #expect(state.tailed(live).deliver == [bob])
        let elsewhere = message("other")
        #expect(state.tailed(elsewhere).deliver.isEmpty)
        let removal = logged("ann", "club", .memberRemoved(.init(userId: "bob")))
        #expect(state.tailed(removal).deliver == [bob])
        let after = message("club")
        #expect(state.tailed(after).deliver.isEmpty)
        #expect(!state.isMember("bob", of: "club"))
        // An invite reaches the invitee, who then joins and hears the room.
        let invite = logged("ann", "club", .memberInvited(.init(userId: "bob", role: .member)))
        #expect(state.tailed(invite).deliver == [bob])
        let join = logged("bob", "club", .memberJoined(.init(userId: "bob", role: .member)))
        #expect(state.tailed(join).deliver == [bob])
        let again = message("club")
        #expect(state.tailed(again).deliver == [bob])
        #expect(state.close(bob) && state.connectionCount == 0 && !state.isMember("bob", of: "club"))
    }

    @Test mutating func aHeldEventTheClientAlreadyHasIsNotSentTwiceAndTooManyHeldEndsTheConnection() throws {
        var state = HubState(maxConnectionsPerUser: 1, maxHeld: 2)
        state.started(at: .start(partitions: 1))
        let carl = try Self.opened(state.open(userId: "carl"))
        #expect(state.open(userId: "carl") == .tooMany(limit: 1))
        let first = message("r")
        let second = message("r")
        _ = state.tailed(first)
        _ = state.tailed(second)
        // The client's `since` (from an instance further ahead) already covers `first`.
        guard case .deliver(let held) = state.activate(carl, viewer: Viewer(userId: "carl", rooms: ["r"]), since: Self.position(first))
        else {
            Issue.record("not activated")
            return
        }
        #expect(held.map(\.event) == [second])
        let dan = try Self.opened(state.open(userId: "dan"))
        var overflowed: [HubState.ConnectionID] = []
        for _ in 0..<3 {
            let event = message("r")
            overflowed += state.tailed(event).overflowed
        }
        #expect(overflowed == [dan])
        #expect(state.activate(dan, viewer: Viewer(userId: "dan", rooms: []), since: nil) == .overflowed)
        state.close(dan)
        #expect(state.activate(dan, viewer: Viewer(userId: "dan", rooms: []), since: nil) == .gone)
    }

    /// Connections that come and go all day leave nothing behind: after a few thousand opened, set up, fed events and
    /// closed in every order (some closed while still being set up, some after overflowing), the bookkeeping is empty.
    @Test mutating func connectionsThatComeAndGoLeaveNothingBehind() throws {
        var state = HubState(maxConnectionsPerUser: 8, maxHeld: 3)
        state.started(at: .start(partitions: 1))
        var open: [HubState.ConnectionID] = []
        var random = SplitMix64(seed: 7)
        for cycle in 0..<3000 {
            let user = "u\(cycle % 50)"
            if let id = try? Self.opened(state.open(userId: user)) {
                if !cycle.isMultiple(of: 5) {
                    _ = state.activate(id, viewer: Viewer(userId: user, rooms: ["r\(cycle % 7)", "r\(cycle % 3)"]), since: nil)
                }
                open.append(id)
            }
            let event = message("r\(cycle % 7)")
            _ = state.tailed(event)
            while open.count > 20 { state.close(open.remove(at: Int(random.next() % UInt64(open.count)))) }
        }
        #expect(state.footprint > 0)
        for id in open { state.close(id) }
        #expect(state.footprint == 0 && state.connectionCount == 0)
    }

    @Test mutating func typingGoesToTheOtherJoinedMembersWithALiveConnection() throws {
        var state = HubState(maxConnectionsPerUser: 4, maxHeld: 10)
        state.started(at: .start(partitions: 1))
        let ann = try Self.opened(state.open(userId: "ann"))
        let bob = try Self.opened(state.open(userId: "bob"))
        let bobTab = try Self.opened(state.open(userId: "bob"))
        _ = state.activate(ann, viewer: Viewer(userId: "ann", rooms: ["r"]), since: nil)
        _ = state.activate(bob, viewer: Viewer(userId: "bob", rooms: ["r"]), since: nil)
        #expect(state.typingTargets(roomId: "r", from: "ann") == [bob])  // bob's second tab is not live yet
        _ = state.activate(bobTab, viewer: Viewer(userId: "bob", rooms: ["r"]), since: nil)
        #expect(Set(state.typingTargets(roomId: "r", from: "ann")) == [bob, bobTab])
        #expect(state.typingTargets(roomId: "r", from: "bob") == [ann])
        state.close(bob)
        #expect(state.typingTargets(roomId: "r", from: "ann") == [bobTab])
    }
}
