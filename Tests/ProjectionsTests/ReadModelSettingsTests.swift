import Testing

@testable import Projections

/// Where the log and read models are: parsed once for parley-server and parley-replay.
@Suite("Read model settings from the environment")
struct ReadModelSettingsTests {
    @Test func defaultsAndValues() throws {
        #expect(try ReadModelSettings(environment: [:]) == ReadModelSettings())
        let set = try ReadModelSettings(environment: [
            "PARLEY_LOG_PARTITIONS": "4", "PARLEY_NAMESPACE": "team-a", "PARLEY_POSTGRES_SCHEMA": "Chat_A",
            "PARLEY_MONGO_COLLECTION": "msgs-a",
        ])
        #expect(set.partitions == 4 && set.namespace == "team-a" && set.postgresSchema == "chat_a" && set.mongoCollection == "msgs-a")
    }

    @Test func badValuesAreNamedInOneLine() {
        func refusal(_ environment: [String: String]) -> String? {
            do {
                _ = try ReadModelSettings(environment: environment)
                return nil
            } catch { return error.description }
        }
        #expect(refusal(["PARLEY_LOG_PARTITIONS": "0"]) == "PARLEY_LOG_PARTITIONS=0 is not a number in 1...1024")
        #expect(
            refusal(["PARLEY_POSTGRES_SCHEMA": "drop table"])
                == "PARLEY_POSTGRES_SCHEMA=drop table must be letters, digits or _ (at most 40)")
        // Room for the replayer's `_retired_<unix time>` within PostgreSQL's 63 characters.
        let longest = String(repeating: "s", count: ReadModelSettings.maxNameLength)
        #expect(refusal(["PARLEY_POSTGRES_SCHEMA": longest]) == nil)
        #expect((longest + "_retired_1764000000").count <= 63)
        #expect(refusal(["PARLEY_POSTGRES_SCHEMA": longest + "s"]) != nil)
    }
}
