"""PostgreSQL: one pool per process, migrations from services/queue/migrations applied at start."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import structlog

log = structlog.get_logger()
MIGRATIONS = Path(__file__).resolve().parents[1] / "queue" / "migrations"  # package data


async def connect(dsn: str, schema: str, *, attempts: int = 0) -> asyncpg.Pool:
    """Open a pool whose search_path is `schema`; retry while the server is down."""
    attempt = 0
    while True:
        try:
            admin = await asyncpg.connect(dsn, timeout=5)
            try:
                await admin.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            finally:
                await admin.close()
            pool: asyncpg.Pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=4, server_settings={"search_path": schema}
            )
            return pool
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            attempt += 1
            if attempts and attempt >= attempts:
                raise
            log.warning("postgres_unavailable", error=str(exc) or type(exc).__name__,
                        attempt=attempt)
            await asyncio.sleep(min(5.0, 0.5 * attempt))


async def migrate(pool: asyncpg.Pool, directory: Path = MIGRATIONS) -> list[str]:
    """Apply unapplied migrations/*.sql in name order, each in its own transaction."""
    applied: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for path in sorted(directory.glob("*.sql")):  # noqa: ASYNC240 - a few local files at start
            async with conn.transaction():
                # one migrator at a time, across processes
                await conn.execute("SELECT pg_advisory_xact_lock(7367110)")
                done = await conn.fetchval(
                    "SELECT 1 FROM schema_migrations WHERE version = $1", path.stem
                )
                if done:
                    continue
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)",
                                   path.stem)
                applied.append(path.stem)
    if applied:
        log.info("migrations_applied", versions=applied)
    return applied
