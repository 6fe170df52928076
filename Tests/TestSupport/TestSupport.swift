@_exported import Drivers
import Foundation

/// The stores `scripts/services` started (its `env` lines), and helpers to start private
/// servers for the tests that stop them.
public enum TestStores {
    public static let environment = ProcessInfo.processInfo.environment
    public static let redisURL = environment["PARLEY_REDIS_URL"] ?? StoreConfiguration.defaultRedisURL
    public static let mongoURI = environment["PARLEY_MONGO_URI"] ?? StoreConfiguration.defaultMongoURI
    public static let postgresURL = environment["PARLEY_POSTGRES_URL"] ?? StoreConfiguration.defaultPostgresURL
    /// The seed nodes of the Redis Cluster the tests run against (`PARLEY_TEST_REDIS=cluster` in `scripts/test`
    /// exports `PARLEY_REDIS_CLUSTER`); empty for the single Redis.
    public static let redisCluster = (environment["PARLEY_REDIS_CLUSTER"] ?? "").split(separator: ",").map(String.init)

    /// A name no other test (or earlier run) uses: tests run in parallel on shared servers.
    public static func unique(_ prefix: String) -> String {
        "\(prefix)_\(UInt32.random(in: 0...UInt32.max))_\(UInt16.random(in: 0...UInt16.max))"
    }

    /// Drops every messages collection a test's read model named `base` may have made: the live one, its shadow,
    /// verify and versioned copies (`<base>_v<n>`, as shadow rebuilds make them), their checkpoints, and the pointer.
    public static func dropMessagesAreas(_ mongo: MongoClient, base: String) async throws {
        for suffix in ["", "_shadow", "_verify"] + (1...9).map({ "_v\($0)" }) {
            try await mongo.collection(base + suffix).drop()
            try await mongo.collection(base + suffix + "_checkpoints").drop()
        }
        try await mongo.collection(base + "_pointer").drop()
    }

    public static func redis(maxConnections: Int = 8) throws -> RedisClient {
        try RedisClient(.init(url: redisURL, maxConnections: maxConnections, cluster: redisCluster))
    }

    public static func mongo() throws -> MongoClient {
        // A long connect timeout: the tests load one single-threaded nx-27017 with many clients at once.
        try MongoClient(.init(uri: mongoURI, connectTimeout: .seconds(15)))
    }

    public static func postgres(url: String = postgresURL, maxConnections: Int = 4) -> PostgresClient {
        PostgresClient(.init(url: url, maxConnections: maxConnections))
    }

    /// A port nothing listens on now, below the kernel's ephemeral range (32768–60999 by default). A port the kernel hands
    /// out for binding port 0 is in that range, where the suite's hundreds of outgoing store connections also take theirs:
    /// one took such a port before the server bound it ("Address already in use", seen in CI).
    ///
    /// A port is handed out once per test process: two servers started at the same moment could otherwise both find the
    /// same port free, one fail to bind it, and its test talk to the other's server (seen in CI: a rate limit that did not
    /// apply, then "couldn't connect" once the other test stopped its server).
    public static func freePort() -> Int {
        for _ in 0..<500 {
            let port = Int.random(in: 20_000..<32_000)
            let fresh = portsLock.withLock { portsHandedOut.insert(port).inserted }
            if fresh, bindable(port) { return port }
        }
        // All taken (never seen): one the kernel picks.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                _ = bind(fd, $0, length)
                _ = getsockname(fd, $0, &length)
            }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    private static let portsLock = NSLock()
    /// Ports handed out by `freePort` in this process (at most a few hundred a run).
    nonisolated(unsafe) private static var portsHandedOut: Set<Int> = []

    /// Whether `port` of 127.0.0.1 can be bound now (0: any).
    private static func bindable(_ port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 }
        }
    }
}

/// A server process a test owns: started on a free port, stopped (SIGKILL) and started
/// again on the same port, removed at the end.
///
/// `@unchecked Sendable`: a test drives it from one task at a time.
public final class PrivateServer: @unchecked Sendable {
    public let port: Int
    public let directory: URL
    private let launch: (Int, URL) -> (String, [String], String?)
    private var process: Process?
    private var underRunuser = false

    /// - Parameter launch: the executable, arguments and (optionally) the user to run as.
    public init(_ name: String, launch: @escaping (Int, URL) -> (String, [String], String?)) throws {
        self.port = TestStores.freePort()
        self.directory = URL(fileURLWithPath: "/tmp").appendingPathComponent(TestStores.unique("parley-\(name)"))
        self.launch = launch
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        chmod(directory.path, 0o777)
    }

