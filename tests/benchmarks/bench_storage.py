"""Storage benchmark: a SQLite database with 10,000 conversations and 1,000,000 messages.

The database is built once (bulk inserts, FTS index filled by the same triggers the app uses) and
cached under tests/benchmarks/out/, keyed by the schema head and BENCH_DATA_VERSION.

    python -m tests.benchmarks.bench_storage
"""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, insert, text

from storage.db import Database, alembic_config
from storage.models import Base
from storage.repo import Repository
from tests.benchmarks.common import Row, markdown_table

BENCH_DATA_VERSION = 1  # bump when the generated data changes shape
CONVERSATIONS = 10_000
MESSAGES_PER_CONVERSATION = 100  # 1,000,000 messages in all
BATCH_CONVERSATIONS = 500  # 50,000 messages per transaction
OUT_DIR = Path(__file__).resolve().parent / "out"
USER = "bench"
SEED = 20261122

RARE_WORD = "zeppelin"  # planted in 1 message out of RARE_EVERY
RARE_EVERY = 1_000
MEDIUM_WORD = "lighthouse"  # planted in 1 message out of MEDIUM_EVERY
MEDIUM_EVERY = 50
COMMON_WORDS = ("the", "model", "answer", "token", "context", "summary", "page", "language")


# data generation --------------------------------------------------------------------------------


def _vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["qu", "sh", "th", "ch"]
    words = set(COMMON_WORDS)
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    # Consonant-vowel syllables can never spell the planted words, so their counts stay exact.
    return list(COMMON_WORDS) + sorted(words - set(COMMON_WORDS))


@dataclass
class _Text:
    """Zipf-distributed words, as natural text roughly is."""

    rng: random.Random
    vocab: list[str]

    def __post_init__(self) -> None:
        weights = [1.0 / (rank + 1) ** 1.07 for rank in range(len(self.vocab))]
        total = 0.0
        self.cum: list[float] = []
        for w in weights:
            total += w
            self.cum.append(total)

    def message(self, index: int, role: str) -> str:
        n = self.rng.randint(4, 25) if role == "user" else self.rng.randint(10, 70)
        words = self.rng.choices(self.vocab, cum_weights=self.cum, k=n)
        if index % RARE_EVERY == 7:
            words.insert(self.rng.randrange(len(words)), RARE_WORD)
        if index % MEDIUM_EVERY == 3:
            words.insert(self.rng.randrange(len(words)), MEDIUM_WORD)
        return " ".join(words).capitalize() + "."


