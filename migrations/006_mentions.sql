-- Who each message mentions: a room summary's mentionCount counts those after the member's
-- receipt. A deleted message's mentions go with it. At most 50 rows a message (the rules).
CREATE TABLE IF NOT EXISTS message_mentions (
    room_id    text   NOT NULL,
    user_id    text   NOT NULL,
    seq        bigint NOT NULL,
    message_id text   NOT NULL,
    PRIMARY KEY (room_id, user_id, seq)
);
CREATE INDEX IF NOT EXISTS message_mentions_by_message ON message_mentions (room_id, message_id);
