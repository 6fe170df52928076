import ArgumentParser
import Drivers
import EventLog
import Events
import Foundation
import Logging
import Projections

/// `parley-bench search`: the search projector's rate and search latency over a large read model. Generates `messages`
/// `message.sent` events in `rooms` rooms (texts of 4 to 16 words drawn from a vocabulary of `vocabulary` made-up words
/// with a Zipf-like frequency, so some words are in a tenth of the messages and most in very few), projects them
/// through `SearchProjector.apply` in batches (PostgreSQL only: no Redis, no MongoDB), then times `SearchReadModel`
/// queries of a reader who is a joined member of `memberOf` rooms: a common word, a rare word, a prefix, a phrase and
/// two words, newest first and by rank. Each query kind is run `queries` times with different words of its kind.
struct SearchBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "search", abstract: "Search projection rate and query latency.")

    @Option(help: "Messages in the generated read model.") var messages = 1_000_000
    @Option(help: "Rooms they are spread over.") var rooms = 1000
    @Option(help: "Rooms the reader is a joined member of.") var memberOf = 50
    @Option(help: "Words in the vocabulary.") var vocabulary = 20_000
    @Option(help: "Events per projected batch.") var batch = 5000
    @Option(help: "Queries per kind.") var queries = 200
    @Flag(help: "Keep the schema afterwards (to run queries by hand).") var keep = false

    func run() async throws {
        let stores = try Stores(StoreConfiguration(environment: ProcessInfo.processInfo.environment))
        try await stores.check()
        if let directory = Migrator.defaultDirectory() {
            try await Migrator(directory: directory).migrate(stores.postgres, logger: Logger(label: "bench"))
        }
        let schema = "bench_search_\(UInt32.random(in: 0...UInt32.max))"
        let metadata = MetadataProjector(postgres: stores.postgres, schema: schema)
        let search = SearchProjector(postgres: stores.postgres, schema: schema)
        try await metadata.prepare()
        try await search.prepare()
        let reader = "bench-reader"
        try await stores.postgres.query(
            """
            INSERT INTO \(schema).room_members (room_id, user_id, role, state, updated_at)
            SELECT 'room-' || n, $1, 'member', 'joined', now() FROM generate_series(0, $2 - 1) AS n
            """, [reader, memberOf])

        var words = Words(count: vocabulary)
        print("search: \(messages) messages in \(rooms) rooms, \(vocabulary) words; the reader is in \(memberOf) rooms")
        print("| step | count | seconds | per second |")
        print("|---|---:|---:|---:|")
        let start = ContinuousClock.now
        var sent = 0
        var at = Date(timeIntervalSince1970: 1_790_000_000)
        var seqs = [Int64](repeating: 0, count: rooms)
        while sent < messages {
            var events: [LoggedEvent] = []
            for _ in 0..<min(batch, messages - sent) {
                let room = Int.random(in: 0..<rooms)
                seqs[room] += 1
                at.addTimeInterval(0.001)
                let body = (0..<Int.random(in: 4...16)).map { _ in words.draw() }.joined(separator: " ")
                let event = Event(
                    id: Events.newID(), at: at, actorId: "u\(room % 97)", roomId: "room-\(room)", seq: seqs[room],
                    data: .messageSent(MessageSent(messageId: "m\(sent)", body: body, clientMsgId: nil, replyTo: nil)))
                events.append(LoggedEvent(partition: 0, entryID: "\(1_790_000_000_000 + sent)-0", event: event, json: ""))
                sent += 1
            }
            try await search.apply(events, partition: 0)
        }
        let projected = ContinuousClock.now - start
        print(row("search projector (PostgreSQL, GIN index)", count: messages, elapsed: projected))
        try await stores.postgres.query("ANALYZE \(schema).search_messages")
        try await stores.postgres.query("ANALYZE \(schema).room_members")

        print("")
        print("| query | order | queries | median results | p50 ms | p90 ms | p99 ms | max ms |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        let model = SearchReadModel(postgres: stores.postgres, schema: schema)
        let kinds: [(String, () -> String)] = [
            ("a common word (top 10)", { words.word(Int.random(in: 0..<10)) }),
            ("a rare word", { words.word(Int.random(in: vocabulary / 2..<vocabulary)) }),
            ("a prefix of 3 letters", { String(words.word(Int.random(in: 0..<200)).prefix(3)) }),
            ("two words", { "\(words.word(Int.random(in: 0..<100))) \(words.word(Int.random(in: 0..<100)))" }),
            ("a phrase of two words", { "\"\(words.word(Int.random(in: 0..<20))) \(words.word(Int.random(in: 0..<20)))\"" }),
        ]
        for (name, make) in kinds {
            for order in SearchReadModel.Order.allCases {
                let latencies = LatencyRecorder()
                var counts: [Int] = []
                for _ in 0..<queries {
                    guard let query = SearchQuery(make()) else { continue }
                    let began = ContinuousClock.now
                    let page = try await model.search(query, userId: reader, order: order, limit: 20)
                    latencies.record(ContinuousClock.now - began)
                    counts.append(page.hits.count)
                }
                let s = latencies.summary
                let median = counts.sorted()[counts.count / 2]
                print(
                    "| \(name) | \(order.rawValue) | \(latencies.count) | \(median) | "
                        + [s.p50, s.p90, s.p99, s.max].map { String(format: "%.1f", $0) }.joined(separator: " | ") + " |")
            }
        }
        let size =
            try await stores.postgres.query(
                "SELECT pg_size_pretty(pg_total_relation_size('\(schema).search_messages')) AS size"
            ).first?.string("size") ?? "?"
        print("")
        print("search_messages with its indexes: \(size)")
        if keep {
            print("kept schema \(schema)")
        } else {
            try await stores.postgres.query("DROP SCHEMA \(schema) CASCADE")
        }
        await stores.shutdown()
    }

    func row(_ name: String, count: Int, elapsed: Duration) -> String {
        let s = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return "| \(name) | \(count) | \(String(format: "%.1f", s)) | \(Int(Double(count) / s)) |"
    }
}

/// A made-up vocabulary: word `i` is syllables spelled from `i` (distinct for every `i`), drawn with a frequency of about
/// 1 / (i + 1), so a few words are everywhere and most are rare, as in real text.
struct Words {
    let count: Int
    private let cumulative: [Double]
    private var generator = SystemRandomNumberGenerator()

    init(count: Int) {
        self.count = count
        var total = 0.0
        cumulative = (0..<count).map { i in
            total += 1 / Double(i + 1)
            return total
        }
    }

    func word(_ i: Int) -> String {
        let consonants = Array("bdfgklmnprstvz")
        let vowels = Array("aeiou")
        var n = i
        var word = ""
        repeat {
            word.append(consonants[n % consonants.count])
            n /= consonants.count
            word.append(vowels[n % vowels.count])
            n /= vowels.count
        } while n > 0
        return word
    }

    mutating func draw() -> String {
        let x = Double.random(in: 0..<cumulative[count - 1], using: &generator)
        var low = 0
        var high = count - 1
        while low < high {
            let mid = (low + high) / 2
            if cumulative[mid] < x { low = mid + 1 } else { high = mid }
        }
        return word(low)
    }
}
