import Foundation
import NIOConcurrencyHelpers

/// A token bucket per key (a user, an address): `rate` tokens a second up to `burst`.
/// A refused take says how long until a token is there.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: ContinuousClock.Instant
    }

    let rate: Double
    let burst: Double
    private let buckets = NIOLockedValueBox<[String: Bucket]>([:])

    init(perSecond rate: Double, burst: Int) {
        self.rate = max(rate, 0.001)
        self.burst = Double(max(burst, 1))
    }

    /// Takes a token for `key`; nil when allowed, else the milliseconds to wait.
    func take(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        buckets.withLockedValue { buckets in
            if buckets.count > 100_000 { buckets.removeAll(keepingCapacity: true) }  // bounded memory
            var bucket = buckets[key] ?? Bucket(tokens: burst, updated: now)
            let elapsed = now - bucket.updated
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            bucket.tokens = min(burst, bucket.tokens + seconds * rate)
            bucket.updated = now
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return Int(((1 - bucket.tokens) / rate * 1000).rounded(.up))
        }
    }

    /// Throws 429 `rate_limited` with `retryAfterMs` when `key` is over its rate.
    func check(_ key: String) throws {
        if let wait = take(key) {
            throw APIError(.tooManyRequests, .rateLimited, "too many requests; retry in \(wait) ms", retryAfterMs: wait)
        }
    }
}
