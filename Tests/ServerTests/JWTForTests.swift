import Crypto
import Foundation

/// An HS256 JWT signed with `secret` (or unsigned for `alg: none`), for tests that forge,
/// expire or strip tokens.
func jwt(sub: String, exp: Date, secret: String?, alg: String = "HS256") -> String {
    func b64(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(
            of: "=", with: "")
    }
    let header = b64(Data(#"{"alg":"\#(alg)","typ":"JWT"}"#.utf8))
    let payload = b64(
        Data(#"{"sub":"\#(sub)","exp":\#(Int(exp.timeIntervalSince1970)),"iat":\#(Int(Date().timeIntervalSince1970)),"iss":"parley"}"#.utf8)
    )
    guard let secret else { return "\(header).\(payload)." }
    let signature = HMAC<SHA256>.authenticationCode(for: Data("\(header).\(payload)".utf8), using: SymmetricKey(data: Data(secret.utf8)))
    return "\(header).\(payload).\(b64(Data(signature)))"
}
