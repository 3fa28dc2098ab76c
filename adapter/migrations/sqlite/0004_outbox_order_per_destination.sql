-- The relay claims each destination's rows on its own and keeps FIFO order per destination and
-- ordering key (card): a backlog at one receiver (say, a slow issuer webhook sink) no longer
-- delays another receiver's messages (TMP). These indexes serve that claim: the scan of a
-- destination's pending rows in seq order, and the "no older pending row of this card at this
-- destination" check.
DROP INDEX outbox_pending_ordering_key_seq_idx;
CREATE INDEX outbox_pending_destination_seq_idx ON outbox (destination, seq) WHERE status = 'pending';
CREATE INDEX outbox_pending_destination_key_seq_idx ON outbox (destination, ordering_key, seq)
    WHERE status = 'pending';
