-- Moderation (CONTRACT section 7): a member's mute ('infinity' until unmuted), a ban's
-- details (the member's state is then 'banned'), and who blocks whom.
ALTER TABLE room_members ADD COLUMN IF NOT EXISTS muted_until timestamptz;
ALTER TABLE room_members ADD COLUMN IF NOT EXISTS banned_by text;
ALTER TABLE room_members ADD COLUMN IF NOT EXISTS ban_reason text;
ALTER TABLE room_members ADD COLUMN IF NOT EXISTS banned_at timestamptz;
CREATE TABLE IF NOT EXISTS user_blocks (
    user_id text NOT NULL,
    blocked_id text NOT NULL,
    blocked_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, blocked_id)
);
-- A banned member's state.
ALTER TABLE room_members DROP CONSTRAINT IF EXISTS room_members_state_check;
ALTER TABLE room_members ADD CONSTRAINT room_members_state_check
    CHECK (state IN ('invited', 'joined', 'left', 'removed', 'declined', 'banned'));
