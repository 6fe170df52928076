import EventLog
import Events
import Foundation
import TestSupport
import Testing

@testable import Projections

@Suite("Projectors against real PostgreSQL and the MongoDB-protocol server")
struct ProjectionTests {
    @Test func aScriptedLogIsProjectedFieldByField() async throws {
        let f = try await ProjectionFixture()
        let ids = try await f.workload()
        let (ada, bea, cyd) = (ids["ada"]!, ids["bea"]!, ids["cyd"]!)
        try await f.project()

        // Users: no password hash in what readers get, but login can find it.
        let user = try #require(try await f.read.user(username: "BEA"))
        #expect(user.id == bea && user.displayName == "Bea")
        #expect(try await f.read.credentials(username: "bea")?.passwordHash == "$2b$12$hash-of-bea")

        // The group room: renamed, last message deleted, members with roles and states.
        let club = try #require(try await f.read.room(id: "club"))
        #expect(club.kind == .group && club.name == "The Club" && club.createdBy == ada && club.lastSeq == 3)
        let members = try await f.read.members(of: "club")
        #expect(members.map(\.userId).sorted() == [ada, bea, cyd].sorted())
        #expect(members.first { $0.userId == ada }?.role == .owner)
        #expect(members.first { $0.userId == bea }?.role == .admin)
        #expect(members.first { $0.userId == cyd }?.state == .invited)
        #expect(try await f.read.invites(of: cyd).map(\.roomId) == ["club"])
        #expect(try await f.read.invites(of: cyd).first?.invitedBy == ada)

        // Room lists: unread counts (own messages count as read), last message, my role.
        let adaRooms = try await f.read.rooms(of: ada)
        #expect(adaRooms.map(\.room.id) == [Partitioning.directRoomId(ada, cyd), "club"])
        let adaClub = try #require(adaRooms.first { $0.room.id == "club" })
        #expect(adaClub.myRole == .owner && adaClub.unreadCount == 0)
        #expect(adaClub.lastMessage?.id == "c3" && adaClub.lastMessage?.deleted == true && adaClub.lastMessage?.body == nil)
        let beaClub = try #require(try await f.read.rooms(of: bea).first { $0.room.id == "club" })
        #expect(beaClub.unreadCount == 1)  // read up to 2 of 3
        let cydRooms = try await f.read.rooms(of: cyd)
        #expect(cydRooms.count == 1 && cydRooms[0].room.kind == .direct && cydRooms[0].unreadCount == 1)
        #expect(cydRooms[0].lastMessage?.body == "psst")

        // Messages: the edit history, the deletion hiding the body, replies, pages by seq.
        let page = try await f.history.page(roomId: "club", limit: 2)
        #expect(page.messages.map(\.seq) == [3, 2] && page.hasMore)
        let c1 = try #require(try await f.history.message(id: "c1"))
        #expect(c1.body == "hello!!" && c1.senderId == bea && c1.clientMsgId == "k1" && c1.editedAt != nil && !c1.deleted)
        #expect(c1.edits.map(\.body) == ["hello!", "hello!!"])
        let c3 = try #require(try await f.history.message(id: "c3"))
        #expect(c3.deleted && c3.body == nil)
        let raw = try #require(try await f.messages.documents().findOne(["_id": "c3"]))
        #expect(raw["body"] == .null && raw["firstBody"] == .null)  // gone from the read model, not only hidden
        #expect(try await f.history.message(id: "c2")?.replyTo == "c1")
        let forward = try await f.history.page(roomId: "club", after: 1, limit: 5)
        #expect(forward.messages.map(\.seq) == [2, 3] && !forward.hasMore)
        try await f.cleanUp()
    }

