import Foundation
import JWTKit

/// Signs and verifies the bearer tokens: HS256 JWTs with the user id as subject, an
/// issuer and an expiry. Only HS256 with our key is accepted, so `alg: none`, another
/// algorithm or another key fail verification.
struct Tokens: Sendable {
    struct Payload: JWTPayload {
        var sub: SubjectClaim
        var exp: ExpirationClaim
        var iat: IssuedAtClaim
        var iss: IssuerClaim

        func verify(using algorithm: some JWTAlgorithm) throws {
            try exp.verifyNotExpired()
            guard iss.value == Tokens.issuer else { throw JWTError.claimVerificationFailure(failedClaim: iss, reason: "wrong issuer") }
        }
    }

    static let issuer = "parley"
    let keys: JWTKeyCollection
    let lifetime: TimeInterval

    init(secret: String, lifetime: TimeInterval) async {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        self.keys = keys
        self.lifetime = lifetime
    }

    func issue(for userId: String, now: Date = Date()) async throws -> String {
        try await keys.sign(
            Payload(
                sub: .init(value: userId), exp: .init(value: now.addingTimeInterval(lifetime)), iat: .init(value: now),
                iss: .init(value: Self.issuer)))
    }

    /// The user id of a valid token; nil for anything else.
    func userId(from token: String) async -> String? {
        guard let payload = try? await keys.verify(token, as: Payload.self) else { return nil }
        return payload.sub.value
    }
}
