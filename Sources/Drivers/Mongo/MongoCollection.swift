import CMongoc

/// One write of a bulk write.
public enum MongoWrite: Sendable, Equatable {
    case insertOne(BSONDocument)
    case updateOne(filter: BSONDocument, update: BSONDocument, upsert: Bool)
    case replaceOne(filter: BSONDocument, replacement: BSONDocument, upsert: Bool)
    case deleteOne(filter: BSONDocument)
    case deleteMany(filter: BSONDocument)
}

/// What a write did, as the server counted it.
public struct MongoWriteResult: Sendable, Equatable {
    /// Documents inserted by `insertOne` writes (upserts are counted in `upserted`).
    public var inserted: Int
    /// Documents that matched the filter of an update or replace write, changed or not.
    public var matched: Int
    /// Documents an update or replace actually changed: fewer than `matched` when a write left a document as it was.
    public var modified: Int
    /// Documents inserted because an upsert's filter matched none.
    public var upserted: Int
    /// Documents removed by delete writes.
    public var deleted: Int

    init(reply: BSONDocument) {
        func count(_ keys: String...) -> Int {
            for key in keys { if let n = reply[key]?.int64Value { return Int(n) } }
            return 0
        }
        inserted = count("nInserted", "insertedCount")
        matched = count("nMatched", "matchedCount")
        modified = count("nModified", "modifiedCount")
        upserted = count("nUpserted", "upsertedCount")
        deleted = count("nRemoved", "deletedCount")
    }
}

/// A collection of the client's database. Each method borrows a pooled client on the
/// driver's threads and copies results into Swift values before returning.
public struct MongoCollection: Sendable {
    /// The client whose pool, threads and database every operation of the collection uses.
    public let client: MongoClient
    /// The collection's name in the client's database (e.g. `messages`).
    public let name: String

    private func withCollection<T: Sendable>(_ body: @escaping @Sendable (OpaquePointer) throws -> T) async throws -> T {
        let database = client.databaseName
        let name = self.name
        return try await client.withClient { mongo in
            let collection = mongoc_client_get_collection(mongo, database, name)!
            defer { mongoc_collection_destroy(collection) }
            return try body(collection)
        }
    }

    /// Inserts one document; a unique-index clash throws `.duplicateKey`.
    public func insertOne(_ document: BSONDocument) async throws {
        _ = try await withCollection { collection in
            try document.withBSON { doc in
                try withReply { reply, error in mongoc_collection_insert_one(collection, doc, nil, reply, error) }
            }
        }
    }

    /// Inserts many documents in one bulk write.
    @discardableResult
    public func insertMany(_ documents: [BSONDocument], ordered: Bool = true) async throws -> MongoWriteResult {
        try await bulkWrite(documents.map { .insertOne($0) }, ordered: ordered)
    }

    /// Sends writes as one bulk operation. Ordered stops at the first error; unordered
    /// applies every write it can and then reports the first error.
    @discardableResult
    public func bulkWrite(_ writes: [MongoWrite], ordered: Bool = true) async throws -> MongoWriteResult {
        guard !writes.isEmpty else { return MongoWriteResult(reply: [:]) }
        return try await withCollection { collection in
            let options: BSONDocument = ["ordered": .bool(ordered)]
            let bulk = options.withBSON { mongoc_collection_create_bulk_operation_with_opts(collection, $0)! }
            defer { mongoc_bulk_operation_destroy(bulk) }
            var error = bson_error_t()
            for write in writes {
                let added: Bool
                switch write {
                case .insertOne(let document):
                    added = document.withBSON { mongoc_bulk_operation_insert_with_opts(bulk, $0, nil, &error) }
                case .updateOne(let filter, let update, let upsert):
                    added = Self.with(filter, update, ["upsert": .bool(upsert)]) {
                        mongoc_bulk_operation_update_one_with_opts(bulk, $0, $1, $2, &error)
                    }
                case .replaceOne(let filter, let replacement, let upsert):
                    added = Self.with(filter, replacement, ["upsert": .bool(upsert)]) {
                        mongoc_bulk_operation_replace_one_with_opts(bulk, $0, $1, $2, &error)
                    }
                case .deleteOne(let filter):
                    added = filter.withBSON { mongoc_bulk_operation_remove_one_with_opts(bulk, $0, nil, &error) }
                case .deleteMany(let filter):
                    added = filter.withBSON { mongoc_bulk_operation_remove_many_with_opts(bulk, $0, nil, &error) }
                }
                if !added { throw DriverError(.mongo, .invalid, "bulk write refused \(write): \(error.text)") }
            }
            let reply = try withReply { reply, error in mongoc_bulk_operation_execute(bulk, reply, error) != 0 }
            return MongoWriteResult(reply: reply)
        }
    }

