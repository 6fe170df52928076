-- When each member's receipt last moved (GET /v1/rooms/{roomId}/receipts answers it), and
-- each room's pinned messages (at most 50 a room, by the rules). Rows projected before this
-- migration have no receipt time until `parley-replay rebuild --projection metadata`.
ALTER TABLE room_members ADD COLUMN IF NOT EXISTS last_read_at timestamptz;
CREATE TABLE IF NOT EXISTS room_pins (
    room_id text NOT NULL,
    message_id text NOT NULL,
    pinned_by text NOT NULL,
    pinned_at timestamptz NOT NULL,
    PRIMARY KEY (room_id, message_id)
);
