import Drivers
import Events

extension EventLog {
    /// The result of checking one partition's hash chain.
    public struct ChainReport: Sendable, Equatable {
        /// The partition checked.
        public var partition: Int
        /// Events checked (up to and including the first broken one).
        public var checked: Int
        /// The first entry that does not check out, and why.
        public var firstBreak: (entryID: String, failure: HashChain.Failure)?
        /// The hash of the last event, to anchor elsewhere (a later check that finds a
        /// different hash at that entry proves the log was rewritten).
        public var headHash: String

        /// Whether every link checked out, up to the stored chain head.
        public var isIntact: Bool { firstBreak == nil }

        /// Field by field (a tuple cannot be Equatable on its own).
        public static func == (a: ChainReport, b: ChainReport) -> Bool {
            a.partition == b.partition && a.checked == b.checked && a.headHash == b.headHash
                && a.firstBreak?.entryID == b.firstBreak?.entryID && a.firstBreak?.failure == b.firstBreak?.failure
        }
    }

    /// Reads a partition from its first event and checks every link of the chain, and that
    /// the stored chain head is the last event's hash (a removed last event shows there).
    public func verifyChain(partition: Int, batch: Int = 5000) async throws -> ChainReport {
        var previous = HashChain.genesis
        var after = "0-0"
        var checked = 0
        while true {
            // The archive's entries first, then the stream's: the chain runs across the seam.
            let entries = try await reader.entries(partition: partition, after: after, count: batch)
            for entry in entries {
                checked += 1
                guard let json = entry["event"] else {
                    return ChainReport(
                        partition: partition, checked: checked, firstBreak: (entry.id, .unreadable("no event field")), headHash: previous)
                }
                switch HashChain.verify(stored: json, previousHash: previous) {
                case .success(let hash): previous = hash
                case .failure(let failure):
                    return ChainReport(partition: partition, checked: checked, firstBreak: (entry.id, failure), headHash: previous)
                }
            }
            guard entries.count == batch, let last = entries.last else { break }
            after = last.id
        }
        let stored = try await redis.command(["GET", guardKeys(partition).head]).string ?? HashChain.genesis
        if stored != previous {
            return ChainReport(
                partition: partition, checked: checked,
                firstBreak: ("end", .brokenLink(expectedPrevHash: stored, found: previous)), headHash: previous)
        }
        return ChainReport(partition: partition, checked: checked, firstBreak: nil, headHash: previous)
    }
}
