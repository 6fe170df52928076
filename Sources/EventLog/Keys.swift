/// Every Redis key and channel name of one Parley namespace, built in one place. Each
/// type of this target that owns a concern (the log, consumer groups, leases, dead
/// letters, holds, ephemeral signals) takes its names from here, so that a name is spelled
/// once and operators can read the whole layout on this page:
///
/// - `<ns>:log:{t}`: partition p's stream, t being its tag (`PartitionTags`: p itself on one
///   Redis, a tag spread over the slots on a cluster; the braces are a Redis Cluster hash
///   tag shared with every guard key of the partition); `<ns>:partitions`: the partition count
/// - `<ns>:g:{p}:…`: the guard state beside the log (`GuardKeys`)
/// - `<ns>:archive`: the schema of the log's archive (`LogArchive`)
/// - `<ns>:lease:<projector>:<p>`: who projects partition p (`PartitionLease`; `archiver` too)
/// - `<ns>:hold:<projector>`, `<ns>:paused:<projector>:<p>`: a shadow swap's hold (`ProjectionHold`)
/// - `<ns>:dead:<projector>`: the projector's dead-letter stream (`DeadLetters`)
/// - `<ns>:rebuild:<projector>`: an in-place rebuild under way
/// - `<ns>:typing`: the pub/sub channel of typing signals (`EphemeralSignals`)
public struct Keys: Sendable, Equatable {
    /// The first part of every key (`parley`); tests and benchmarks use their own.
    public let namespace: String
    /// Each partition's hash tag.
    public let tags: PartitionTags

    /// The names of `namespace` (`PARLEY_NAMESPACE`, `parley` by default); `tags` plain (one Redis) unless given.
    public init(namespace: String, tags: PartitionTags = .plain(partitions: 1)) {
        self.namespace = namespace
        self.tags = tags
    }

    /// The stream of partition `p`.
    public func stream(_ partition: Int) -> String { "\(namespace):log:{\(tags.tag(partition))}" }
    /// Records how many partitions the log was written with (in a slot of its own: read before anything else).
    public var partitionCount: String { "\(namespace):partitions" }
    /// Records the schema of the log's archive (`EventLog.checkArchive`).
    public var archive: String { "\(namespace):archive" }
    /// The guard-state keys of partition `p`.
    public func guards(_ partition: Int) -> GuardKeys {
        GuardKeys(partition: partition, namespace: namespace, tag: tags.tag(partition))
    }
    /// Matches every guard key of every partition.
    public var guardPattern: String { "\(namespace):g:*" }
    /// Matches every key of the namespace (tests and benchmarks remove theirs with it).
    public var everything: String { "\(namespace):*" }

    /// Who projects `partition` for `projector` (`PartitionLease`).
    public func lease(_ projector: String, partition: Int) -> String { "\(namespace):lease:\(projector):\(partition)" }
    /// The lease's epoch counter: raised at each takeover, never expires (one per projector and partition). Its hash tag is
    /// the whole lease key, so that both are in one Redis Cluster slot.
    public func leaseEpoch(_ projector: String, partition: Int) -> String { "{\(lease(projector, partition: partition))}:epoch" }
    /// Set while a shadow swap stops `projector`'s live writes (`ProjectionHold`).
    public func hold(_ projector: String) -> String { "\(namespace):hold:\(projector)" }
    /// A live runner's answer to a hold: it has paused `partition`.
    public func paused(_ projector: String, partition: Int) -> String { "\(namespace):paused:\(projector):\(partition)" }
    /// Where `projector` parks events it cannot apply (`DeadLetters`).
    public func deadLetters(_ projector: String) -> String { "\(namespace):dead:\(projector)" }
    /// Set while an in-place rebuild of `projector` is under way, so an interrupted one resumes.
    public func rebuildMarker(_ projector: String) -> String { "\(namespace):rebuild:\(projector)" }
    /// The pub/sub channel of typing signals (`EphemeralSignals`).
    public var typingChannel: String { "\(namespace):typing" }
}
