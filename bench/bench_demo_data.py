"""Time the demo-town generator.

    uv run python bench/bench_demo_data.py --residents 100000
    uv run python bench/bench_demo_data.py --residents 100000 \\
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres

The schema is created by the migrations, in a temporary SQLite file or, with --database-url, in
a temporary database on that PostgreSQL server (dropped afterwards). Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.db import Database
from app.demo import generate_demo
from app.migrate import upgrade


def run(url: str, residents: int, seed: int, today: date) -> None:
    upgrade(url)
    db = Database(url)
    try:
        started = time.perf_counter()
        summary = generate_demo(db, residents=residents, seed=seed, today=today)
        elapsed = time.perf_counter() - started
    finally:
        db.dispose()
    rows = summary.households + summary.residents + summary.seals + summary.tax_records
    print(f"database      {db.engine.dialect.name}")
    print(f"elapsed       {elapsed:.2f} s")
    print(f"rows/second   {rows / elapsed:,.0f}  ({rows:,} registry rows)")
    print(f"households    {summary.households:,}")
    print(f"residents     {summary.residents:,}")
    print(f"seals         {summary.seals:,}")
    print(f"tax records   {summary.tax_records:,}")
    print(f"staff users   {summary.staff_users}")


def run_postgres(server_url: str, residents: int, seed: int, today: date) -> None:
    """Run in a temporary database on the server of `server_url`, dropped afterwards."""
    name = f"madoguchi_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        run(
            make_url(server_url).set(database=name).render_as_string(hide_password=False),
            residents,
            seed,
            today,
        )
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--residents", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=20261121)
    parser.add_argument("--today", type=date.fromisoformat, default=date(2026, 11, 21))
    parser.add_argument(
        "--database-url",
        default="",
        help="a PostgreSQL server, e.g. postgresql+psycopg://postgres@127.0.0.1:5432/postgres; "
        "a temporary database is created on it and dropped afterwards",
    )
    args = parser.parse_args()
    if args.database_url:
        run_postgres(args.database_url, args.residents, args.seed, args.today)
        return
    with tempfile.TemporaryDirectory(prefix="madoguchi-bench-") as folder:
        run(f"sqlite:///{Path(folder) / 'bench.db'}", args.residents, args.seed, args.today)


if __name__ == "__main__":
    main()
