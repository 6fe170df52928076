import Drivers

/// The Redis Cluster hash tag of each partition: what every key of the partition carries
/// between braces, so that its stream and its guard state share one slot.
///
/// On one Redis the tag is the partition number (`{0}`, `{1}`, …: section 2 of the
/// contract). On a cluster those would bunch up on a few primaries (`{0}` is slot 13907,
/// `{1}` 9842, `{3}` 1584), so the tag of partition p of P is the first `p-n` (n = 0, 1, …)
/// whose slot lies near the middle of the p-th of P equal slot ranges. A cluster made by
/// `redis-cli --cluster create` gives each of its M primaries an equal run of slots, so
/// each holds P/M partitions (±1); with P a multiple of M, exactly P/M.
public struct PartitionTags: Sendable, Equatable {
    /// The tag of each partition, by partition number.
    public let tags: [String]
    /// True for the spread tags of a cluster.
    public let spread: Bool

    /// `{p}` for each of `partitions`: one Redis.
    public static func plain(partitions: Int) -> PartitionTags {
        PartitionTags(tags: (0..<max(1, partitions)).map(String.init), spread: false)
    }

    /// Tags spread over the slot space for `partitions` partitions: a Redis Cluster.
    public static func spread(partitions: Int) -> PartitionTags {
        let count = max(1, partitions)
        let width = Double(RedisSlot.count) / Double(count)
        let tolerance = max(1, Int(width / 4))
        let tags = (0..<count).map { partition -> String in
            let target = Int(width * (Double(partition) + 0.5))
            var n = 0
            while true {
                let tag = "\(partition)-\(n)"
                if abs(RedisSlot.of("{\(tag)}") - target) <= tolerance { return tag }
                n += 1
            }
        }
        return PartitionTags(tags: tags, spread: true)
    }

    /// The tags a log on `redis` uses: spread on a cluster, plain on one server.
    public static func of(_ redis: RedisClient, partitions: Int) -> PartitionTags {
        redis.isCluster ? .spread(partitions: partitions) : .plain(partitions: partitions)
    }

    /// The tag of `partition`; a partition past the table (a reader told of more partitions than the log has) gets the
    /// plain one.
    public func tag(_ partition: Int) -> String {
        partition >= 0 && partition < tags.count ? tags[partition] : String(partition)
    }
}
