import Drivers
import TestSupport
import Testing

@testable import Projections

/// The array literals the metadata projector sends with `unnest($1::text[])`, read back by
/// the real PostgreSQL.
@Suite("PostgreSQL text array literals")
struct PostgresArrayTests {
    @Test func postgreSQLReadsBackEveryValueAsItWas() async throws {
        let values: [String?] = [
            "plain", "", nil, "NULL", "with \"quotes\"", "back\\slash", "\\\"", "a,b", "{braces}", " spaced ", "new\nline\ttab",
            "émoji 👋🏽 中文", "'single'", String(repeating: "x\"\\", count: 300),
        ]
        let postgres = TestStores.postgres()
        let rows = try await postgres.query(
            "SELECT v, v IS NULL AS missing, n FROM unnest($1::text[]) WITH ORDINALITY AS t(v, n) ORDER BY n", [postgresArray(values)])
        let read: [String?] = rows.map { $0["missing"] == "t" ? nil : $0["v"] }
        #expect(read == values)
        #expect(postgresArray([]) == "{}")
        await postgres.shutdown()
    }
}
