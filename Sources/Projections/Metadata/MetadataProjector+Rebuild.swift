import Drivers
import Foundation

extension MetadataProjector {
    /// Empties the read model and this projector's checkpoints, for a rebuild in place.
    public func reset() async throws {
        try await prepare()
        try await area.reset(name)
    }

    /// Drops this projector's schema with its tables (a shadow or scratch area; never the
    /// template the migrations made).
    public func dropSchema() async throws { try await area.dropSchema() }

    /// Whether this projector's schema exists (a shadow left by an interrupted rebuild).
    public func schemaExists() async throws -> Bool { try await area.schemaExists() }

    /// Puts this (shadow) projector's tables in place of `live`'s, in one transaction:
    /// readers wait the few milliseconds it takes, then see the new tables; they never see
    /// a mix. The old tables go to a schema named `<live>_retired_<time>`, which is
    /// dropped unless `keepOld`; returns that name. Live writers must be held meanwhile
    /// (`ProjectionHold`), so that nothing they apply lands in the old tables.
    @discardableResult
    public func swap(into live: MetadataProjector, keepOld: Bool = false) async throws -> String {
        precondition(live.name == name, "a swap replaces the tables of the same projector")
        let retired = "\(live.schema)_retired_\(Int(Date().timeIntervalSince1970))"
        try await area.swap(into: live.area, retired: retired, keepOld: keepOld)
        return retired
    }
}
