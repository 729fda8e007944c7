"""Seed a scratch database with the existing app's data at production volume (issue 17):
10,000 users, 300,000 photos, 1,000,000 restore attempts, skewed as a long-running app's are
(photo_restore_tools/volume_seed.py says how). Deterministic; server-side SQL only.

    .venv/bin/python benchmarks/seed_volume.py                      # an embedded Postgres, kept
    .venv/bin/python benchmarks/seed_volume.py --url postgresql+pg8000://...  --small
"""

from __future__ import annotations

import argparse
import time

from photo_restore.db import create_db_engine
from photo_restore_tools.local.services import embedded_postgres
from photo_restore_tools.volume_seed import PRODUCTION, SMALL, Volume, describe, seed


def seed_url(url: str, volume: Volume) -> None:
    engine = create_db_engine(url, ssl_mode="disable")
    started = time.perf_counter()
    print(f"seeding {volume} ...", flush=True)
    seed(engine, volume, log=True)
    print(f"seeded in {time.perf_counter() - started:.0f} s: {describe(engine)}", flush=True)
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", help="a scratch database (default: a new embedded Postgres)")
    parser.add_argument("--small", action="store_true", help="the tests' smaller volume")
    args = parser.parse_args()
    volume = SMALL if args.small else PRODUCTION
    if args.url:
        seed_url(args.url, volume)
        return
    with embedded_postgres() as url:
        seed_url(url, volume)


if __name__ == "__main__":
    main()
