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