    public func start() async throws {
        let (executable, arguments, user) = launch(port, directory)
        underRunuser = user != nil
        let process = Process()
        if let user {
            process.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
            process.arguments = ["-u", user, "--", executable] + arguments
        } else {
            process.executableURL = URL(fileURLWithPath: executable)
            process.arguments = arguments
        }
        let log = directory.appendingPathComponent("server.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        handle.seekToEndOfFile()
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        self.process = process
        try await waitUntilListening()
    }

    /// Kills the server at once, as a crash would, and waits (without blocking a thread)
    /// until its port is free.
    public func kill() async {
        guard let process else { return }
        if process.isRunning && !underRunuser {
            Foundation.kill(process.processIdentifier, SIGKILL)
            for _ in 0..<200 where process.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
        } else if process.isRunning {
            // Under runuser the server is runuser's child: kill it first, as a crash would.
            let children = Process()
            children.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
            children.arguments = ["-9", "-P", "\(process.processIdentifier)"]
            try? children.run()
            for _ in 0..<100 where children.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
            // runuser exits once it has reaped the server; killing it first would leave a
            // zombie whose pid still looks alive (postgres then refuses its lock file).
            for _ in 0..<100 where process.isRunning { try? await Task.sleep(for: .milliseconds(20)) }
            if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
        }
        self.process = nil
        // Wait until the port is free again.
        for _ in 0..<100 where isListening() { try? await Task.sleep(for: .milliseconds(50)) }
    }

    deinit {
        if let process, process.isRunning {
            if underRunuser {
                let children = Process()
                children.executableURL = URL(fileURLWithPath: "/usr/bin/pkill")
                children.arguments = ["-9", "-P", "\(process.processIdentifier)"]
                try? children.run()
            }
            Foundation.kill(process.processIdentifier, SIGKILL)
        }
        try? FileManager.default.removeItem(at: directory)
    }

    private func waitUntilListening() async throws {
        for _ in 0..<300 {
            if isListening() { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        let log = (try? String(contentsOf: directory.appendingPathComponent("server.log"), encoding: .utf8)) ?? ""
        throw DriverError(.redis, .unavailable, "test server on port \(port) did not start: \(log.suffix(600))")
    }

    private func isListening() -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}

/// Runs `body` until it stops throwing or `seconds` pass; returns its last result.
public func eventually<T>(seconds: Double = 10, _ body: () async throws -> T) async throws -> T {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        do { return try await body() } catch {
            if Date() > deadline { throw error }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

/// The repository's root folder (this file is Tests/TestSupport/TestSupport.swift).
public let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

/// What a finished process printed and how it ended.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs a built Parley executable (from `.build/debug`) with `environment` added to ours.
public func runParley(
    _ executable: String, _ arguments: [String] = [], environment: [String: String] = [:], removing: [String] = [],
    timeout: Double = 60
) async throws -> ProcessResult {
    try await runProcess(
        repositoryRoot.appendingPathComponent(".build/debug/\(executable)").path, arguments, environment: environment,
        removing: removing, timeout: timeout)
}

/// Runs the program at `path` as `runParley` does (`redis-cli`, say).
public func runProcess(
    _ path: String, _ arguments: [String] = [], environment: [String: String] = [:], removing: [String] = [],
    timeout: Double = 60
) async throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: path)
    process.arguments = arguments
    var env = ProcessInfo.processInfo.environment
    for name in removing { env[name] = nil }
    env.merge(environment) { $1 }
    process.environment = env
    process.currentDirectoryURL = repositoryRoot
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    // Read the pipes while it runs (a full pipe would stall it), waiting without blocking a thread.
    let deadline = Date().addingTimeInterval(timeout)
    while process.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
    if process.isRunning { kill(process.processIdentifier, SIGKILL) }
    while process.isRunning { try await Task.sleep(for: .milliseconds(10)) }
    return ProcessResult(
        status: process.terminationStatus,
        stdout: String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self),
        stderr: String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
}

extension PrivateServer {
    /// A PostgreSQL cluster of the test's own (initdb as `postgres`, trust, no fsync),
    /// started; `kill()` and `start()` stop and restart it on the same port and data.
    public static func postgres(_ name: String) async throws -> PrivateServer {
        guard let version = (try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql"))?.sorted().last else {
            throw DriverError(.postgres, .unavailable, "no PostgreSQL under /usr/lib/postgresql")
        }
        let bin = "/usr/lib/postgresql/\(version)/bin"
        let server = try PrivateServer(name) { port, dir in
            (
                bin + "/postgres",
                [
                    "-D", dir.appendingPathComponent("data").path, "-p", "\(port)",
                    "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                ], "postgres"
            )
        }
        let initdb = Process()
        initdb.executableURL = URL(fileURLWithPath: "/usr/sbin/runuser")
        initdb.arguments = [
            "-u", "postgres", "--", bin + "/initdb", "-D", server.directory.appendingPathComponent("data").path,
            "-A", "trust", "-U", "postgres", "--no-sync",
        ]
        initdb.standardOutput = FileHandle.nullDevice
        try initdb.run()
        while initdb.isRunning { try await Task.sleep(for: .milliseconds(20)) }
        guard initdb.terminationStatus == 0 else { throw DriverError(.postgres, .unavailable, "initdb failed") }
        try await server.start()
        return server
    }
}

extension PrivateServer {
    /// A MongoDB-protocol server (nx-27017) of the test's own with a file database in its directory, not started.
    /// Its PID file lives there too: nx-27017 refuses to start while another one's PID file (by default one path shared
    /// by every instance) names a running process.
    public static func mongo(_ name: String) throws -> PrivateServer {
        let executable = repositoryRoot.appendingPathComponent(".data/venv/bin/nx-27017").path
        return try PrivateServer(name) { port, dir in
            (
                executable,
                [
                    "--host", "127.0.0.1", "-p", "\(port)", "--db", dir.appendingPathComponent("db.sqlite").path,
                    "--pid-file", dir.appendingPathComponent("nx.pid").path,
                ], nil
            )
        }
    }
}
