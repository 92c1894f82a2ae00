"""`kill -9` during `sensorium index`, then a restart: nothing duplicated, orphaned or lost."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

TOPICS = ["gardening", "sailing", "chess openings", "bread baking", "bird watching", "astronomy",
          "knitting", "cycling routes", "tax forms", "piano practice"]


def make_notes(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    for number in range(count):
        topic = TOPICS[number % len(TOPICS)]
        words = " ".join(rng.choice(["note", "plan", "idea", "list", "today", "later", "remember"], 60))
        (folder / f"note_{number:03d}.md").write_text(
            f"# {topic} {number}\n\nAbout {topic}: {words}.\n\nMore on {topic}: {words[::-1]}.\n")


def items_in(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            return con.execute("SELECT count(*) FROM items").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_kill_during_index_then_resume(tmp_path):
    from sensorium import Collection

    media, col = tmp_path / "media", tmp_path / "col"
    media.mkdir()
    make_notes(media, 120)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "sensorium.cli", "index", str(media), "-c", str(col), "--json"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    while items_in(col / "catalog.sqlite") < 10 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "indexing finished before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    stored_before = items_in(col / "catalog.sqlite")
    assert 10 <= stored_before < 120

    collection = Collection(col)
    report = collection.index(media)
    assert report.unchanged == stored_before  # what was committed before the kill is kept as is
    assert report.added == 120 - stored_before and not report.failed
    catalog = collection.catalog
    assert catalog.counts() == {"text": 120}
    assert not catalog.integrity_errors()
    assert len(catalog.paths()) == 120
    ids = np.sort(catalog.vector_ids("shared"))
    assert np.array_equal(np.sort(collection.store("shared").ids()), ids)
    hit = collection.search(text="a guide to sailing", k=1)[0]
    assert "sailing" in Path(hit.path).read_text()
    collection.close()