    /// A message edited without end keeps its newest edits only, so its document cannot outgrow what MongoDB allows
    /// (the log keeps them all).
    @Test func aMessagesEditHistoryIsBoundedToItsNewestEdits() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        let ids = try await f.workload()
        try await f.log.execute(
            .send(roomId: "club", messageId: "often", body: "first", clientMsgId: nil, replyTo: nil), actor: ids["ada"]!)
        let edits = Int(MessagesProjector.maxEdits) + 5
        for n in 0..<edits { try await f.log.execute(.edit(roomId: "club", messageId: "often", body: "edit \(n)"), actor: ids["ada"]!) }
        try await f.project()
        let message = try #require(try await f.history.message(id: "often"))
        #expect(message.body == "edit \(edits - 1)")
        #expect(message.edits.count == Int(MessagesProjector.maxEdits))
        #expect(message.edits.first?.body == "edit 5" && message.edits.last?.body == "edit \(edits - 1)")
        try await f.cleanUp()
    }

    @Test func everyBatchDeliveredTwiceLeavesIdenticalReadModels() async throws {
        let f = try await ProjectionFixture(partitions: 1)
        _ = try await f.workload()
        let events = try await f.log.read(partition: 0, count: 10_000)
        // Each event as its own batch, each batch twice.
        for event in events {
            for _ in 0..<2 {
                try await f.metadata.apply([event], partition: 0)
                try await f.messages.apply([event], partition: 0)
            }
        }
        let once = try await f.snapshot()
        #expect(!once.rows.isEmpty && once.documents.count == 4)
        // The whole log again as one batch, with the checkpoints wiped: the writes
        // themselves are idempotent, not only the checkpoint skip.
        try await f.postgres.query("DELETE FROM \(f.schema).projector_checkpoints")
        try await f.mongo.collection(f.schema + "_checkpoints").deleteMany([:])
        try await f.metadata.apply(events, partition: 0)
        try await f.messages.apply(events, partition: 0)
        let twice = try await f.snapshot()
        #expect(twice.rows == once.rows)
        #expect(twice.documents == once.documents)
        try await f.cleanUp()
    }

    @Test func membershipChangesFoldedInOneBatchEqualThemAppliedOneByOne() async throws {
        let f = try await ProjectionFixture()
        let ids = try await f.workload()
        let (ada, bea, cyd) = (ids["ada"]!, ids["bea"]!, ids["cyd"]!)
        // Churn: decline, re-invite, join, promote, demote, leave, re-invite, join, remove.
        try await f.log.execute(.decline(roomId: "club"), actor: cyd)
        try await f.log.execute(.invite(roomId: "club", userId: cyd), actor: bea)
        try await f.log.execute(.join(roomId: "club"), actor: cyd)
        try await f.log.execute(.setRole(roomId: "club", userId: cyd, role: .admin), actor: ada)
        try await f.log.execute(.setRole(roomId: "club", userId: cyd, role: .member), actor: ada)
        try await f.log.execute(.leave(roomId: "club"), actor: cyd)
        try await f.log.execute(.invite(roomId: "club", userId: cyd), actor: ada)
        try await f.log.execute(.join(roomId: "club"), actor: cyd)
        try await f.log.execute(.send(roomId: "club", messageId: "c9", body: "back", clientMsgId: nil, replyTo: nil), actor: cyd)
        try await f.log.execute(.remove(roomId: "club", userId: bea), actor: ada)
        try await f.log.execute(.createGroup(roomId: "late", name: "Late", invite: [bea, cyd]), actor: ada)
        try await f.log.execute(.join(roomId: "late"), actor: cyd)
        try await f.log.execute(.decline(roomId: "late"), actor: bea)
        var events: [LoggedEvent] = []
        for partition in 0..<f.log.partitioning.count { events += try await f.log.read(partition: partition, count: 10_000) }

        // The fixture's schema gets each event in a batch of its own; another one gets each
        // partition in one batch.
        for event in events { try await f.metadata.apply([event], partition: event.partition) }
        let batched = MetadataProjector(postgres: f.postgres, schema: f.schema + "_b")
        try await batched.prepare()
        for partition in 0..<f.log.partitioning.count {
            try await batched.apply(events.filter { $0.partition == partition }, partition: partition)
        }
        for table in ["users", "rooms", "room_members"] {
            let one = try await f.postgres.query("SELECT * FROM \(f.schema).\(table) ORDER BY 1, 2").map { $0.values }
            let all = try await f.postgres.query("SELECT * FROM \(f.schema)_b.\(table) ORDER BY 1, 2").map { $0.values }
            #expect(one == all, "\(table)")
        }
        let cydInClub = try await f.read.membership(roomId: "club", userId: cyd)
        #expect(cydInClub?.state == .joined && cydInClub?.role == .member && cydInClub?.lastReadSeq == 4)
        #expect(try await f.read.membership(roomId: "club", userId: bea)?.state == .removed)
        #expect(try await f.read.membership(roomId: "late", userId: bea)?.state == .declined)
        #expect(try await f.read.invites(of: cyd).isEmpty)
        try await f.postgres.query("DROP SCHEMA \(f.schema)_b CASCADE")
        try await f.cleanUp()
    }
}
