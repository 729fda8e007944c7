"""Real faults injected into the local stack's Postgres, for tests and the fault benchmark."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text


@contextmanager
def attempt_commit_fails_once(engine: Engine, attempt_id: uuid.UUID) -> Iterator[None]:
    """The commit that completes `attempt_id` (its s3_key leaving 'pending') raises a real
    Postgres error, once; the trigger is dropped on exit."""
    name = f"fault_{uuid.uuid4().hex[:12]}"
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SEQUENCE {name}"))
        conn.execute(
            text(
                f"CREATE FUNCTION {name}() RETURNS trigger AS $$ BEGIN "
                f"IF nextval('{name}') = 1 THEN RAISE EXCEPTION 'injected commit fault'; "
                "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER {name} BEFORE UPDATE ON restore_attempts FOR EACH ROW "
                f"WHEN (OLD.s3_key = 'pending' AND NEW.s3_key <> 'pending' "
                f"AND NEW.id = '{attempt_id}') EXECUTE FUNCTION {name}()"
            )
        )
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TRIGGER IF EXISTS {name} ON restore_attempts"))
            conn.execute(text(f"DROP FUNCTION IF EXISTS {name}()"))
            conn.execute(text(f"DROP SEQUENCE IF EXISTS {name}"))
