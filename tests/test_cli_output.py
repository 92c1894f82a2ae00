"""Golden tests of what `sensorium search`, `info` and `evaluate` print for people (not --json), on
a small fixed folder: the structure and the stable fields (file names in order, counts, column
headers, labels) exactly; scores by pattern and range, never as exact floats. COLUMNS is fixed so
rich lays tables out the same on any terminal."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.cli import make_media, run, shared_home

WIDTH = 200
HIT = re.compile(r"^ ?(?P<rank>\d+)\. (?P<score>-?\d\.\d{3})  (?P<kind>image|audio|text |video)  (?P<path>\S.*?)"
                 r"(?: \[(?P<start>\d+\.\d)-(?P<end>\d+\.\d) s\])?$")
WHY = re.compile(r"^      \S.*$")


@pytest.fixture(scope="module")
def home() -> Path:
    return shared_home()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = make_media(tmp_path_factory.mktemp("cli-output-media"))
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 20)
    return root


@pytest.fixture(scope="module")
def collection(media, home, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("cli-output-col")
    result = run("index", str(media), "-c", str(directory), "--no-ocr", "--no-people", env_home=home, columns=WIDTH)
    assert result.returncode == 3, result.stderr  # documented: some file failed
    lines = result.stdout.strip().splitlines()
    assert re.fullmatch(rf"indexed {re.escape(str(media))}: 5 added, 0 updated, 0 unchanged, 0 touched, "
                        r"0 removed, 1 failed in \d+\.\d s", lines[0]), lines
    assert re.fullmatch(rf"  failed {re.escape(str(media / 'broken.png'))}: \S.*", lines[1]), lines
    assert len(lines) == 2
    return directory


def hits_of(stdout: str) -> list[dict]:
    """Each hit as two lines: rank, score, kind and path (and a time range for timed hits), then why."""
    lines = stdout.rstrip("\n").splitlines()
    assert len(lines) % 2 == 0, lines
    hits = []
    for first, second in zip(lines[::2], lines[1::2]):
        match = HIT.match(first)
        assert match, first
        assert WHY.match(second), second
        hits.append(dict(match.groupdict(), name=Path(match["path"]).name, why=second.strip()))
    assert [int(h["rank"]) for h in hits] == list(range(1, len(hits) + 1))
    scores = [float(h["score"]) for h in hits]
    assert scores == sorted(scores, reverse=True)
    return hits


def test_search_output(collection, home, media):
    result = run("search", "a cat", "-c", str(collection), "--kind", "image", "-k", "3", env_home=home, columns=WIDTH)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    hits = hits_of(result.stdout)
    assert [h["name"] for h in hits][0] == "kitty.jpg"
    assert sorted(h["name"] for h in hits) == ["kitty.jpg", "mug.png", "rocket.png"]
    assert all(h["kind"] == "image" and h["start"] is None and Path(h["path"]).parent == media for h in hits)
    # measured 0.979 for the cat, 0.24-0.27 for the others: the cat is clearly apart
    assert float(hits[0]["score"]) > float(hits[1]["score"]) + 0.3
    assert "cat" in hits[0]["why"]

    spoken = run("search", "what should I buy at the market", "-c", str(collection), "-k", "1", env_home=home, columns=WIDTH)
    assert spoken.returncode == 0, spoken.stderr
    (hit,) = hits_of(spoken.stdout)
    assert hit["name"] == "memo.wav" and hit["kind"] == "audio"
    assert hit["start"] is not None and 0.0 <= float(hit["start"]) < float(hit["end"]) <= 5.0  # a ~3.5 s memo

    nothing = run("search", "a cat", "-c", str(collection), "--modality", "video", env_home=home, columns=WIDTH)
    assert nothing.returncode == 0 and nothing.stdout == "no results\n"


def test_info_output(collection, home, media):
    result = run("info", "-c", str(collection), env_home=home, columns=WIDTH)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    lines = result.stdout.rstrip("\n").splitlines()
    assert lines[:5] == [f"collection {collection}", "  audio  1", "  image  3", "  text   1", "1 failed files:"]
    assert re.fullmatch(rf"  {re.escape(str(media / 'broken.png'))}: \S.*", lines[5]), lines
    # the folder indexed is the one root: stored items (the failure is not one), its files there
    assert lines[6] == "roots:"
    assert re.fullmatch(rf"  {re.escape(media.name)}  +5 items  ok +{re.escape(str(media))}", lines[7]), lines
    assert len(lines) == 8


def table(lines: list[str], title: str) -> list[list[str]]:
    """The rows (header first) of the rich table printed under `title`."""
    at = lines.index(title)
    rows = []
    for line in lines[at + 1:]:
        if line[:1] in "┏┡└":
            if line[:1] == "└":
                break
            continue
        assert line[:1] in "┃│", line
        rows.append([cell.strip() for cell in re.split(r"[┃│]", line)[1:-1]])
    return rows


def test_evaluate_output(home, tmp_path):
    """A small two-class run (bars up or across, as tests/test_train_cli_distributed.py trains it),
    trained by `sensorium train` in one process, then evaluated."""
    from helpers.training import CONFIG, write_data

    manifest = write_data(tmp_path / "data", 48)
    (tmp_path / "config.toml").write_text(CONFIG)
    env = dict(os.environ, SENSORIUM_HOME=str(home), OMP_NUM_THREADS="1")
    trained = subprocess.run([sys.executable, "-m", "sensorium.cli", "train", str(tmp_path / "config.toml"), "--out",
                              str(tmp_path / "run")], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]

    result = run("evaluate", str(tmp_path / "run"), "--data", str(manifest), "--noise", "0,0.5,1", "--diagram",
                 str(tmp_path / "reliability.png"), env_home=home, columns=WIDTH)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.rstrip("\n").splitlines()
    summary = re.fullmatch(r"label: accuracy (\d\.\d{4}), macro-F1 (\d\.\d{4}) on 48 items \(\d+ items/s\)", lines[0])
    assert summary, lines[0]
    # the held-out quarter reaches >= 0.9 (tests/test_train_cli_distributed.py); a model that learned
    # nothing scores 0.5 on these two balanced classes
    assert float(summary[1]) >= 0.9 and float(summary[2]) >= 0.9

    per_class = table(lines, "label: per class")
    assert per_class[0] == ["class", "precision", "recall", "F1", "support"]
    assert [row[0] for row in per_class[1:]] == ["across", "up"]
    for row in per_class[1:]:
        assert all(re.fullmatch(r"[01]\.\d{3}", cell) for cell in row[1:4]), row
        assert row[4] == "24"

    # training fitted a temperature on its validation split; evaluate measures confidence under it
    stored = json.loads((tmp_path / "run" / "best" / "calibration.json").read_text())
    assert stored["task"] == "label" and stored["temperature"] > 0
    assert stored["after"]["nll"] <= stored["before"]["nll"] + 1e-9  # fitted by likelihood on those examples
    at = next(i for i, line in enumerate(lines) if line.startswith("label: calibration"))
    assert re.fullmatch(r"label: calibration with the temperature fitted on validation \(T = [\d.e+-]+\)", lines[at])
    for line, name in zip(lines[at + 1:at + 5], ("ECE (15 bins)", "adaptive ECE", "NLL", "Brier")):
        assert re.fullmatch(rf"  {re.escape(name)} +\d\.\d{{4}} -> \d\.\d{{4}}", line), line
    assert (tmp_path / "reliability.png").stat().st_size > 1000

    plain = run("evaluate", str(tmp_path / "run"), "--data", str(manifest), env_home=home, columns=WIDTH)
    assert plain.returncode == 0 and "noise" not in plain.stdout  # the sweep only when asked for
    first = re.fullmatch(r"label: accuracy (\d\.\d{4}), macro-F1 (\d\.\d{4}) on 48 items \(\d+ items/s\)",
                         plain.stdout.splitlines()[0])
    assert first and first[1] == summary[1]  # the same scores, without the sweep

    robust = table(lines, "accuracy under noise on one modality / with it missing")
    assert robust[0] == ["modality", "noise 0", "noise 0.5", "noise 1", "relative", "missing"]
    assert [row[0] for row in robust[1:]] == ["image", "signal"]
    for row in robust[1:]:
        assert all(re.fullmatch(r"[01]\.\d{3}", cell) for cell in row[1:]), row
        assert float(row[1]) == pytest.approx(float(summary[1]), abs=1e-3)  # noise 0 is the clean accuracy


def test_errors_print_brackets_as_written(tmp_path):
    """An error naming `sensorium[ray]` or a path with brackets is not eaten by rich's markup."""
    missing = tmp_path / "trip [draft]"
    done = run("index", str(missing), "-c", str(tmp_path / "col"), env_home=shared_home())
    assert done.returncode == 2 and "trip [draft]: not a folder" in done.stderr


def test_results_print_brackets_as_written(tmp_path):
    media = tmp_path / "trip [draft]"
    media.mkdir()
    (media / "note.md").write_text("We hiked to the glacier and camped by the lake.\n")
    done = run("index", str(media), "-c", str(tmp_path / "col"), env_home=shared_home())
    assert done.returncode == 0, done.stderr
    assert f"indexed {media}:" in done.stdout
