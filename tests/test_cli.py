"""The command line: import, checkpoint list|show, recluster (also beside a live trainer)."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.cli import main
from app.clustering.codec import CheckpointError
from app.db.base import utcnow
from app.db.models import Event, Item, ModelCheckpoint
from app.db.session import Database
from app.embedding.embedder import load_embedder
from app.importer import _ranges
from app.model.trainer import Trainer
from app.profile.service import apply_pending
from app.worker.loop import Worker

TOPICS = {
    "space": ["rocket launch to mars", "astronauts on the space station", "telescope galaxy"],
    "food": ["pasta recipe with tomato", "baking sourdough bread", "chocolate cake dessert"],
    "sport": ["football match highlights", "tennis grand slam final", "marathon training"],
}


pytestmark = pytest.mark.usefixtures("restore_logging")  # the CLI configures logging


@pytest.fixture
def cli(db: Database, database_url: str, monkeypatch: pytest.MonkeyPatch):
    """Run `python -m app ARGS` in this process against the test database; returns the status."""
    monkeypatch.setenv("APP_DATABASE_URL", database_url)
    monkeypatch.setenv("APP_WORKER", "off")

    def run(*args: str, **env: object) -> int:
        for key, value in env.items():
            monkeypatch.setenv(f"APP_{key.upper()}", str(value))
        with pytest.raises(SystemExit) as exited:
            main(list(args))
        return exited.value.code

    return run


def count(db: Database, query) -> int:  # type: ignore[no-untyped-def]
    with db.read() as session:
        return session.scalar(query) or 0


def write_lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def event(i: int, **fields: object) -> bytes:
    body = {"event_id": f"e{i}", "user_id": f"u{i % 3}", "type": "view", "text": f"text {i}"}
    return json.dumps(body | fields).encode()


def test_import_jsonl_stores_good_rows_and_reports_bad_lines(cli, db, tmp_path, capsys):
    future = (utcnow() + timedelta(hours=1)).isoformat()
    path = write_lines(
        tmp_path / "mixed.jsonl",
        [
            event(1),  # line 1
            b'{"item_id": "i1", "text": "an item"}',  # 2: an item
            event(3, kind="event", user_id="u9", type="like", item_id="i1", text=None),
            b"{not json",  # 4
            event(5, type="teleport"),  # 5: unknown type
            b'{"user_id": "u", "type": "view", "text": "t", "weight": NaN}',  # 6
            event(7, timestamp=future),  # 7: future
            b'{"user_id": "u", "type": "view", "text": "\xff\xfe"}',  # 8: not UTF-8
            b"",  # 9: blank lines are skipped
            event(1),  # 10: a duplicate of line 1
            b"[1, 2]",  # 11: not an object
            event(12, colour="red"),  # 12: unknown field
            b'{"kind": "user", "user_id": "u"}',  # 13: unknown kind
            event(14, text="x" * 4001),  # 14: too long
            event(15),  # 15
        ],
    )
    status = cli("import", str(path), "--batch-size", "2")
    out, err = capsys.readouterr()
    assert status == 1
    assert "14 rows: 3 events accepted, 1 duplicates, 1 items upserted, 9 rejected" in out
    for line in (4, 5, 6, 7, 8, 11, 12, 13, 14):
        assert f"line {line}: " in err
    assert "line 5: type: unknown event type" in err
    assert "line 12: colour: Extra inputs are not permitted" in err
    assert count(db, select(func.count()).select_from(Event)) == 3
    assert count(db, select(func.count()).select_from(Item)) == 1

    # Importing the same file again stores nothing new.
    assert cli("import", str(path), "--quiet") == 1
    assert "0 events accepted, 4 duplicates" in capsys.readouterr().out
    assert count(db, select(func.count()).select_from(Event)) == 3


def test_import_csv_with_items_events_and_multiline_cells(cli, db, tmp_path, capsys):
    path = tmp_path / "data.csv"
    path.write_bytes(
        b"\xef\xbb\xbfkind,event_id,user_id,type,item_id,text,weight,timestamp\n"  # 1 (BOM)
        b"item,,,,m1,A film about space,,\n"  # 2
        b",c1,alice,like,m1,,,2024-05-01T10:00:00Z\n"  # 3: event of an item
        b',c2,bob,review,,"two\nlines",2.5,\n'  # 4-5: a quoted cell over two lines
        b",c3,carol,view,,bad weight,heavy,\n"  # 6
        b",c4,dave,view,,\xff,,\n"  # 7: not UTF-8
        b",c5,erin,view,,no zone,,2024-05-01T10:00:00\n"  # 8: naive timestamp
        b",c6,frank,view,,ok,,,extra\n"  # 9: too many cells
        b"\n"  # 10: blank
        b",c7,gina,view,,fine,-1,\n"  # 11
    )
    status = cli("import", str(path), "--quiet")
    out, err = capsys.readouterr()
    assert status == 1, err
    assert "3 events accepted, 0 duplicates, 1 items upserted, 4 rejected" in out
    assert [ln for ln in (6, 7, 8, 9) if f"line {ln}: " in err] == [6, 7, 8, 9]
    with db.read() as session:
        rows = {e.event_id: e for e in session.scalars(select(Event))}
    assert rows["c2"].text == "two\nlines" and rows["c2"].weight == 2.5
    assert rows["c1"].item_id == "m1" and rows["c1"].occurred_at.year == 2024
    assert rows["c7"].weight == -1


def test_import_of_a_clean_file_exits_zero(cli, db, tmp_path, capsys):
    path = write_lines(tmp_path / "ok.ndjson", [event(i) for i in range(25)])
    assert cli("import", str(path), "--batch-size", "10") == 0
    assert "25 events accepted" in capsys.readouterr().out
    assert count(db, select(func.count()).select_from(Event)) == 25


def test_a_large_import_takes_the_bulk_path_with_the_same_accounting(cli, db, tmp_path, capsys):
    """The importer's batches stream in by COPY on PostgreSQL (executemany on SQLite): the
    same values stored, duplicates (in the file and already stored) counted, bad lines
    reported."""
    n = 5500  # one batch of 5,000, another of 501
    lines = [
        event(i, weight=0.5, timestamp=f"2024-05-01T10:00:{i % 60:02d}+02:00") for i in range(n)
    ]
    lines[7] = b"{not json"
    lines[n - 3] = event(n - 3, type="teleport")
    lines.append(event(42))  # a repeat inside the file
    big = write_lines(tmp_path / "big.jsonl", lines)
    status = cli("import", str(big), "--quiet", "--batch-size", "5000")
    out, err = capsys.readouterr()
    assert status == 1
    assert (
        f"{n + 1} rows: {n - 2} events accepted, 1 duplicates, 0 items upserted, 2 rejected" in out
    )
    assert "line 8: not valid JSON" in err and f"line {n - 2}: type: unknown event type" in err
    with db.read() as session:
        stored = session.scalars(select(Event).where(Event.event_id == "e61")).one()
    assert (stored.user_id, stored.type, stored.text, stored.weight) == (
        "u1",
        "view",
        "text 61",
        0.5,
    )
    assert stored.occurred_at.isoformat() == "2024-05-01T08:00:01+00:00"
    assert stored.item_id is None and stored.applied_at is None
    # Again, with a few new rows: only those are stored.
    lines += [event(n + i) for i in range(3)]
    cli("import", str(write_lines(tmp_path / "big.jsonl", lines)), "--quiet")
    assert f"3 events accepted, {n - 1} duplicates" in capsys.readouterr().out
    assert count(db, select(func.count()).select_from(Event)) == n + 1


def test_import_refuses_unknown_formats_and_missing_files(cli, tmp_path, capsys):
    (tmp_path / "x.xml").write_text("<x/>")
    assert cli("import", str(tmp_path / "x.xml")) == 2
    assert cli("import", str(tmp_path / "missing.csv")) == 2
    assert "import failed" in capsys.readouterr().err


def test_rejected_lines_are_listed_compactly():
    assert _ranges([3, 4, 5, 9, 11, 12]) == "3-5,9,11-12"


def fold_topic_profiles(db: Database, make_settings, users_per_topic: int = 10) -> None:
    """Real profiles: events on three topics, folded by the real profile stage."""
    now = utcnow()
    with db.write() as session:
        session.execute(
            Event.__table__.insert(),
            [
                {
                    "event_id": f"{topic}-{u}-{k}",
                    "user_id": f"{topic}-{u}",
                    "type": "view",
                    "text": texts[(u + k) % len(texts)],
                    "occurred_at": now,
                    "received_at": now,
                }
                for topic, texts in TOPICS.items()
                for u in range(users_per_topic)
                for k in range(3)
            ],
        )
    settings = make_settings()
    embedder = load_embedder(settings.embedding_model)
    while apply_pending(db, embedder, settings).applied:
        pass


def test_checkpoint_list_and_show_after_a_recluster(cli, db, make_settings, capsys):
    assert cli("checkpoint", "list") == 0
    assert "no checkpoints yet" in capsys.readouterr().out
    fold_topic_profiles(db, make_settings)

    assert cli("recluster", "--k", "3") == 0
    assert "model version 1" in capsys.readouterr().out
    assert cli("recluster", "--k", "4") == 0
    assert "model version 2" in capsys.readouterr().out

    assert cli("checkpoint", "list") == 0
    listing = capsys.readouterr().out.splitlines()
    assert len(listing) == 3 and listing[1].split()[:2] == ["1", "2"]
    assert listing[2].split()[:2] == ["2", "3"]  # version 2 is generation 3

    assert cli("checkpoint", "show", "2") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["version"] == 2 and shown["n_clusters"] == 4 and shown["trained_rows"] == 30
    assert len(shown["cluster_weights"]) == 4 and not {"rng", "witness"} & set(shown["meta"])
    assert cli("checkpoint", "show", "99") == 1


def test_recluster_refuses_bad_k_and_too_few_users(cli, db, capsys):
    assert cli("recluster", "--k", "1") == 2
    assert cli("recluster", "--k", "3") == 1
    assert "need at least 3 users" in capsys.readouterr().err
    assert count(db, select(func.count()).select_from(ModelCheckpoint)) == 0


def test_recluster_replaces_a_model_whose_restore_is_refused(cli, db, make_settings, capsys):
    """The refusal names recluster as the way forward, so recluster must not need the old
    model: here a row from before restore verification, under another scikit-learn."""
    fold_topic_profiles(db, make_settings)
    assert cli("recluster", "--k", "3") == 0
    with db.write() as session:
        row = session.get(ModelCheckpoint, 1)
        assert row is not None
        row.meta = {k: v for k, v in row.meta.items() if k != "witness"} | {
            "sklearn_version": "1.5.2"
        }
    settings = make_settings()
    embedder = load_embedder(settings.embedding_model)
    trainer = Trainer(settings, embedding_model=embedder.model_id, dim=embedder.dim)
    with pytest.raises(CheckpointError, match="python -m app recluster --k 3"):
        trainer.restore(db)

    assert cli("recluster", "--k", "3") == 0
    assert "model version 2" in capsys.readouterr().out
    trainer.restore(db)
    assert (trainer.version, trainer.generation) == (2, 3)


def wait_for(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def latest(db: Database) -> ModelCheckpoint | None:
    with db.read() as session:
        return session.scalars(
            select(ModelCheckpoint).order_by(ModelCheckpoint.version.desc()).limit(1)
        ).first()


def test_recluster_beside_a_live_trainer(cli, db, make_settings, database_url, caplog):
    """The trainer adopts the recluster's new generation at its next step and keeps training
    it (had it raced the recluster's commit, the primary key would refuse its version)."""
    fold_topic_profiles(db, make_settings)
    settings = make_settings(min_users_first_fit=10, clusters=2, poll_interval_seconds=0.05)
    worker = Worker(settings, Database(database_url))
    thread = worker.start_thread()
    try:
        first = wait_for(lambda: latest(db))
        assert first.n_clusters == 2
        assert cli("recluster", "--k", "3") == 0
        reclustered = latest(db)
        assert reclustered.n_clusters == 3 and reclustered.generation == first.generation + 1
        # New events change profiles: the trainer must now train the new generation.
        with db.write() as session:
            now = utcnow()
            session.execute(
                Event.__table__.insert(),
                [
                    {
                        "event_id": f"late-{u}",
                        "user_id": f"space-{u}",
                        "type": "like",
                        "text": "nasa moon landing mission",
                        "occurred_at": now,
                        "received_at": now,
                    }
                    for u in range(10)
                ],
            )
        after = wait_for(
            lambda: (c := latest(db)) is not None and c.version > reclustered.version and c
        )
        assert after.n_clusters == 3 and after.generation == reclustered.generation
        assert "worker step failed" not in caplog.text  # adopted, not collided
        assert worker.trainer is not None and worker.trainer.model.n_clusters == 3
    finally:
        worker.stop()
        thread.join(timeout=30)
        worker.db.dispose()
