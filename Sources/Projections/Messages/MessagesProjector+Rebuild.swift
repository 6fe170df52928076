import Drivers

extension MessagesProjector {
    /// The collection holding this projector's checkpoints (`<collection>_checkpoints`).
    public var checkpointCollection: MongoCollection { checkpoints }

    /// Empties the read model and its checkpoints (for a rebuild in place, or a scratch
    /// area), and makes the indexes again.
    public func reset() async throws {
        try await collection.drop()
        try await checkpoints.drop()
        try await prepare()
    }

    /// Drops the collection and its checkpoints (a shadow or scratch area).
    public func dropCollections() async throws {
        try await collection.drop()
        try await checkpoints.drop()
    }

    /// Whether this projector has recorded any checkpoint (a shadow left by an interrupted
    /// rebuild, to be resumed).
    public func hasCheckpoints() async throws -> Bool {
        // findOne, not count: nx-27017's count still answers for a renamed-away collection.
        try await checkpoints.findOne([:]) != nil
    }

    /// Puts this (shadow) projector's collection and checkpoints in place of `live`'s.
    /// On MongoDB `renameCollection` with `dropTarget` replaces the collection atomically;
    /// nx-27017 (the test server) refuses it, and the driver then drops and renames, which
    /// leaves a moment with no collection. Live writers must be held meanwhile
    /// (`ProjectionHold`).
    public func swap(into live: MessagesProjector) async throws {
        precondition(
            live.collection.name != collection.name && live.name == name, "a swap replaces another collection of the same projector")
        try await collection.rename(to: live.collection.name, dropTarget: true)
        try await checkpoints.rename(to: live.checkpoints.name, dropTarget: true)
    }
}
