import Drivers
import Testing

@testable import EventLog

/// Where a partition's keys live on a Redis Cluster: pure, no server.
@Suite("Partition hash tags")
struct PartitionTagsTests {
    /// The slot runs `redis-cli --cluster create` gives 3, 4 and 6 primaries (equal runs).
    static func primary(of slot: Int, among primaries: Int) -> Int {
        min(primaries - 1, slot * primaries / RedisSlot.count)
    }

    @Test func spreadTagsGiveEveryPrimaryItsShareOfPartitions() {
        for partitions in [1, 3, 4, 6, 8, 12, 16, 64, 256] {
            let tags = PartitionTags.spread(partitions: partitions)
            #expect(Set(tags.tags).count == partitions)
            for primaries in [3, 4, 6] where primaries <= partitions {
                var held = [Int](repeating: 0, count: primaries)
                for tag in tags.tags { held[Self.primary(of: RedisSlot.of("{\(tag)}"), among: primaries)] += 1 }
                let share = partitions / primaries
                #expect(held.allSatisfy { $0 == share || $0 == share + 1 }, "\(partitions) over \(primaries): \(held)")
            }
        }
        // Bare numbers bunch up: of 8 partitions, the middle primary of 3 would hold 4 (what the spread tags are for).
        var bare = [Int](repeating: 0, count: 3)
        for partition in 0..<8 { bare[Self.primary(of: RedisSlot.of("{\(partition)}"), among: 3)] += 1 }
        #expect(bare == [2, 4, 2])
    }

    @Test func everyKeyAnAppendTouchesSharesItsPartitionsSlot() {
        for tags in [PartitionTags.plain(partitions: 4), .spread(partitions: 4)] {
            let keys = Keys(namespace: "parley", tags: tags)
            for partition in 0..<4 {
                let g = keys.guards(partition)
                let slot = RedisSlot.of(keys.stream(partition))
                let touched = [
                    g.stream, g.head, g.room("r"), g.members("r"), g.messages("r"), g.clientMessages("r", bucket: 7), g.direct,
                    g.joined("u"),
                    g.usernames, g.users, g.lostEntries,
                ]
                #expect(touched.allSatisfy { RedisSlot.of($0) == slot })
            }
            // A lease and its epoch counter are set together by one script.
            #expect(RedisSlot.of(keys.lease("messages", partition: 3)) == RedisSlot.of(keys.leaseEpoch("messages", partition: 3)))
        }
        #expect(Keys(namespace: "parley", tags: .plain(partitions: 2)).stream(1) == "parley:log:{1}")
    }
}
