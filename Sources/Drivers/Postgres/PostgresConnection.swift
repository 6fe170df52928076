import CLibPQ
import Foundation

/// One libpq connection. Its methods block: they are only called from a
/// `PostgresClient.withConnection` or `withTransaction` body, on the client's threads.
/// Statements with parameters are prepared once per connection and reused.
///
/// `@unchecked Sendable`: one caller at a time holds it (the pool's lease), on one thread.
public final class PostgresConnection: PooledConnection, @unchecked Sendable {
    private let connection: OpaquePointer
    private var prepared: [String: String] = [:]
    private var isClosed = false
    private var broken = false

    init(url: String, connectTimeoutSeconds: Int, statementTimeoutMs: Int) throws {
        // Ours first, so that anything the URL sets wins (expand_dbname).
        let keywords = ["connect_timeout", "application_name", "options", "dbname"]
        let values = [
            String(max(1, connectTimeoutSeconds)), "parley", "-c statement_timeout=\(statementTimeoutMs)", url,
        ]
        let connection = withCStrings(keywords) { k in withCStrings(values) { v in PQconnectdbParams(k, v, 1) } }
        guard let connection else { throw DriverError(.postgres, .unavailable, "cannot allocate a libpq connection") }
        guard PQstatus(connection) == CONNECTION_OK else {
            let reason = String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(connection)
            let code: DriverError.Code =
                reason.contains("password") || reason.contains("authentication")
                ? .authentication
                : reason.contains("does not exist") ? .invalid : .unavailable
            throw DriverError(.postgres, code, "cannot connect: \(reason)")
        }
        parley_pg_quiet_notices(connection)
        self.connection = connection
    }

    deinit { close() }

    /// False once closed, after a lost connection or a class 08/57 error: the pool then closes it instead of reusing it.
    public var isUsable: Bool { !isClosed && !broken && PQstatus(connection) == CONNECTION_OK }

    /// Frees the libpq connection; later calls do nothing. The pool calls it when it retires the connection.
    public func close() {
        guard !isClosed else { return }
        isClosed = true
        PQfinish(connection)
    }

    /// Runs SQL without parameters; several statements separated by `;` are allowed.
    @discardableResult
    public func execute(_ sql: String) throws -> PostgresRows {
        try rows(of: PQexec(connection, sql))
    }

    /// Runs one statement with `$1, $2 ...` parameters, prepared on first use.
    @discardableResult
    public func query(_ sql: String, _ parameters: [any PostgresBindable] = []) throws -> PostgresRows {
        if parameters.isEmpty { return try execute(sql) }
        let name: String
        if let known = prepared[sql] {
            name = known
        } else {
            name = "parley_\(prepared.count + 1)"
            _ = try rows(of: PQprepare(connection, name, sql, Int32(parameters.count), nil))
            prepared[sql] = name
        }
        let texts = parameters.map(\.postgresText)
        let result = withOptionalCStrings(texts) { values in
            PQexecPrepared(connection, name, Int32(texts.count), values, nil, nil, 0)
        }
        return try rows(of: result)
    }

    private func rows(of result: OpaquePointer?) throws -> PostgresRows {
        guard let result else { throw failure(nil) }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return PostgresRows(columns: [], values: [], affectedRows: Int(String(cString: PQcmdTuples(result))) ?? 0)
        case PGRES_TUPLES_OK:
            let fields = Int(PQnfields(result))
            let count = Int(PQntuples(result))
            let columns = (0..<fields).map { String(cString: PQfname(result, Int32($0))) }
            var values: [[String?]] = []
            values.reserveCapacity(count)
            for row in 0..<count {
                values.append(
                    (0..<fields).map { column in
                        PQgetisnull(result, Int32(row), Int32(column)) == 1
                            ? nil : String(cString: PQgetvalue(result, Int32(row), Int32(column)))
                    })
            }
            return PostgresRows(columns: columns, values: values, affectedRows: count)
        default:
            throw failure(result)
        }
    }

    private func failure(_ result: OpaquePointer?) -> DriverError {
        let sqlState = result.flatMap { PQresultErrorField($0, parley_pg_diag_sqlstate()) }.map { String(cString: $0) }
        let message =
            (result.flatMap { PQresultErrorMessage($0) } ?? PQerrorMessage(connection))
            .map { String(cString: $0) }?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "unknown error"
        if PQstatus(connection) != CONNECTION_OK || sqlState == nil {
            broken = true
            return DriverError(.postgres, .unavailable, "connection lost: \(message)", sqlState: sqlState)
        }
        // Class 57 (operator intervention: admin shutdown, terminated backend) and
        // class 08 (connection exception): this connection is not to be reused.
        if let sqlState, sqlState.hasPrefix("57P") || sqlState.hasPrefix("08") {
            broken = true
            return DriverError(.postgres, .unavailable, message, sqlState: sqlState)
        }
        if sqlState == "57014" { return DriverError(.postgres, .timeout, message, sqlState: sqlState) }
        if sqlState == "23505" { return DriverError(.postgres, .duplicateKey, message, sqlState: sqlState) }
        return DriverError(.postgres, .server, message, sqlState: sqlState)
    }
}

private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    withOptionalCStrings(strings.map(Optional.some)) { pointers in
        // Keyword/value arrays end with a NULL entry.
        body(pointers)
    }
}

/// Lends C strings (NULL for `nil`) followed by a terminating NULL pointer.
private func withOptionalCStrings<R>(_ strings: [String?], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let owned: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0)! } }
    defer { for pointer in owned { free(pointer) } }
    var pointers: [UnsafePointer<CChar>?] = owned.map { $0.map { UnsafePointer($0) } }
    pointers.append(nil)
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
