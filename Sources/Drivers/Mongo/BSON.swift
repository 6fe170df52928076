import CMongoc
import Foundation

/// A BSON value as a Swift value. Documents keep their key order (MongoDB sorts and index
/// keys depend on it).
public indirect enum BSON: Sendable, Equatable {
    case double(Double)
    case string(String)
    case document(BSONDocument)
    case array([BSON])
    case bool(Bool)
    case int32(Int32)
    case int64(Int64)
    /// Milliseconds since 1970, as BSON stores dates.
    case date(Int64)
    case objectID(String)
    case null

    /// The text of a `.string`; nil for any other type (nothing is converted).
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    /// The value of a `.bool`; nil for any other type (0 and 1 are not booleans here).
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    /// The embedded document of a `.document`; nil for any other type.
    public var documentValue: BSONDocument? { if case .document(let d) = self { return d } else { return nil } }
    /// The elements of an `.array` (e.g. a reply's `writeErrors`); nil for any other type.
    public var arrayValue: [BSON]? { if case .array(let a) = self { return a } else { return nil } }
    /// A stored BSON null; a key that is absent is a nil `BSON?` instead.
    public var isNull: Bool { self == .null }

    /// Any integer or double as an `Int64` (MongoDB servers answer counts in either width).
    public var int64Value: Int64? {
        switch self {
        case .int32(let i): return Int64(i)
        case .int64(let i): return i
        case .double(let d) where d.rounded() == d: return Int64(d)
        default: return nil
        }
    }

    /// A `.date` as a `Date` (millisecond precision); nil for any other type.
    public var dateValue: Date? {
        if case .date(let ms) = self { return Date(timeIntervalSince1970: Double(ms) / 1000) }
        return nil
    }

    /// A `Date` as BSON stores it, rounded to the millisecond: finer precision does not survive a round trip.
    public static func date(_ date: Date) -> BSON { .date(Int64((date.timeIntervalSince1970 * 1000).rounded())) }
}

extension BSON: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral
{
    /// A string literal is a `.string`, so that filters and documents can be written as literals.
    public init(stringLiteral value: String) { self = .string(value) }
    /// An integer literal is an `.int64`, never an `.int32`.
    public init(integerLiteral value: Int64) { self = .int64(value) }
    /// `true` and `false` are `.bool`.
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    /// A floating-point literal is a `.double`.
    public init(floatLiteral value: Double) { self = .double(value) }
    /// An array literal is an `.array`; its elements are BSON literals too.
    public init(arrayLiteral elements: BSON...) { self = .array(elements) }
    /// A dictionary literal is an embedded `.document`, in the literal's key order.
    public init(dictionaryLiteral elements: (String, BSON)...) { self = .document(BSONDocument(elements)) }
    /// `nil` is `.null`, a stored null (not an absent key).
    public init(nilLiteral: ()) { self = .null }
}

/// An ordered BSON document.
public struct BSONDocument: Sendable, Equatable, ExpressibleByDictionaryLiteral, Sequence, CustomStringConvertible {
    /// The key/value pairs in document order (MongoDB compares documents and index keys in it); changed through the subscript.
    public private(set) var elements: [(key: String, value: BSON)]

    /// A document with the pairs in the given order; repeated keys are kept, and the subscript sees the first.
    public init(_ elements: [(String, BSON)] = []) {
        self.elements = elements.map { (key: $0.0, value: $0.1) }
    }

    /// A literal keeps its key order (a Swift `Dictionary` would not), so sort and index specs can be literals.
    public init(dictionaryLiteral elements: (String, BSON)...) {
        self.init(elements)
    }

    /// The value under `key`; setting `nil` removes the key, setting a new key appends it.
    public subscript(key: String) -> BSON? {
        get { elements.first(where: { $0.key == key })?.value }
        set {
            let index = elements.firstIndex(where: { $0.key == key })
            switch (index, newValue) {
            case (let i?, let v?): elements[i].value = v
            case (let i?, nil): elements.remove(at: i)
            case (nil, let v?): elements.append((key: key, value: v))
            case (nil, nil): break
            }
        }
    }

    /// The keys in document order.
    public var keys: [String] { elements.map(\.key) }
    /// True for `[:]`, which as a filter matches every document.
    public var isEmpty: Bool { elements.isEmpty }

    /// The pairs in document order.
    public func makeIterator() -> IndexingIterator<[(key: String, value: BSON)]> { elements.makeIterator() }

    /// The same keys with equal values in the same order: `["a": 1, "b": 2]` is not `["b": 2, "a": 1]`.
    public static func == (lhs: BSONDocument, rhs: BSONDocument) -> Bool {
        lhs.elements.count == rhs.elements.count
            && zip(lhs.elements, rhs.elements).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }

    /// Relaxed extended JSON, as libbson prints it (for logs and error messages).
    public var description: String {
        withBSON { pointer in
            var length = 0
            guard let json = bson_as_relaxed_extended_json(pointer, &length) else { return "{}" }
            defer { bson_free(json) }
            return String(cString: json)
        }
    }
}

// MARK: - Conversion to and from libbson

extension BSONDocument {
    /// Lends a libbson copy of this document to `body`; it is destroyed when `body` returns.
    public func withBSON<T>(_ body: (OpaquePointer) throws -> T) rethrows -> T {
        let pointer = bson_new()!
        defer { bson_destroy(pointer) }
        Self.append(self, to: pointer)
        return try body(pointer)
    }

    /// Copies a libbson document into a Swift value.
    public init(copying pointer: OpaquePointer) {
        let iterator = parley_bson_iter_new()!
        defer { parley_bson_iter_free(iterator) }
        guard bson_iter_init(iterator, pointer) else {
            self.init()
            return
        }
        self.init(Self.read(iterator))
    }

    private static func append(_ document: BSONDocument, to pointer: OpaquePointer) {
        for (key, value) in document.elements { append(value, key: key, to: pointer) }
    }

    private static func append(_ value: BSON, key: String, to pointer: OpaquePointer) {
        switch value {
        case .double(let d): bson_append_double(pointer, key, -1, d)
        case .string(let s):
            var s = s
            s.withUTF8 { bytes in
                bytes.withMemoryRebound(to: CChar.self) { chars in
                    if let base = chars.baseAddress {
                        _ = bson_append_utf8(pointer, key, -1, base, Int32(bytes.count))
                    } else {
                        _ = bson_append_utf8(pointer, key, -1, "", 0)
                    }
                }
            }
        case .document(let child):
            let childPointer = bson_new()!
            defer { bson_destroy(childPointer) }
            append(child, to: childPointer)
            bson_append_document(pointer, key, -1, childPointer)
        case .array(let items):
            let childPointer = bson_new()!
            defer { bson_destroy(childPointer) }
            for (index, item) in items.enumerated() { append(item, key: String(index), to: childPointer) }
            bson_append_array(pointer, key, -1, childPointer)
        case .bool(let b): bson_append_bool(pointer, key, -1, b)
        case .int32(let i): bson_append_int32(pointer, key, -1, i)
        case .int64(let i): bson_append_int64(pointer, key, -1, i)
        case .date(let ms): bson_append_date_time(pointer, key, -1, ms)
        case .objectID(let hex):
            var oid = bson_oid_t()
            if bson_oid_is_valid(hex, hex.utf8.count) {
                bson_oid_init_from_string(&oid, hex)
                bson_append_oid(pointer, key, -1, &oid)
            } else {
                bson_append_utf8(pointer, key, -1, hex, -1)
            }
        case .null: bson_append_null(pointer, key, -1)
        }
    }

    private static func read(_ iterator: OpaquePointer) -> [(String, BSON)] {
        var result: [(String, BSON)] = []
        while bson_iter_next(iterator) {
            result.append((String(cString: bson_iter_key(iterator)), value(at: iterator)))
        }
        return result
    }

    private static func value(at iterator: OpaquePointer) -> BSON {
        let type = bson_iter_type(iterator)
        switch type {
        case BSON_TYPE_DOUBLE: return .double(bson_iter_double(iterator))
        case BSON_TYPE_UTF8:
            var length: UInt32 = 0
            guard let chars = bson_iter_utf8(iterator, &length) else { return .string("") }
            return chars.withMemoryRebound(to: UInt8.self, capacity: Int(length)) {
                .string(String(decoding: UnsafeBufferPointer(start: $0, count: Int(length)), as: UTF8.self))
            }
        case BSON_TYPE_DOCUMENT, BSON_TYPE_ARRAY:
            let child = parley_bson_iter_new()!
            defer { parley_bson_iter_free(child) }
            guard bson_iter_recurse(iterator, child) else { return .null }
            let elements = read(child)
            return type == BSON_TYPE_ARRAY ? .array(elements.map(\.1)) : .document(BSONDocument(elements))
        case BSON_TYPE_BOOL: return .bool(bson_iter_bool(iterator))
        case BSON_TYPE_INT32: return .int32(bson_iter_int32(iterator))
        case BSON_TYPE_INT64: return .int64(bson_iter_int64(iterator))
        case BSON_TYPE_DATE_TIME: return .date(bson_iter_date_time(iterator))
        case BSON_TYPE_OID:
            guard let oid = bson_iter_oid(iterator) else { return .null }
            var text = [CChar](repeating: 0, count: 25)
            bson_oid_to_string(oid, &text)
            return .objectID(String(cString: text))
        default: return .null
        }
    }
}
