import Foundation
import Hummingbird

/// The OpenAPI 3 document of the HTTP API, served at `/openapi.json`. At start the server
/// checks that every route it registered is documented here and that every documented
/// operation is a route (`OpenAPI.check`), and refuses to start otherwise.
enum OpenAPI {
    struct Operation {
        let method: String
        let path: String
        let summary: String
        var auth = true
        var body: [String: Any]? = nil
        var query: [[String: Any]] = []
        /// Status → schema name (nil: no body).
        let responses: [Int: String?]
    }

    static var errors: [Int: String?] {
        [400: "Error", 401: "Error", 403: "Error", 404: "Error", 409: "Error", 413: "Error", 429: "Error", 503: "Error"]
    }

    static func object(_ properties: [String: [String: Any]], required: [String] = []) -> [String: Any] {
        var schema: [String: Any] = ["type": "object", "properties": properties]
        if !required.isEmpty { schema["required"] = required }
        return schema
    }
    static var string: [String: Any] { ["type": "string"] }
    /// Any run of characters but U+0000, as a pattern fragment (anchored by `text` and the `clientMsgId` schema).
    static let noNUL = "[^\\x00]*"
    /// A string the rules accept: `max` characters at most, not only white space, no U+0000 (which no read model can
    /// keep: refused with 400).
    static func text(max: Int, description: String? = nil) -> [String: Any] {
        var schema: [String: Any] = ["type": "string", "maxLength": max, "pattern": "^" + noNUL + "[^\\x00\\s]" + noNUL + "$"]
        if let description { schema["description"] = description }
        return schema
    }
    /// An optional field that may also be null (the same as absent).
    static func nullable(_ schema: [String: Any]) -> [String: Any] { schema.merging(["nullable": true]) { a, _ in a } }
    static func query(_ name: String, _ schema: [String: Any], required: Bool = false) -> [String: Any] {
        ["name": name, "in": "query", "required": required, "schema": schema]
    }
    static var integer: [String: Any] { ["type": "integer", "format": "int64"] }
    static func ref(_ name: String) -> [String: Any] { ["$ref": "#/components/schemas/\(name)"] }
    /// A message body: the server counts bytes (PARLEY_MAX_MESSAGE_BYTES, 4000 by default);
    /// 1,000 characters always fit in the default.
    static var messageBody: [String: Any] {
        text(max: 1000, description: "at most PARLEY_MAX_MESSAGE_BYTES bytes of UTF-8 (4000 by default; larger: 413)")
    }

    /// A reaction: 1 to 32 bytes of UTF-8 without white space or control characters (8 characters always fit).
    static var emoji: [String: Any] {
        [
            "type": "string", "minLength": 1, "maxLength": 8, "pattern": "^[^\\s\\x00-\\x1f\\x7f\\x85]+$",
            "description": "1 to 32 bytes of UTF-8, no white space",
        ]
    }

