-- The chance that an answer ended as a machine without a caller was a person after all: machine
-- detection's false-positive rate for its machine verdicts, or, for an answer screened by its
-- ring time (docs/pacing.md), the learnt chance that such an answer is a person. A person behind
-- such an answer was abandoned, so the campaign's abandon rate counts the share as that much of
-- a live answer and of an abandon. It is recorded because a dialer that restarts reads its
-- abandon budget from here: before, a restart forgot every share, and with 1.3 machines per
-- person they can be most of a campaign's abandons.
ALTER TABLE call_attempts ADD COLUMN person_share real NOT NULL DEFAULT 0
    CONSTRAINT call_attempts_person_share_check CHECK (person_share >= 0 AND person_share <= 1);
