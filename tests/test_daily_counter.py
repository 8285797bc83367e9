"""Daily numbers (reception numbers, 発行番号 serials): gap-free and safe under concurrency."""

from __future__ import annotations

import threading
from datetime import date

from app.db import Database
from app.services.certificates import next_number


def test_first_of_the_day_from_many_threads(db: Database) -> None:
    """Found by bench/bench_certificate_flow.py: two first-of-the-day requests collided (HTTP 500)."""
    results: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def take() -> None:
        try:
            start.wait()
            for _ in range(5):
                with db.write_session() as session:
                    results.append(next_number(session, "reception:1", date(2026, 11, 21)))
                    session.commit()
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=take) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    assert sorted(results) == list(range(1, 31))
    with db.write_session() as session:
        assert next_number(session, "reception:1", date(2026, 11, 22)) == 1  # a new day starts again
        assert next_number(session, "reception:2", date(2026, 11, 21)) == 1  # and each counter is its own
        session.commit()


def test_a_block_of_numbers_and_own_transaction(db: Database) -> None:
    """`count` reserves consecutive numbers; `own_transaction` (PostgreSQL) keeps a number taken
    even when the caller's transaction rolls back, and does not hold the row until it ends."""
    day = date(2026, 11, 21)
    with db.write_session() as session:
        assert next_number(session, "issue:0101:0102", day, count=3) == 1  # 1, 2, 3
        assert next_number(session, "issue:0101:0102", day, count=2) == 4  # 4, 5
        session.commit()
    with db.write_session() as session:
        assert next_number(session, "reception:1", day, own_transaction=True) == 1
        if db.engine.dialect.name == "postgresql":
            # Committed already: another transaction takes the next number without waiting.
            with db.write_session() as other:
                assert next_number(other, "reception:1", day) == 2
                other.commit()
        session.rollback()
    with db.write_session() as session:
        taken = next_number(session, "reception:1", day)
        session.commit()
    assert taken == (3 if db.engine.dialect.name == "postgresql" else 1)
    with db.write_session() as session:
        assert next_number(session, "issue:0101:0102", day) == 6
        session.commit()
