import Crypto
import Foundation

/// The tamper evidence of the log: every event carries `prevHash` (the hash of the event
/// before it in its partition) and `hash`, so changing, removing, inserting or reordering
/// any event breaks the chain from that point on.
///
/// How an event is stored: the appender encodes the event without `seq`, `prevHash` and
/// `hash` (sorted keys) and drops the closing brace: that is the event's *body*. The
/// atomic append then adds `,"seq":N` (messages), `,"prevHash":"P"` and `,"hash":"H"}`
/// where
///
///     digest = SHA-256(body)                       (hex, computed by the appender)
///     H      = SHA-1(P + digest + seqText)         (hex, computed inside Redis)
///
/// The link is SHA-1 because it has to be computed inside the atomic Redis step (so that
/// appenders on several servers can never fork the chain) and Redis' Lua offers only
/// SHA-1 (`redis.sha1hex`) at native speed; a Lua SHA-256 measured 18 µs per 64-byte
/// block, over 100 µs for a typical event. The user-controlled content is covered by
/// SHA-256; the SHA-1 input is made only of hashes and a number, which leaves no room for
/// the chosen-prefix collisions known against SHA-1, and forging a link needs a second
/// preimage, for which no attack better than brute force is known.
public enum HashChain {
    /// The `prevHash` of the first event of every partition.
    public static let genesis = String(repeating: "0", count: 40)

    /// SHA-256 of a body, lowercase hex.
    public static func digest(_ body: String) -> String {
        hexString(SHA256.hash(data: Data(body.utf8)))
    }

    /// SHA-1 of the link input, lowercase hex (what `redis.sha1hex` computes).
    public static func link(prevHash: String, digest: String, seq: Int64?) -> String {
        let input = prevHash + digest + (seq.map(String.init) ?? "")
        return hexString(Insecure.SHA1.hash(data: Data(input.utf8)))
    }

    /// The body of an event as the appender hands it to the log: its JSON without `seq`,
    /// `prevHash`, `hash` and without the closing brace.
    public static func body(of event: Event) throws -> String {
        EventCodec.body(event)
    }

    /// What the log appends after the body.
    public static func suffix(seq: Int64?, prevHash: String, hash: String) -> String {
        (seq.map { ",\"seq\":\($0)" } ?? "") + ",\"prevHash\":\"\(prevHash)\",\"hash\":\"\(hash)\"}"
    }

    /// Why one stored event does not check out.
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case unreadable(String)
        case brokenLink(expectedPrevHash: String, found: String)
        case wrongHash(expected: String, found: String)
        case notCanonical

        /// One line naming what broke and the hashes involved, for the report of a chain check.
        public var description: String {
            switch self {
            case .unreadable(let why): return "unreadable event: \(why)"
            case .brokenLink(let expected, let found): return "prevHash is \(found), the event before has hash \(expected)"
            case .wrongHash(let expected, let found): return "hash is \(found), its content hashes to \(expected)"
            case .notCanonical: return "the stored bytes are not what the log writes (altered)"
            }
        }
    }

    /// Checks one stored event against the hash of the event before it; returns its hash.
    public static func verify(stored json: String, previousHash: String) -> Result<String, Failure> {
        let event: Event
        do { event = try EventCodec.decode(json) } catch { return .failure(.unreadable("\(error)")) }
        guard let hash = event.hash, let prevHash = event.prevHash else { return .failure(.unreadable("no hash or prevHash")) }
        guard prevHash == previousHash else { return .failure(.brokenLink(expectedPrevHash: previousHash, found: prevHash)) }
        let suffix = suffix(seq: event.seq, prevHash: prevHash, hash: hash)
        guard json.hasSuffix(suffix) else { return .failure(.notCanonical) }
        let body = String(json.dropLast(suffix.count))
        let expected = link(prevHash: prevHash, digest: digest(body), seq: event.seq)
        guard expected == hash else { return .failure(.wrongHash(expected: expected, found: hash)) }
        return .success(hash)
    }
}
