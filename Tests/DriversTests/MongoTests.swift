import Drivers
import Foundation
import TestSupport
import Testing

@Suite("BSON conversion (no server)")
struct BSONTests {
    @Test func documentsRoundTripThroughLibbsonKeepingTypesAndOrder() {
        let document: BSONDocument = [
            "_id": "m1", "seq": .int64(42), "small": .int32(7), "ratio": 0.5, "ok": true, "none": nil,
            "sentAt": .date(1_764_000_000_123), "oid": .objectID("65a1b2c3d4e5f60718293a4b"),
            "body": "héllo 👋 \u{0}after-nul",
            "edits": [["body": "first", "at": .date(1)], ["body": "second", "at": .date(2)]],
            "empty": "", "nested": ["a": ["b": ["c": 1]]],
        ]
        let copy = document.withBSON { BSONDocument(copying: $0) }
        #expect(copy == document)
        #expect(copy.keys == document.keys)
        #expect(copy["body"]?.stringValue == "héllo 👋 \u{0}after-nul")
    }

    @Test func subscriptSetsReplacesAndRemoves() {
        var document: BSONDocument = ["a": 1]
        document["b"] = "x"
        document["a"] = 2
        document["b"] = nil
        #expect(document == ["a": 2])
        #expect(BSON.int32(3).int64Value == 3)
        #expect(BSON.double(3.5).int64Value == nil)
    }
}

@Suite("MongoDB driver against the MongoDB-protocol server")
struct MongoTests {
    @Test func insertFindSortLimitCountAndUpsert() async throws {
        let mongo = try TestStores.mongo()
        let messages = mongo.collection(TestStores.unique("t_messages"))
        try await messages.createIndex(["roomId": 1, "seq": 1], unique: true)
        let result = try await messages.insertMany(
            (1...30).map { ["_id": .string("m\($0)"), "roomId": "r1", "seq": .int64(Int64($0)), "body": .string("hi \($0)")] })
        #expect(result.inserted == 30)
        try await messages.insertOne(["_id": "other", "roomId": "r2", "seq": 1, "body": "elsewhere"])

        let page = try await messages.find(["roomId": "r1"], sort: ["seq": -1], limit: 20)
        #expect(page.map { $0["seq"]?.int64Value } == (11...30).reversed().map { Int64($0) })
        #expect(try await messages.count(["roomId": "r1"]) == 30)
        #expect(try await messages.find(["roomId": "r1", "seq": ["$gt": 28]]).count == 2)

        let upserted = try await messages.updateOne(
            filter: ["_id": "m31"], update: ["$set": ["roomId": "r1", "seq": 31, "body": "new"]], upsert: true)
        #expect(upserted.upserted == 1)
        let edited = try await messages.updateOne(
            filter: ["_id": "m31"], update: ["$set": ["body": "edited"], "$push": ["edits": ["body": "new"]]], upsert: true)
        #expect(edited.matched == 1 && edited.modified == 1)
        let stored = try await messages.findOne(["_id": "m31"])
        #expect(stored?["body"] == "edited")
        #expect(stored?["edits"]?.arrayValue?.count == 1)
        try await messages.drop()
    }

    @Test func uniqueIndexViolationIsItsOwnError() async throws {
        let mongo = try TestStores.mongo()
        let messages = mongo.collection(TestStores.unique("t_unique"))
        try await messages.createIndex(["roomId": 1, "seq": 1], unique: true)
        try await messages.insertOne(["_id": "a", "roomId": "r", "seq": 1])
        do {
            try await messages.insertOne(["_id": "b", "roomId": "r", "seq": 1])
            Issue.record("a duplicate (roomId, seq) was accepted")
        } catch let error as DriverError {
            #expect(error.code == .duplicateKey)
            #expect(error.serverCode == 11000)
        }
        // Unordered bulk: the duplicate fails, the others land.
        do {
            try await messages.bulkWrite(
                [
                    .insertOne(["_id": "c", "roomId": "r", "seq": 2]), .insertOne(["_id": "d", "roomId": "r", "seq": 1]),
                    .insertOne(["_id": "e", "roomId": "r", "seq": 3]),
                ], ordered: false)
            Issue.record("the bulk write with a duplicate succeeded")
        } catch let error as DriverError {
            #expect(error.code == .duplicateKey)
        }
        #expect(try await messages.count() == 3)
        // Ordered bulk: stops at the duplicate.
        await #expect(throws: DriverError.self) {
            try await messages.bulkWrite(
                [
                    .insertOne(["_id": "f", "roomId": "r", "seq": 4]), .insertOne(["_id": "g", "roomId": "r", "seq": 1]),
                    .insertOne(["_id": "h", "roomId": "r", "seq": 5]),
                ], ordered: true)
        }
        #expect(try await messages.findOne(["_id": "h"]) == nil)
        #expect(try await messages.findOne(["_id": "f"]) != nil)
        try await messages.drop()
    }

    @Test func bulkUpsertsAreIdempotentAndCollectionsDrop() async throws {
        let mongo = try TestStores.mongo()
        let name = TestStores.unique("t_bulk")
        let live = mongo.collection(name)
        let writes: [MongoWrite] = (1...50).map {
            .updateOne(filter: ["_id": .string("m\($0)")], update: ["$set": ["seq": .int64(Int64($0))]], upsert: true)
        }
        let first = try await live.bulkWrite(writes, ordered: false)
        #expect(first.upserted == 50)
        let again = try await live.bulkWrite(writes, ordered: false)  // delivered twice
        #expect(again.upserted == 0 && again.matched == 50)
        #expect(try await live.count() == 50)
        try await live.deleteMany(["seq": ["$gt": 10]])
        #expect(try await live.count() == 10)
        try await live.drop()
        #expect(try await live.find().isEmpty)
        try await live.drop()  // dropping twice is fine
    }

    @Test func serverStoppedMidUseGivesClearErrorThenRecovers() async throws {
        guard let nx = TestStores.environment["PARLEY_NX_BIN"] else {
            Issue.record("PARLEY_NX_BIN is not set: run through scripts/test")
            return
        }
        let server = try PrivateServer("mongo-stop") { port, dir in
            (
                nx,
                [
                    "--host", "127.0.0.1", "-p", "\(port)", "--db", dir.appendingPathComponent("db.sqlite").path,
                    "--log-file", dir.appendingPathComponent("log").path, "--pid-file", dir.appendingPathComponent("pid").path,
                ], nil
            )
        }
        try await server.start()
        let mongo = try MongoClient(.init(uri: "mongodb://127.0.0.1:\(server.port)/t", connectTimeout: .seconds(1)))
        let collection = mongo.collection("c")
        try await collection.insertOne(["_id": "before"])
        await server.kill()
        do {
            try await collection.insertOne(["_id": "during"])
            Issue.record("an insert succeeded with the server stopped")
        } catch let error as DriverError {
            #expect(error.code == .unavailable || error.code == .timeout)
            #expect(error.store == .mongo)
        }
        try await server.start()
        try await eventually(seconds: 20) { try await collection.insertOne(["_id": "after"]) }
        #expect(try await collection.findOne(["_id": "before"]) != nil)  // the file database kept it
        await mongo.shutdown()
    }
}
