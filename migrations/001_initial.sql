-- Parley metadata read models (CONTRACT section 2). Everything here is derived from the
-- event log and can be rebuilt from it by parley-replay.

CREATE TABLE users (
    id            text PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    -- bcrypt hash, needed to log in; never printed by audit or export.
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL
);

CREATE TABLE rooms (
    id                 text PRIMARY KEY,
    kind               text NOT NULL CHECK (kind IN ('direct', 'group')),
    name               text,
    created_by         text NOT NULL,
    created_at         timestamptz NOT NULL,
    last_seq           bigint NOT NULL DEFAULT 0,
    last_message_id    text,
    last_message_by    text,
    last_message_body  text,
    last_message_at    timestamptz
);

CREATE TABLE room_members (
    room_id       text NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id       text NOT NULL,
    role          text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    state         text NOT NULL CHECK (state IN ('invited', 'joined', 'left', 'removed', 'declined')),
    last_read_seq bigint NOT NULL DEFAULT 0,
    invited_by    text,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_by_user ON room_members (user_id, state);

-- Where each projector is in each partition of the log (a stream entry id).
CREATE TABLE projector_checkpoints (
    projector  text NOT NULL,
    partition  integer NOT NULL,
    position   text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projector, partition)
);
