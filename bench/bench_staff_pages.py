"""Server time of staff pages on the demo town (target: p95 <= 20 ms).

    uv run python bench/bench_staff_pages.py [--residents 1500] [--requests 300]

Builds a migrated SQLite database with the demo town in a temporary folder, signs a clerk and an
auditor in, then times each page in-process (the app called directly through Starlette's
TestClient). The figure is the server time from the Server-Timing header that
RequestContextMiddleware adds (request in → response start); the client's round trip is shown too.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlmodel import col, select
from starlette.testclient import TestClient

from app.config import Settings
from app.db import Database
from app.demo.generator import generate_demo
from app.migrate import upgrade
from app.models import Resident


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--residents", type=int, default=1500)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()

    from app.web.app import create_app

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        upgrade(url)
        db = Database(url)
        summary = generate_demo(db, residents=args.residents)
        passwords = {login: password for login, password, _ in summary.credentials}
        with db.session() as session:
            ids = list(session.exec(select(Resident.id).order_by(col(Resident.id))).all())
            kana = [r.family_name_kana[:2] for r in session.exec(select(Resident).limit(50)).all()]
        settings = Settings(
            data_dir=Path(folder), database_url=url, secret_key="bench", events_url="memory://"
        )
        app = create_app(settings, db=db)
        pages: dict[str, list[str]] = {
            "staff home": ["/staff/"],
            "resident search (kana)": [f"/staff/residents?q={k}" for k in kana],
            "resident detail": [
                f"/staff/residents/{ids[(i * 7919) % len(ids)]}" for i in range(args.requests)
            ],
            "audit log": ["/admin/audit"],
        }
        print(f"demo town: {summary.residents} residents; {args.requests} requests per page")
        print("server time (Server-Timing header); last column: p95 including the in-process client")
        print(f"{'page':28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'client p95 ms':>14}")
        with TestClient(app, follow_redirects=False) as client:
            for title, paths in pages.items():
                login = "auditor" if title == "audit log" else "clerk"
                client.cookies.clear()
                token = client.get("/kiosk/").text.split('name="csrf-token" content="')[1].split('"')[0]
                client.post(
                    "/staff/login",
                    data={"login_id": login, "password": passwords[login], "csrf_token": token},
                )
                for path in paths[:5]:  # warm up
                    client.get(path)
                timings: list[float] = []
                round_trips: list[float] = []
                for i in range(args.requests):
                    path = paths[i % len(paths)]
                    started = time.perf_counter()
                    response = client.get(path)
                    round_trips.append((time.perf_counter() - started) * 1000)
                    assert response.status_code == 200, (path, response.status_code)
                    timings.append(float(response.headers["server-timing"].split("dur=")[1]))
                print(
                    f"{title:28} {statistics.median(timings):8.2f} {_percentile(timings, 0.95):8.2f} "
                    f"{max(timings):8.2f} {_percentile(round_trips, 0.95):14.2f}"
                )
        db.dispose()


if __name__ == "__main__":
    main()