def _conversation_rows(user_id: int, first: int, count: int, start: datetime) -> list[dict[str, Any]]:
    rows = []
    for n in range(first, first + count):
        created = start + timedelta(minutes=50 * n)
        rows.append(
            {
                "id": f"{n:032x}",
                "user_id": user_id,
                "title": f"Conversation {n}",
                "language": "en",
                "backend": "local",
                "model": "bench",
                "created_at": created,
                "updated_at": created + timedelta(minutes=MESSAGES_PER_CONVERSATION // 2),
            }
        )
    return rows


def _message_rows(conversations: list[dict[str, Any]], gen: _Text, first_index: int) -> list[dict[str, Any]]:
    rows = []
    index = first_index
    for conv in conversations:
        for i in range(MESSAGES_PER_CONVERSATION):
            role = "user" if i % 2 == 0 else "assistant"
            at = conv["created_at"] + timedelta(seconds=30 * i)
            rows.append(
                {
                    "conversation_id": conv["id"],
                    "role": role,
                    "content": gen.message(index, role),
                    "status": "complete",
                    "backend": None if role == "user" else "local",
                    "model": None if role == "user" else "bench",
                    "prompt_tokens": None,
                    "completion_tokens": None,
                    "created_at": at,
                    "updated_at": at,
                }
            )
            index += 1
    return rows


def _bulk_load(conn: Connection, user_id: int) -> None:
    rng = random.Random(SEED)
    gen = _Text(rng, _vocabulary(rng))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    conversations, messages = Base.metadata.tables["conversations"], Base.metadata.tables["messages"]
    for first in range(0, CONVERSATIONS, BATCH_CONVERSATIONS):
        convs = _conversation_rows(user_id, first, BATCH_CONVERSATIONS, start)
        with conn.begin():
            conn.execute(insert(conversations), convs)
            # executemany through the real triggers: the FTS index is filled exactly as in the app.
            conn.execute(insert(messages), _message_rows(convs, gen, first * MESSAGES_PER_CONVERSATION))


def schema_head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    return head or "none"


def database_path() -> Path:
    return OUT_DIR / f"storage-{schema_head()}-v{BENCH_DATA_VERSION}.db"


def build_database(path: Path) -> float:
    """Build the benchmark database at ``path`` (atomically); returns the seconds it took."""
    began = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    for leftover in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        leftover.unlink(missing_ok=True)
    db = Database(f"sqlite:///{partial}")
    try:
        db.upgrade()
        user_id = Repository(db).ensure_user(USER)
        with db.engine.connect() as conn:
            conn.execute(text("PRAGMA synchronous=OFF"))  # a half-built file is thrown away anyway
            conn.commit()
            _bulk_load(conn, user_id)
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        db.close()
    os.replace(partial, path)
    return time.perf_counter() - began


# measurement ------------------------------------------------------------------------------------


def _median_ms(calls: Iterator[Callable[[], object]], warmup: int = 3) -> float:
    timings = []
    for n, call in enumerate(calls):
        began = time.perf_counter()
        call()
        elapsed = (time.perf_counter() - began) * 1000
        if n >= warmup:
            timings.append(elapsed)
    return statistics.median(timings)


def _repeat(call: Callable[[], object], times: int) -> Iterator[Callable[[], object]]:
    return (call for _ in range(times))


def _row(metric: str, ms: float, target_ms: float | None, note: str = "") -> Row:
    if target_ms is None:
        return Row("storage", metric, ms, "ms", note=note)
    return Row("storage", metric, ms, "ms", f"<= {target_ms:g} ms", ms <= target_ms, note)


def _search_rows(repo: Repository, uid: int) -> list[Row]:
    queries = [
        (RARE_WORD, f"1 in {RARE_EVERY:,} messages", 100.0),
        (MEDIUM_WORD, f"1 in {MEDIUM_EVERY} messages", 100.0),
        (f"{MEDIUM_WORD} {COMMON_WORDS[1]}", "two words", 100.0),
        (COMMON_WORDS[0], "the most frequent word, in most messages", None),
    ]
    rows = []
    for query, note, target in queries:
        hits = len(repo.search(uid, query))
        ms = _median_ms(_repeat(partial(repo.search, uid, query), 15))
        rows.append(_row(f"FTS search {query!r} (newest 50)", ms, target, f"{note}; {hits} hits"))
    # Worst case: every match belongs to someone else, so the whole posting list is walked.
    stranger = repo.ensure_user("bench-stranger")
    for query in (RARE_WORD, MEDIUM_WORD, COMMON_WORDS[0]):
        ms = _median_ms(_repeat(partial(repo.search, stranger, query), 5), warmup=1)
        rows.append(_row(f"FTS search {query!r} by a user with no matches", ms, None, "worst case"))
    return rows


def _write_rows(repo: Repository, uid: int) -> list[Row]:
    # A scratch conversation, deleted afterwards, so the cached database stays as built.
    cid = repo.create_conversation(uid, title="bench append")
    try:
        append = _median_ms(_repeat(lambda: repo.add_message(uid, cid, "user", "append " * 20), 200))
        mid = repo.add_message(uid, cid, "assistant", "", status="streaming")
        text_so_far = iter(" ".join(["token"] * n) for n in range(1, 10_000))
        checkpoint = _median_ms(
            _repeat(lambda: repo.checkpoint_message(uid, mid, next(text_so_far), status="streaming"), 200)
        )
    finally:
        repo.delete_conversation(uid, cid)
    sweep = _median_ms(_repeat(repo.mark_streaming_interrupted, 10))
    return [
        _row("append a message (add_message)", append, 5.0),
        _row(
            "checkpoint a streaming reply (one UPDATE)", checkpoint, 5.0, "content grows by a word each time"
        ),
        _row("startup sweep of streaming messages", sweep, None, "partial index; 1M messages"),
    ]


def measure(db: Database) -> list[Row]:
    repo = Repository(db)
    uid = repo.user_id(USER)
    if uid is None:
        raise RuntimeError("benchmark database has no bench user; delete it to rebuild")
    rng = random.Random(SEED + 1)
    listing = _median_ms(_repeat(lambda: repo.list_conversations(uid, limit=50), 30))
    cids = [f"{rng.randrange(CONVERSATIONS):032x}" for _ in range(53)]
    opening = _median_ms(iter([partial(repo.messages, uid, cid) for cid in cids]))
    return [
        _row("list conversations (first page of 50)", listing, 50.0, f"{CONVERSATIONS:,} conversations"),
        _row("open a conversation (100 messages)", opening, 20.0, "a different conversation each time"),
        *_search_rows(repo, uid),
        *_write_rows(repo, uid),
    ]


def run() -> list[Row]:
    path = database_path()
    note = "cached database"
    if not path.exists():
        note = f"built in {build_database(path):.0f} s"
    db = Database(f"sqlite:///{path}")
    try:
        rows = measure(db)
    finally:
        db.close()
    size_mb = path.stat().st_size / 1e6
    rows.append(Row("storage", "benchmark database size", size_mb, "MB", note=f"{note}; {path.name}"))
    return rows


if __name__ == "__main__":
    print(markdown_table(run()))
