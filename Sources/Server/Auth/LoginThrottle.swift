import Foundation
import HTTPTypes
import Hummingbird
import Metrics

/// Limits password guessing. Every login attempt takes a token of its client address's
/// bucket; every failed one also takes a token of the username's, whichever address it
/// came from, and a username whose bucket is empty is refused (429, with `retryAfterMs`)
/// before its password is even checked. A guesser spread over many addresses is slowed
/// by the second; the real user, who knows the password, never spends it.
struct LoginThrottle: Sendable {
    let perAddress: RateLimiter
    let failuresPerUsername: RateLimiter

    /// `attemptsPerMinute` per address (and as its burst); `failuresPerHour` per username, with `failureBurst` at once.
    init(attemptsPerMinute: Int, failuresPerHour: Int, failureBurst: Int) {
        perAddress = RateLimiter(perSecond: Double(attemptsPerMinute) / 60, burst: attemptsPerMinute)
        failuresPerUsername = RateLimiter(perSecond: Double(failuresPerHour) / 3600, burst: failureBurst)
    }

    /// Throws 429 when the address is over its rate or the username has failed too often lately.
    func admit(address: String, username: String) throws {
        do {
            try perAddress.check(address)
        } catch {
            Counter(label: "parley.login.throttled", dimensions: [("by", "address")]).increment()
            throw error
        }
        if let wait = failuresPerUsername.peek(Self.key(username)) {
            Counter(label: "parley.login.throttled", dimensions: [("by", "username")]).increment()
            throw APIError(
                .tooManyRequests, .rateLimited, "too many failed logins for this user; retry in \(wait) ms", retryAfterMs: wait)
        }
    }

    /// Counts a failed login against `username`.
    func failed(username: String) {
        _ = failuresPerUsername.take(Self.key(username))
    }

    /// Usernames compare case-insensitively here, so that `Ann` and `ann` share one budget.
    static func key(_ username: String) -> String { username.lowercased() }
}

/// Who a request came from: its peer's address, or, when the peer is one of the trusted
/// proxies (`PARLEY_TRUSTED_PROXIES`), the nearest address in `X-Forwarded-For` that is not
/// one of them. A client cannot pick its own address by sending the header: from an
/// untrusted peer the header is ignored.
struct ClientAddress: Sendable {
    static let forwardedFor = HTTPField.Name("X-Forwarded-For")!
    /// Proxy addresses, exactly as they connect (`10.0.0.5`, `::1`).
    let trusted: Set<String>

    func of(_ request: Request, peer: String?) -> String {
        let peer = peer ?? "?"
        guard trusted.contains(peer), let header = request.headers[Self.forwardedFor] else { return peer }
        let hops = header.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return hops.last { !trusted.contains($0) } ?? hops.first ?? peer
    }
}
