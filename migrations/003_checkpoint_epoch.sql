-- The lease epoch of the last writer of each projector's partition: a write of an older
-- epoch (a holder that lost its lease while paused) is refused in the same transaction.
ALTER TABLE projector_checkpoints ADD COLUMN IF NOT EXISTS epoch bigint NOT NULL DEFAULT 0;
