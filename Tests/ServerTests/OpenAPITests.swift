import Foundation
import TestSupport
import Testing

@Suite("OpenAPI document")
struct OpenAPITests {
    /// Every documented operation, called with real ids and a minimal body, answers with
    /// one of its documented statuses (and errors in the contract's shape). The server
    /// itself refuses to start when a route is undocumented or a documented one missing,
    /// so a running server is the other half of the check.
    @Test func everyDocumentedOperationAnswersAsDocumented() async throws {
        let s = try await ServerProcess()
        let me = try await s.register("apiowner")
        let other = try await s.register("apiother")
        let room = try #require(
            try await s.request("POST", "/v1/rooms", token: me.token, body: ["name": "spec", "invite": [other.id]])["room", "id"] as? String
        )
        let message = try #require(
            try await s.request("POST", "/v1/rooms/\(room)/messages", token: me.token, body: ["body": "spec"])["message", "id"] as? String)
        let document = try await s.request("GET", "/openapi.json")
        #expect(document.json["openapi"] as? String == "3.0.3")
        let paths = try #require(document.json["paths"] as? [String: [String: [String: Any]]])
        #expect(paths.count >= 20)
        for (path, methods) in paths.sorted(by: { $0.key < $1.key }) {
            for (method, operation) in methods {
                let concrete = path.replacingOccurrences(of: "{roomId}", with: room).replacingOccurrences(of: "{userId}", with: other.id)
                    .replacingOccurrences(of: "{messageId}", with: message)
                var body: [String: Any]?
                if let schema =
                    (((operation["requestBody"] as? [String: Any])?["content"] as? [String: Any])?["application/json"] as? [String: Any])?[
                        "schema"] as? [String: Any]
                {
                    let required = (schema["required"] as? [String]) ?? ["body"]
                    body = Dictionary(
                        uniqueKeysWithValues: required.map { key -> (String, Any) in
                            switch key {
                            case "seq": return (key, 1)
                            case "role": return (key, "member")
                            case "password": return (key, "long enough password")
                            case "username": return (key, "spec\(UInt16.random(in: 100...999))")
                            case "userId": return (key, other.id)
                            default: return (key, "spec value")
                            }
                        })
                }
                let result = try await s.request(
                    method.uppercased(), concrete + (path == "/v1/users" ? "?username=apiother" : ""),
                    token: operation["security"] == nil ? nil : me.token, body: body)
                let documented = Set(((operation["responses"] as? [String: Any]) ?? [:]).keys.compactMap(Int.init))
                #expect(
                    documented.contains(result.status),
                    "\(method.uppercased()) \(path) answered \(result.status), documented \(documented.sorted())")
                if result.status >= 400 { #expect(result.error != nil, "\(method.uppercased()) \(path): \(result.text)") }
            }
        }
        try await s.cleanUp()
    }

    /// docs/api.md is checked against the served document: every operation has its row,
    /// with the document's summary and whether it needs a token, and every row is an
    /// operation of the document.
    @Test func docsAPIHasARowForEveryOperationAndNoOther() async throws {
        let s = try await ServerProcess()
        let document = try await s.request("GET", "/openapi.json")
        let paths = try #require(document.json["paths"] as? [String: [String: [String: Any]]])
        let markdown = try String(contentsOf: repositoryRoot.appendingPathComponent("docs/api.md"), encoding: .utf8)
        // Rows look like: | `POST /v1/rooms` | Create a group room | yes | ...
        var rows: [String: (summary: String, auth: String)] = [:]
        for line in markdown.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count > 4, cells[1].hasPrefix("`"), cells[1].hasSuffix("`") else { continue }
            let operation = String(cells[1].dropFirst().dropLast())
            guard let verb = operation.split(separator: " ").first, ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(String(verb)) else {
                continue
            }
            rows[operation] = (cells[2], cells[3])
        }
        var documented: Set<String> = []
        for (path, methods) in paths {
            for (method, operation) in methods {
                let key = "\(method.uppercased()) \(path)"
                documented.insert(key)
                let row = rows[key]
                #expect(row != nil, "docs/api.md has no row for \(key)")
                #expect(row?.summary == operation["summary"] as? String, "\(key): summary in docs/api.md differs from /openapi.json")
                #expect(row?.auth == (operation["security"] == nil ? "no" : "yes"), "\(key): auth column")
            }
        }
        #expect(
            Set(rows.keys).subtracting(documented).isEmpty,
            "rows of docs/api.md not in /openapi.json: \(Set(rows.keys).subtracting(documented))")
        try await s.cleanUp()
    }
}