    static var operations: [Operation] {
        [
            .init(
                method: "post", path: "/v1/auth/register", summary: "Create an account", auth: false,
                body: object(
                    [
                        "username": [
                            "type": "string", "pattern": "^[A-Za-z0-9_.-]{3,32}$",
                            "description": "3 to 32 of a-z, 0-9, _ . - (stored lowercased)",
                        ],
                        "password": ["type": "string", "minLength": 8, "maxLength": 128], "displayName": nullable(text(max: 64)),
                    ], required: ["username", "password"]),
                responses: [201: "Auth"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/auth/login", summary: "Log in", auth: false,
                body: object(["username": string, "password": string], required: ["username", "password"]),
                responses: [200: "Auth"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/me", summary: "The authenticated user",
                responses: [200: "UserEnvelope"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/users/{userId}", summary: "A user", responses: [200: "UserEnvelope"].merging(errors) { a, _ in a }
            ),
            .init(
                method: "get", path: "/v1/users", summary: "A user by username (?username=)",
                query: [query("username", ["type": "string", "minLength": 1], required: true)],
                responses: [200: "UserEnvelope"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/users/{userId}/messages", summary: "Send a private message (creates the direct room once)",
                body: ref("SendBody"), responses: [200: "DirectMessage", 201: "DirectMessage"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/rooms", summary: "Create a group room",
                body: object(
                    ["name": text(max: 100), "invite": ["type": "array", "items": string, "maxItems": 100, "nullable": true]],
                    required: ["name"]),
                responses: [201: "RoomEnvelope"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/rooms", summary: "My rooms with last message, unread count and role",
                responses: [200: "RoomList"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/rooms/{roomId}", summary: "A room with its members",
                responses: [200: "RoomEnvelope"].merging(errors) { a, _ in a }),
            .init(
                method: "patch", path: "/v1/rooms/{roomId}", summary: "Rename a room (owner or admin)",
                body: object(["name": text(max: 100)], required: ["name"]), responses: [200: "Result"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/rooms/{roomId}/invites", summary: "Invite a user (owner or admin)",
                body: object(["userId": string], required: ["userId"]), responses: [201: "Result"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/invites", summary: "My pending invites",
                responses: [200: "InviteList"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/rooms/{roomId}/join", summary: "Accept an invite",
                responses: [200: "Result"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/rooms/{roomId}/decline", summary: "Decline an invite",
                responses: [200: "Result"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/rooms/{roomId}/leave", summary: "Leave a room",
                responses: [200: "Result"].merging(errors) { a, _ in a }),
            .init(
                method: "delete", path: "/v1/rooms/{roomId}/members/{userId}", summary: "Remove a member (owner or admin)",
                responses: [200: "Result"].merging(errors) { a, _ in a }),
            .init(
                method: "put", path: "/v1/rooms/{roomId}/members/{userId}/role", summary: "Set a member's role (owner)",
                body: object(["role": ["type": "string", "enum": ["admin", "member"]]], required: ["role"]),
                responses: [200: "Result"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/rooms/{roomId}/messages", summary: "Send a message", body: ref("SendBody"),
                responses: [200: "MessageEnvelope", 201: "MessageEnvelope"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/rooms/{roomId}/messages", summary: "A page of history (?before=&after=&limit=)",
                query: [
                    query("before", ["type": "integer", "minimum": 0]), query("after", ["type": "integer", "minimum": 0]),
                    query("limit", ["type": "integer", "minimum": 1, "maximum": 200]),
                ],
                responses: [200: "History"].merging(errors) { a, _ in a }),
            .init(
                method: "patch", path: "/v1/rooms/{roomId}/messages/{messageId}", summary: "Edit my message",
                body: object(["body": messageBody], required: ["body"]), responses: [200: "Result"].merging(errors) { a, _ in a }),
            .init(
                method: "delete", path: "/v1/rooms/{roomId}/messages/{messageId}", summary: "Delete a message (sender, admin or owner)",
                responses: [200: "Result"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/rooms/{roomId}/read", summary: "Read receipt",
                body: object(["seq": ["type": "integer", "format": "int64", "minimum": 0]], required: ["seq"]),
                responses: [200: "Result"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/rooms/{roomId}/messages/{messageId}/thread",
                summary: "A page of a thread's replies, oldest first (?after=&limit=)",
                query: [
                    query("after", ["type": "integer", "minimum": 0]), query("limit", ["type": "integer", "minimum": 1, "maximum": 200]),
                ],
                responses: [200: "History"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/rooms/{roomId}/messages/{messageId}/reactions",
                summary: "React to a message (201; 200 when the reaction is there already)",
                body: object(["emoji": emoji], required: ["emoji"]),
                responses: [200: "ReactionResult", 201: "ReactionResult"].merging(errors) { a, _ in a }),
            .init(
                method: "delete", path: "/v1/rooms/{roomId}/messages/{messageId}/reactions/{emoji}",
                summary: "Take my reaction off a message (the emoji URL-encoded)",
                responses: [200: "ReactionResult"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/rooms/{roomId}/pins", summary: "The room's pinned messages, latest pin first",
                responses: [200: "PinList"].merging(errors) { a, _ in a }),
            .init(
                method: "put", path: "/v1/rooms/{roomId}/pins/{messageId}",
                summary: "Pin a message (owner or admin of a group, either member of a direct room; at most 50)",
                responses: [200: "PinResult", 201: "PinResult"].merging(errors) { a, _ in a }),
            .init(
                method: "delete", path: "/v1/rooms/{roomId}/pins/{messageId}", summary: "Unpin a message",
                responses: [200: "PinResult"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/rooms/{roomId}/receipts", summary: "How far each member has read, furthest first",
                responses: [200: "ReceiptList"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/rooms/{roomId}/bans/{userId}",
                summary: "Ban a user: removed and kept out until unbanned (owner over admins, admins over members)",
                body: object(["reason": nullable(text(max: 500))]), responses: [200: "ModerationResult"].merging(errors) { a, _ in a }),
            .init(
                method: "delete", path: "/v1/rooms/{roomId}/bans/{userId}", summary: "Unban a user (owner or admin)",
                responses: [200: "ModerationResult"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/rooms/{roomId}/bans", summary: "The users banned from the room (owner or admin)",
                responses: [200: "BanList"].merging(errors) { a, _ in a }),
            .init(
                method: "post", path: "/v1/rooms/{roomId}/mutes/{userId}",
                summary: "Mute a member: they read but do not send, edit, react or pin (until a time, or until unmuted)",
                body: object(["until": nullable(["type": "string", "format": "date-time"])]),
                responses: [200: "ModerationResult"].merging(errors) { a, _ in a }),
            .init(
                method: "delete", path: "/v1/rooms/{roomId}/mutes/{userId}", summary: "Unmute a member (owner or admin)",
                responses: [200: "ModerationResult"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/me/blocks", summary: "The users I block",
                responses: [200: "BlockList"].merging(errors) { a, _ in a }),
            .init(
                method: "put", path: "/v1/me/blocks/{userId}", summary: "Block a user: no private messages or invites from them",
                responses: [200: "ModerationResult"].merging(errors) { a, _ in a }),
            .init(
                method: "delete", path: "/v1/me/blocks/{userId}", summary: "Unblock a user",
                responses: [200: "ModerationResult"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/users/{userId}/presence", summary: "Whether a user is online, and when they were last seen",
                responses: [200: "Presence"].merging(errors) { a, _ in a }),
            .init(
                method: "get", path: "/v1/search",
                summary: "Messages matching words (each a prefix) and \"quoted phrases\" in the rooms I am a joined member of",
                query: [
                    query("q", ["type": "string", "minLength": 1, "maxLength": 500], required: true),
                    query("roomId", string), query("order", ["type": "string", "enum": ["time", "rank"]]),
                    query("limit", ["type": "integer", "minimum": 1, "maximum": 100]),
                    query(
                        "before",
                        [
                            "type": "string", "pattern": "^(t\\.[0-9]{1,15}\\.[0-9]{1,15}\\.[^\\x00]+|r\\.[0-9]{1,9})$",
                            "description": "the `next` of the previous page",
                        ]),
                ],
                responses: [200: "SearchResults"].merging(errors) { a, _ in a }),
            .init(method: "get", path: "/healthz", summary: "Liveness", auth: false, responses: [200: "Health"]),
            .init(
                method: "get", path: "/readyz", summary: "Readiness: stores reachable, projector lag", auth: false,
                responses: [200: "Health", 503: "Health"]),
            .init(method: "get", path: "/metrics", summary: "Prometheus metrics (text)", auth: false, responses: [200: nil]),
            .init(method: "get", path: "/openapi.json", summary: "This document", auth: false, responses: [200: nil]),
        ]
    }

    static var schemas: [String: Any] {
        [
            "Error": object(
                ["error": object(["code": string, "message": string, "retryAfterMs": integer], required: ["code", "message"])],
                required: ["error"]),
            "User": object([
                "id": string, "username": string, "displayName": string, "createdAt": ["type": "string", "format": "date-time"],
            ]),
            "UserEnvelope": object(["user": ref("User")], required: ["user"]),
            "Auth": object(["user": ref("User"), "token": string], required: ["user", "token"]),
            "Message": object([
                "id": string, "roomId": string, "seq": integer, "senderId": string, "body": ["type": "string", "nullable": true],
                "clientMsgId": ["type": "string", "nullable": true], "sentAt": ["type": "string", "format": "date-time"],
                "editedAt": ["type": "string", "format": "date-time", "nullable": true], "deleted": ["type": "boolean"],
                "replyTo": ["type": "string", "nullable": true],
                "threadRootId": ["type": "string", "nullable": true],
                "mentions": ["type": "array", "items": string],
                "thread": nullable(
                    object([
                        "replyCount": integer, "lastReplyAt": ["type": "string", "format": "date-time"], "lastReplySeq": integer,
                    ])),
                "reactions": [
                    "type": "array",
                    "items": object(["emoji": string, "count": integer, "me": ["type": "boolean"]], required: ["emoji", "count", "me"]),
                ],
            ]),
            "MessageEnvelope": object(["message": ref("Message")], required: ["message"]),
            "ReactionResult": object(
                ["reaction": object(["messageId": string, "emoji": string, "reacted": ["type": "boolean"]])], required: ["reaction"]),
            "ModerationResult": ["type": "object"],
            "SearchResults": object(
                [
                    "results": [
                        "type": "array",
                        "items": object(
                            ["message": ref("Message"), "roomId": string, "rank": ["type": "number"]],
                            required: ["message", "roomId", "rank"]),
                    ],
                    "hasMore": ["type": "boolean"],
                    "next": nullable(string),
                ], required: ["results", "hasMore"]),
            "Presence": object(
                [
                    "userId": string, "status": ["type": "string", "enum": ["online", "offline"]],
                    "lastSeenAt": ["type": "string", "format": "date-time", "nullable": true],
                ], required: ["userId", "status"]),
            "BanList": object(
                [
                    "bans": [
                        "type": "array",
                        "items": object([
                            "userId": string, "bannedBy": nullable(string), "reason": nullable(string),
                            "at": ["type": "string", "format": "date-time", "nullable": true],
                        ]),
                    ]
                ], required: ["bans"]),
            "BlockList": object(
                [
                    "blocks": [
                        "type": "array", "items": object(["userId": string, "at": ["type": "string", "format": "date-time"]]),
                    ]
                ], required: ["blocks"]),
            "PinResult": object(["pin": object(["messageId": string, "pinned": ["type": "boolean"]])], required: ["pin"]),
            "PinList": object(
                [
                    "pins": [
                        "type": "array",
                        "items": object([
                            "message": ref("Message"), "pinnedBy": string, "pinnedAt": ["type": "string", "format": "date-time"],
                        ]),
                    ]
                ], required: ["pins"]),
            "ReceiptList": object(
                [
                    "receipts": [
                        "type": "array",
                        "items": object([
                            "userId": string, "seq": integer, "at": ["type": "string", "format": "date-time", "nullable": true],
                        ]),
                    ]
                ], required: ["receipts"]),
            "Member": object([
                "userId": string, "role": string, "state": string, "lastReadSeq": integer, "muted": ["type": "boolean"],
                "mutedUntil": ["type": "string", "format": "date-time"],
            ]),
            "Room": object([
                "id": string, "kind": ["type": "string", "enum": ["direct", "group"]], "name": string, "createdBy": string,
                "createdAt": ["type": "string", "format": "date-time"], "lastSeq": integer,
                "members": ["type": "array", "items": ref("Member")],
                "lastMessage": object([:]), "unreadCount": integer, "myRole": string, "mentionCount": integer,
            ]),
            "RoomEnvelope": object(["room": ref("Room")], required: ["room"]),
            "RoomList": object(["rooms": ["type": "array", "items": ref("Room")]], required: ["rooms"]),
            "DirectMessage": object(["message": ref("Message"), "room": ref("Room")], required: ["message", "room"]),
            "InviteList": object([
                "invites": ["type": "array", "items": object(["roomId": string, "roomName": string, "invitedBy": string])]
            ]),
            "History": object(
                ["messages": ["type": "array", "items": ref("Message")], "hasMore": ["type": "boolean"]], required: ["messages", "hasMore"]),
            "SendBody": object(
                [
                    "body": messageBody,
                    "clientMsgId": nullable(["type": "string", "minLength": 1, "maxLength": 128, "pattern": "^" + noNUL + "$"]),
                    "replyTo": nullable(string),
                    "threadRootId": nullable(string),
                    "mentions": nullable(["type": "array", "maxItems": 50, "items": string]),
                ], required: ["body"]),
            "Result": ["type": "object"],
            "Health": object(["status": string, "detail": string, "lagEvents": integer, "lagMs": integer], required: ["status"]),
        ]
    }

    /// The document as JSON.
    static let document: Data = {
        var paths: [String: [String: Any]] = [:]
        for op in operations {
            var operation: [String: Any] = [
                "summary": op.summary, "operationId": op.method + op.path.replacingOccurrences(of: "/", with: "_"),
            ]
            if op.auth { operation["security"] = [["bearer": [String]()]] }
            let parameters =
                op.path.split(separator: "/").filter { $0.hasPrefix("{") }.map { part -> [String: Any] in
                    let name = String(part.dropFirst().dropLast())
                    // An emoji in a path is checked as in a body (the server decodes the percent-encoding first).
                    return ["name": name, "in": "path", "required": true, "schema": name == "emoji" ? emoji : string]
                } + op.query
            if !parameters.isEmpty { operation["parameters"] = parameters }
            if let body = op.body {
                operation["requestBody"] = ["required": true, "content": ["application/json": ["schema": body]]]
            }
            var responses: [String: Any] = [:]
            for (status, schema) in op.responses {
                var response: [String: Any] = ["description": HTTPResponse.Status(code: status).reasonPhrase]
                if let schema { response["content"] = ["application/json": ["schema": ref(schema)]] }
                responses[String(status)] = response
            }
            operation["responses"] = responses
            paths[op.path, default: [:]][op.method] = operation
        }
        let document: [String: Any] = [
            "openapi": "3.0.3",
            "info": [
                "title": "Parley", "version": "1.0.0", "description": "Event-sourced chat backend: the HTTP API (CONTRACT section 3).",
            ],
            "paths": paths,
            "components": [
                "schemas": schemas, "securitySchemes": ["bearer": ["type": "http", "scheme": "bearer", "bearerFormat": "JWT"]],
            ],
        ]
        return (try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys])) ?? Data("{}".utf8)
    }()

    /// Routes registered but not documented, and documented but not registered.
    static func mismatches(routes: [(method: String, path: String)]) -> (undocumented: [String], missing: [String]) {
        let registered = Set(routes.map { "\($0.method.lowercased()) \(openAPIPath($0.path))" })
        let documented = Set(operations.map { "\($0.method) \($0.path)" })
        return (registered.subtracting(documented).sorted(), documented.subtracting(registered).sorted())
    }

    /// The documented methods of the path template `path` matches (empty: no such path).
    static func methods(forPath path: String) -> [String] {
        let parts = path.split(separator: "/", omittingEmptySubsequences: true)
        return operations.filter { op in
            let template = op.path.split(separator: "/")
            return template.count == parts.count && zip(template, parts).allSatisfy { $0.hasPrefix("{") || $0 == $1 }
        }.map(\.method)
    }

    /// `/v1/rooms/:roomId` → `/v1/rooms/{roomId}`.
    static func openAPIPath(_ path: String) -> String {
        let parts = path.split(separator: "/").map { $0.hasPrefix(":") ? "{\($0.dropFirst())}" : String($0) }
        return "/" + parts.joined(separator: "/")
    }
}
