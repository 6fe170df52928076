import Foundation

/// Where a Redis server is and how to log in, parsed from `redis://[[user]:password@]host[:port][/db]`.
public struct RedisEndpoint: Sendable, Equatable {
    /// The server's host name or address, as written in the URL.
    public var host: String
    /// The TCP port; 6379 when the URL names none.
    public var port: Int
    /// The ACL user for `AUTH user password`; nil (also for an empty name) sends `AUTH password` alone.
    public var username: String?
    /// The password, percent-decoded; nil means no AUTH is sent at all.
    public var password: String?
    /// The logical database selected after connecting (`/db` in the URL); 0, the default, sends no SELECT.
    public var database: Int

    /// Throws `.invalid` for a URL that is not `redis://` with a host, or whose database is not a number.
    public init(url: String) throws {
        guard let components = URLComponents(string: url), components.scheme == "redis",
            let host = components.host, !host.isEmpty
        else {
            throw DriverError(.redis, .invalid, "not a redis:// URL: \(redactingPassword(url))")
        }
        self.host = host
        self.port = components.port ?? 6379
        let user = components.percentEncodedUser?.removingPercentEncoding
        self.username = (user?.isEmpty ?? true) ? nil : user
        self.password = components.percentEncodedPassword?.removingPercentEncoding
        let path = components.path.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        guard path.isEmpty || Int(path) != nil else {
            throw DriverError(.redis, .invalid, "the database in \(redactingPassword(url)) is not a number")
        }
        self.database = Int(path) ?? 0
    }
}

/// A URL with its password replaced by `***`, for error messages and logs.
public func redactingPassword(_ url: String) -> String {
    guard var components = URLComponents(string: url), components.password != nil else { return url }
    components.password = "***"
    return components.string ?? url
}
