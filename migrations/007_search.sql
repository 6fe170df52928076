-- The search projector's read model: one row per message that is not deleted, with its
-- text as a `simple` tsvector (lower-cased words, no stemming, no stop words: the same
-- for every language that separates words with spaces or punctuation) under a GIN index.
-- Its own checkpoint table: swapping the metadata tables never moves the search
-- projector's checkpoints, nor the other way round. At most one row per message ever sent
-- and not deleted; a deletion removes the row.
CREATE TABLE IF NOT EXISTS search_messages (
    room_id    text   NOT NULL,
    message_id text   NOT NULL,
    seq        bigint NOT NULL,
    sender_id  text   NOT NULL,
    body       text   NOT NULL,
    sent_ms    bigint NOT NULL,
    edited_ms  bigint,
    document   tsvector GENERATED ALWAYS AS (to_tsvector('simple'::regconfig, body)) STORED,
    PRIMARY KEY (room_id, message_id)
);
-- fastupdate off: each insert goes into the index itself, not a pending list that every
-- query must scan until a vacuum merges it (seen: 5 ms added to every query after a burst).
CREATE INDEX IF NOT EXISTS search_messages_document ON search_messages USING gin (document) WITH (fastupdate = off);
-- Newest first within the rooms a reader is in, and the time cursor's order.
CREATE INDEX IF NOT EXISTS search_messages_by_time ON search_messages (room_id, sent_ms DESC, seq DESC);

CREATE TABLE IF NOT EXISTS search_checkpoints (
    projector  text        NOT NULL,
    partition  integer     NOT NULL,
    position   text        NOT NULL,
    epoch      bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, partition)
);
