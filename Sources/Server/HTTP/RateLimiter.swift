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

    /// The most keys kept. A bucket that has refilled is the same as none and is dropped first; only when every kept
    /// bucket is in use (more keys than this active at once) does the map start over.
    static let maxKeys = 100_000

    /// Takes a token for `key`; nil when allowed, else the milliseconds to wait.
    func take(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        buckets.withLockedValue { buckets in
            if buckets.count >= Self.maxKeys && buckets[key] == nil { evict(&buckets, now: now) }
            var bucket = refilled(buckets[key], now: now)
            defer { buckets[key] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return wait(bucket)
        }
    }

    /// Whether `key` has a token, without taking it: nil when it has, else the milliseconds until it will.
    func peek(_ key: String, now: ContinuousClock.Instant = .now) -> Int? {
        buckets.withLockedValue { buckets in
            let bucket = refilled(buckets[key], now: now)
            return bucket.tokens >= 1 ? nil : wait(bucket)
        }
    }

    private func refilled(_ bucket: Bucket?, now: ContinuousClock.Instant) -> Bucket {
        guard var bucket else { return Bucket(tokens: burst, updated: now) }
        let elapsed = now - bucket.updated
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        bucket.tokens = min(burst, bucket.tokens + seconds * rate)
        bucket.updated = now
        return bucket
    }

    private func wait(_ bucket: Bucket) -> Int { Int(((1 - bucket.tokens) / rate * 1000).rounded(.up)) }

    private func evict(_ buckets: inout [String: Bucket], now: ContinuousClock.Instant) {
        buckets = buckets.filter { refilled($0.value, now: now).tokens < burst }
        if buckets.count >= Self.maxKeys { buckets.removeAll(keepingCapacity: true) }
    }

    /// Throws 429 `rate_limited` with `retryAfterMs` when `key` is over its rate.
    func check(_ key: String) throws {
        if let wait = take(key) {
            throw APIError(.tooManyRequests, .rateLimited, "too many requests; retry in \(wait) ms", retryAfterMs: wait)
        }
    }
}
