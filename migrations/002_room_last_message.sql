-- The last message of a room can be deleted after it was sent: readers see it as deleted.
ALTER TABLE rooms ADD COLUMN last_message_deleted boolean NOT NULL DEFAULT false;
-- Who invited whom, when: pending invites are listed with it.
ALTER TABLE room_members ADD COLUMN invited_at timestamptz;
CREATE INDEX room_members_pending ON room_members (user_id) WHERE state = 'invited';