    /// Updates the first document matching `filter` (`$set`, `$inc`, `$push` ...), inserting
    /// one when `upsert` is set and none matches.
    @discardableResult
    public func updateOne(filter: BSONDocument, update: BSONDocument, upsert: Bool = false) async throws -> MongoWriteResult {
        try await withCollection { collection in
            let reply = try Self.with(filter, update, ["upsert": .bool(upsert)]) { f, u, o in
                try withReply { reply, error in mongoc_collection_update_one(collection, f, u, o, reply, error) }
            }
            return MongoWriteResult(reply: reply)
        }
    }

    /// Deletes every document matching `filter`.
    @discardableResult
    public func deleteMany(_ filter: BSONDocument) async throws -> MongoWriteResult {
        try await withCollection { collection in
            let reply = try filter.withBSON { f in
                try withReply { reply, error in mongoc_collection_delete_many(collection, f, nil, reply, error) }
            }
            return MongoWriteResult(reply: reply)
        }
    }

    /// Finds documents, iterating the server cursor to the end (use `limit` for pages).
    public func find(
        _ filter: BSONDocument = [:], sort: BSONDocument? = nil, limit: Int? = nil, skip: Int? = nil,
        projection: BSONDocument? = nil
    ) async throws -> [BSONDocument] {
        var options = BSONDocument()
        if let sort { options["sort"] = .document(sort) }
        if let limit { options["limit"] = .int64(Int64(limit)) }
        if let skip { options["skip"] = .int64(Int64(skip)) }
        if let projection { options["projection"] = .document(projection) }
        let findOptions = options
        return try await withCollection { collection in
            let cursor = filter.withBSON { f in
                findOptions.withBSON { o in mongoc_collection_find_with_opts(collection, f, o, nil)! }
            }
            defer { mongoc_cursor_destroy(cursor) }
            var documents: [BSONDocument] = []
            var current: OpaquePointer?
            while mongoc_cursor_next(cursor, &current), let current {
                documents.append(BSONDocument(copying: current))
            }
            var error = bson_error_t()
            if mongoc_cursor_error(cursor, &error) { throw MongoErrors.from(error) }
            return documents
        }
    }

    /// The first document matching `filter`, if any.
    public func findOne(_ filter: BSONDocument, sort: BSONDocument? = nil) async throws -> BSONDocument? {
        try await find(filter, sort: sort, limit: 1).first
    }

    /// How many documents match `filter`.
    public func count(_ filter: BSONDocument = [:]) async throws -> Int {
        try await withCollection { collection in
            var error = bson_error_t()
            let n = filter.withBSON { mongoc_collection_count_documents(collection, $0, nil, nil, nil, &error) }
            if n < 0 { throw MongoErrors.from(error) }
            return Int(n)
        }
    }

    /// Creates an index on `keys` (the `createIndexes` command; indexes are named by
    /// their key pattern, since some servers ignore custom names).
    public func createIndex(_ keys: BSONDocument, unique: Bool = false) async throws {
        let indexName = keys.elements.map { "\($0.key)_\($0.value.int64Value ?? 1)" }.joined(separator: "_")
        var index: BSONDocument = ["key": .document(keys), "name": .string(indexName)]
        if unique { index["unique"] = true }
        try await client.command(["createIndexes": .string(name), "indexes": [.document(index)]])
    }

    /// Drops the collection; dropping one that does not exist is not an error.
    public func drop() async throws {
        _ = try await withCollection { collection in
            var error = bson_error_t()
            if !mongoc_collection_drop_with_opts(collection, nil, &error), error.code != 26, !error.text.contains("ns not found") {
                throw MongoErrors.from(error)
            }
            return true
        }
    }

    private static func with<T>(
        _ a: BSONDocument, _ b: BSONDocument, _ c: BSONDocument,
        _ body: (OpaquePointer, OpaquePointer, OpaquePointer) throws -> T
    ) rethrows -> T {
        try a.withBSON { pa in try b.withBSON { pb in try c.withBSON { pc in try body(pa, pb, pc) } } }
    }
}
