"""Crash safety: `kill -9` at any moment loses at most the file being written.

- the catalog and vector stores, killed between and inside operations: the collection reopens whole;
- the writer lock excludes a second writer and comes free when its holder is killed;
- `sensorium index` killed mid-run, then run again: nothing duplicated, orphaned or lost.

For the first, the writer's operations are a deterministic function of the round number, so the test can replay
them: after a kill the catalog must hold exactly the state after the last operation the writer
reported (or the one after it, committed but not yet reported), every stored segment must carry the
exact vectors that were written, and the ANN files must reconcile with the catalog.
"""
from __future__ import annotations

import os
import random
import select
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from sensorium.errors import CollectionLockedError
from sensorium.index.catalog import Catalog
from sensorium.index.lock import WriterLock
from sensorium.index.vectors import VectorStore

ROOT = Path(__file__).resolve().parents[1]
SPACES = {"shared": 384, "image": 64}
PATHS = 30
SAVE_EVERY = 4

# Shared by the writer subprocess and the test's replay: op `n` of round `r` is fully determined.
OPS = textwrap.dedent('''
    import random
    import zlib
    import numpy as np

    def op(round_, n):
        rng = random.Random(f"{round_}/{n}")
        path = f"/data/file{rng.randrange(30)}.txt"
        r = rng.random()
        if r < 0.1:
            return ("remove", path, None)
        if r < 0.18:
            return ("fail", path, f"broken in op {round_}/{n}")
        return ("put", path, (f"{round_}/{n}", rng.randrange(0, 6), rng.randrange(0, 2000)))

    def vector(tag, j, dim):
        v = np.random.default_rng([zlib.crc32(tag.encode()), j, dim]).standard_normal(dim).astype(np.float32)
        return v / np.linalg.norm(v)
''')

WRITER = OPS + textwrap.dedent('''
    import sys
    from pathlib import Path
    from sensorium.index.catalog import Catalog, FileState, NewSegment
    from sensorium.index.lock import WriterLock
    from sensorium.index.vectors import VectorStore

    folder, round_ = Path(sys.argv[1]), int(sys.argv[2])
    SPACES = {"shared": 384, "image": 64}
    with WriterLock(folder):
        catalog = Catalog(folder / "catalog.sqlite")
        stores = {s: VectorStore(folder, s, d, capacity=16) for s, d in SPACES.items()}  # many shards
        for store in stores.values():
            store.sync_with(catalog)
            store.save()
        print("ready", flush=True)
        for n in range(10**6):
            kind, path, arg = op(round_, n)
            if kind == "remove":
                removed = catalog.remove_paths([path])
                new = []
            elif kind == "fail":
                catalog.record_failure(FileState(path, 1, n, None), "text", arg)
                removed, new = [], []
            else:
                tag, nseg, filler = arg
                segs = [NewSegment(float(j), float(j + 1), "text", f"{tag} seg {j} " + "x" * filler, [[tag, j]],
                                   {"shared": vector(tag, j, 384), **({"image": vector(tag, j, 64)} if j % 2 == 0 else {})})
                        for j in range(nseg)]
                _, new, removed = catalog.put_item(FileState(path, nseg, n, tag), "text", None, {"op": tag}, segs)
            for space, store in stores.items():
                store.remove(removed)
                ids, matrix = catalog.vectors_for(space, new)
                store.add(ids, matrix)
            print("done", n, flush=True)
            if n % 4 == 3:
                for store in stores.values():
                    store.save()
''')

namespace: dict = {}
exec(OPS, namespace)  # noqa: S102 - the same op table the writer runs
op, vector = namespace["op"], namespace["vector"]


def replay(state: dict, round_: int, upto: int) -> dict:
    """The (items, failures) model after ops 0..upto-1 of `round_`, starting from `state`."""
    items, failures = dict(state["items"]), dict(state["failures"])
    for n in range(upto):
        kind, path, arg = op(round_, n)
        if kind == "remove":
            items.pop(path, None)
            failures.pop(path, None)
        elif kind == "fail":
            failures[path] = arg
        else:
            items[path] = arg[0]
            failures.pop(path, None)
    return {"items": items, "failures": failures}


def observed(catalog: Catalog) -> dict:
    items = {p: catalog.item(p).content_hash for p in catalog.paths() if catalog.item(p) is not None}
    return {"items": items, "failures": dict(catalog.failures())}


def check_catalog(db_path: Path, catalog: Catalog) -> None:
    con = sqlite3.connect(db_path)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*) FROM segments WHERE item_id NOT IN (SELECT id FROM items)").fetchone()[0] == 0
    assert con.execute("SELECT COUNT(*) FROM vectors WHERE segment_id NOT IN (SELECT id FROM segments)").fetchone()[0] == 0
    assert con.execute("SELECT COUNT(*) - COUNT(DISTINCT path) FROM items").fetchone()[0] == 0
    con.close()
    assert catalog.integrity_errors() == []
    # every committed item is complete: all its segments, texts and exact vectors
    for path in catalog.paths():
        item = catalog.item(path)
        if item is None:
            continue
        tag, nseg = item.content_hash, item.size
        ids = catalog.segment_ids()
        rows = [r for r in catalog.segments(ids) if r.item_id == item.id]
        assert [r.text.split(" ")[:3] for r in rows] == [[tag, "seg", str(j)] for j in range(nseg)]
        for space, dim in SPACES.items():
            got_ids, matrix = catalog.vectors_for(space, [r.id for r in rows])
            expected = [j for j in range(nseg) if space == "shared" or j % 2 == 0]
            assert got_ids.tolist() == [rows[j].id for j in expected]
            for row_vec, j in zip(matrix, expected):
                np.testing.assert_array_equal(row_vec, vector(tag, j, dim))


