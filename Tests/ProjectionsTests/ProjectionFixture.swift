import EventLog
import Events
import Foundation
import Logging
import TestSupport

@testable import Projections

/// The projection tests' fixture: the shared store fixture, with a snapshot of the read
/// models and the scripted chat.
typealias ProjectionFixture = StoreFixture

extension StoreFixture {
    func waitUntilCaughtUp(_ projector: any Projector, seconds: Double = 90) async throws {
        try await waitUntilProjected([projector], seconds: seconds)
    }

    /// Every row of the schema and every document of the collection, for comparisons.
    func snapshot() async throws -> (rows: [String], documents: [BSONDocument]) {
        var rows: [String] = []
        for table in ["users", "rooms", "room_members"] {
            for row in try await postgres.query("SELECT * FROM \(schema).\(table) ORDER BY 1, 2") {
                rows.append(table + ": " + zip(row.columns, row.values).map { "\($0)=\($1 ?? "NULL")" }.joined(separator: " "))
            }
        }
        let documents = try await messages.documents().find(sort: ["_id": 1])
        return (rows, documents)
    }

    /// The scripted chat of `EventLog.scriptedChat()`; returns the user ids by name.
    func workload() async throws -> [String: String] { try await log.scriptedChat() }
}
