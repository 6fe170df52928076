import Drivers

extension MessagesProjector {
    /// The checkpoints of the area in use now (`<area>_checkpoints`).
    public func checkpointCollection() async throws -> MongoCollection { try await currentArea().checkpoints }

    /// Empties the read model in use and its checkpoints (for a rebuild in place, or a
    /// scratch area), and makes the indexes again.
    public func reset() async throws {
        let area = try await currentArea()
        try await area.documents.drop()
        try await area.checkpoints.drop()
        try await prepare()
    }

    /// Drops the collection and its checkpoints (a shadow or scratch area; never a live one).
    public func dropCollections() async throws {
        precondition(!location.followsPointer, "refusing to drop the live read model")
        let area = try await currentArea()
        try await area.documents.drop()
        try await area.checkpoints.drop()
    }

    /// Whether this projector has recorded any checkpoint (a shadow left by an interrupted
    /// rebuild, to be resumed).
    public func hasCheckpoints() async throws -> Bool {
        try await currentArea().checkpoints.findOne([:]) != nil
    }

    /// Makes this (shadow) projector's collection the live one of `live`, without renaming
    /// anything: its checkpoints take the live ones' fencing epochs, the pointer moves to
    /// it (one document write), and the old area's checkpoints are marked `movedTo`, so a
    /// live projector that still writes there is refused and follows the pointer. Live
    /// writers must be held meanwhile (`ProjectionHold`). Returns the names of the areas it
    /// replaced (the live one, and any an interrupted swap left undropped), which readers
    /// may still read for `MessagesLocation.readerRefresh`: drop them (`dropArea(named:)`)
    /// only after twice that. Until then the pointer lists them as `retiring`.
    public func promote(over live: MessagesProjector) async throws -> [String] {
        precondition(!location.followsPointer && live.location.followsPointer && live.name == name, "a shadow replaces a live area")
        let new = try await currentArea()
        let pointed = try await live.location.pointed()
        let old = live.area(pointed.area)
        precondition(old.name != new.name, "the shadow is the live area already")
        guard let version = live.location.version(of: new.name) else {
            preconditionFailure("a shadow is built in the live location's next area (\(new.name))")
        }
        // An earlier swap whose replayer died before it retired the area it replaced: retired now as well.
        let replaced = [old] + pointed.retiring.filter { $0 != old.name && $0 != new.name }.map(live.area)
        try await carryEpochs(from: old, to: new)
        try await live.location.point(to: new.name, version: version, retiring: replaced.map(\.name))
        for area in replaced {
            for checkpoint in try await area.checkpoints.find() {
                guard let id = checkpoint["_id"] else { continue }
                try await area.checkpoints.updateOne(filter: ["_id": id], update: ["$set": ["movedTo": .string(new.name)]])
            }
        }
        // Once more: a takeover between the first copy and the move fenced the old area with a newer epoch.
        try await carryEpochs(from: old, to: new)
        return replaced.map(\.name)
    }

    private func carryEpochs(from old: Area, to new: Area) async throws {
        for checkpoint in try await old.checkpoints.find() {
            guard let id = checkpoint["_id"], let epoch = checkpoint["epoch"]?.int64Value else { continue }
            try await new.checkpoints.updateOne(filter: ["_id": id], update: ["$max": ["epoch": .int64(epoch)]], upsert: true)
        }
    }

    /// Drops a replaced area (its documents and checkpoints); refuses the one the pointer names.
    public func dropArea(named name: String) async throws {
        guard try await location.refresh() != name else {
            throw DriverError(.mongo, .invalid, "refusing to drop \(name): it is the live messages collection")
        }
        let area = self.area(name)
        try await area.documents.drop()
        try await area.checkpoints.drop()
        try await location.retired(name)
    }
}