def _start_writer(folder: Path, round_: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    return subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(round_)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return
            if not line:
                break
    proc.kill()
    raise AssertionError(f"writer never said {prefix!r}: {proc.stderr.read()}")


def test_random_sigkill_never_corrupts_the_collection(tmp_path: Path):
    rnd = random.Random(1234)
    state = {"items": {}, "failures": {}}
    total_ops = 0
    for round_ in range(4):
        proc = _start_writer(tmp_path, round_)
        _wait_for_line(proc, "ready")
        # kill right after the writer reports a chosen operation: the kill then lands somewhere inside
        # the next ones (wherever the machine's speed puts it), and the test never depends on how much
        # work a fixed sleep allows
        target = rnd.randint(1, 5)
        _wait_for_line(proc, f"done {target}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # read through the same buffered stream as _wait_for_line: communicate() would read the raw
        # pipe and miss lines already buffered there
        out, err = proc.stdout.read(), proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL, err
        # the kill can land inside print(): a last line without its newline is cut and is not a report
        complete = out.split("\n")[:-1]
        done = [int(line.split()[1]) for line in complete if line.startswith("done ") and line.split()[1:]]
        reported = max([target, *done]) + 1  # "done N" lines up to the target were read while waiting
        total_ops += reported

        # every index file on disk is whole (atomic save), whatever moment the kill hit
        for space, dim in SPACES.items():
            len(VectorStore(tmp_path, space, dim))
        catalog = Catalog(tmp_path / "catalog.sqlite")
        check_catalog(tmp_path / "catalog.sqlite", catalog)
        now = observed(catalog)
        candidates = [replay(state, round_, reported), replay(state, round_, reported + 1)]
        assert now in candidates, f"round {round_}: catalog is not the state after op {reported} or {reported + 1}"
        state = now
        for space, dim in SPACES.items():
            store = VectorStore(tmp_path, space, dim)
            store.sync_with(catalog)
            assert store.ids().tolist() == catalog.vector_ids(space).tolist()
        catalog.close()
    assert total_ops >= 8  # at least two operations a round, by construction


LOCK_HOLDER = textwrap.dedent('''
    import sys, time
    from sensorium.index.lock import WriterLock
    with WriterLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
''')


def test_writer_lock_excludes_a_second_writer_and_frees_on_sigkill(tmp_path: Path):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(tmp_path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for_line(holder, "locked")
        with pytest.raises(CollectionLockedError) as err:
            WriterLock(tmp_path).acquire()
        message = str(err.value)
        assert f"pid {holder.pid}" in message and str(tmp_path) in message and "since" in message
        assert "wait for it or stop it" in message
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        holder.stdout.close()
        holder.stderr.close()
    with WriterLock(tmp_path) as lock:  # the dead holder's lock is free without any cleanup
        assert lock.held
        assert f"pid={os.getpid()}" in (tmp_path / "writer.lock").read_text()
        with pytest.raises(CollectionLockedError):
            WriterLock(tmp_path).acquire()  # a second holder in the same process is refused too
    assert (tmp_path / "writer.lock").read_text() == ""
    WriterLock(tmp_path).acquire().release()


# --- `sensorium index` killed mid-run, then resumed ------------------------------------------
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


NOTES = 60  # notes commit one by one, so the kill after 10 always lands mid-run


def children_of(pid: int) -> list[int]:
    done = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True)
    return [int(line) for line in done.stdout.split()]


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("options", [[], ["--workers", "2"]], ids=["one-process", "workers"])
def test_kill_during_index_then_resume(tmp_path, options):
    """Killed mid-run, with or without worker processes (which must then stop too), and resumed. Without
    their parent watch, orphaned workers wait on their queue for ever (measured: still alive 60 s on, for
    60 notes as for 400), so a few notes left to index are enough to show they stop."""
    from sensorium import Collection

    media, col = tmp_path / "media", tmp_path / "col"
    media.mkdir()
    count = NOTES
    make_notes(media, count)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "sensorium.cli", "index", str(media), "-c", str(col), "--json",
                                *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 300
    while items_in(col / "catalog.sqlite") < 10 and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "indexing finished before it could be interrupted"
    workers = children_of(process.pid)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if options:
        assert workers, "no worker processes under the indexer"
        deadline = time.time() + 15
        while any(alive(pid) for pid in workers) and time.time() < deadline:
            time.sleep(0.2)
        assert not any(alive(pid) for pid in workers), "worker processes outlived the killed indexer"
    stored_before = items_in(col / "catalog.sqlite")
    assert 10 <= stored_before < count

    collection = Collection(col)
    report = collection.index(media)
    assert report.unchanged == stored_before  # what was committed before the kill is kept as is
    assert report.added == count - stored_before and not report.failed
    catalog = collection.catalog
    assert catalog.counts() == {"text": count}
    assert not catalog.integrity_errors()
    assert len(catalog.paths()) == count
    ids = np.sort(catalog.vector_ids("shared"))
    assert np.array_equal(np.sort(collection.store("shared").ids()), ids)
    hit = collection.search(text="a guide to sailing", k=1)[0]
    assert "sailing" in Path(hit.path).read_text()
    collection.close()
