"""`sensorium align CONFIG.toml --out DIR`: a small manifest of the built-in sample photos trains a
loadable space; bad configs fail with the TOML key named and exit status 1."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sensorium.space.learned import AttachedSpace
from sensorium.align.job import load_job
from sensorium.cli import app
from sensorium.errors import ConfigError
from helpers.pairs import make_pairs


def write_config(root: Path, combine="1.0", extra: str = "", train: str = "") -> Path:
    config = root / f"align-{abs(hash((combine, extra, train)))}.toml"
    config.write_text(f"combine = {combine}\n{extra}\n[pairs]\nmanifest = \"pairs.csv\"\n"
                      f"[train]\ndim = 32\nepochs = 15\nbatch_size = 8\n{train}\n"
                      f"[features]\ncache = \"feature-cache\"\nocr = false\n", encoding="utf-8")
    return config


@pytest.fixture(scope="module")
def pairs_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pairs")
    make_pairs(root)
    return root


def test_align_cli_writes_a_loadable_space(pairs_root, tmp_path):
    config = write_config(pairs_root, combine='"auto"', extra="combine_folds = 2")
    out = tmp_path / "space"
    result = CliRunner().invoke(app, ["align", str(config), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "align.json").read_text())
    assert summary["weight_policy"] == "auto" and summary["weight"] in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
    assert set(summary["cv"]) == {"0.0", "0.25", "0.5", "1.0", "2.0", "4.0"}
    assert len(summary["history"]) == 15 and summary["history"][-1] < summary["history"][0]
    assert summary["data"] == {**summary["data"], "photos": 10, "pairs": 20}
    # the chosen w loses nothing against w = 0 on any CV figure, and has the best sum of those that do not
    cv = {float(w): figures for w, figures in summary["cv"].items()}
    assert all(len(figures) == 4 for figures in cv.values())
    eligible = {w: sum(f) for w, f in cv.items() if all(a >= b - 1e-9 for a, b in zip(f, cv[0.0]))}
    assert summary["weight"] in eligible
    best = max(eligible.values())
    assert summary["weight"] == min(w for w, total in eligible.items() if abs(total - best) < 1e-6)
    space = AttachedSpace.load(out)
    assert space.dim == 32 and space.inputs == {"image": ["image", "shared"], "text": ["text"]}
    vectors = space.embed_text(__import__("numpy").ones((2, 384), dtype="float32"))
    assert vectors.shape == (2, 32)
    # the frozen features were cached: a second run extracts nothing
    again = CliRunner().invoke(app, ["align", str(config), "--out", str(tmp_path / "again"), "--json"])
    assert again.exit_code == 0, again.output
    data = json.loads((tmp_path / "again" / "align.json").read_text())["data"]
    assert data["cache_misses"] == 0 and data["cache_hits"] == 30


@pytest.mark.parametrize("body, key", [
    ('combine = 1.0\n[pairs]\nmanifest = "pairs.csv"\n[train]\nlrr = 0.1\n', "train.lrr"),
    ('combine = 1.0\n[pairs]\nmanifest = "pairs.csv"\n[train]\nepochs = "ten"\n', "train.epochs"),
    ('combine = 1.0\n[pairs]\nmanifest = "pairs.csv"\n[train]\nloss = "hinge"\n', "train.loss"),
    ('combine = "sometimes"\n[pairs]\nmanifest = "pairs.csv"\n', "combine"),
    ('combine = -1\n[pairs]\nmanifest = "pairs.csv"\n', "combine"),
    ('combine = 1.0\n[pairs]\nmanifest = "pairs.csv"\nfolder = "photos"\n', "pairs"),
    ('combine = 1.0\n[pairs]\nmanifest = "pairs.csv"\ncolumns = 2\n', "pairs.columns"),
    ('combine = 1.0\nepochs = 3\n[pairs]\nmanifest = "pairs.csv"\n', "epochs"),
    ('combine = 1.0\n[features]\nocr = "yes"\n[pairs]\nmanifest = "pairs.csv"\n', "features.ocr"),
    ('combine = 1.0\n[pairs\n', "not valid TOML"),
])
def test_bad_config_names_the_key_and_exits_1(tmp_path, body, key):
    config = tmp_path / "bad.toml"
    config.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_job(config)
    result = CliRunner().invoke(app, ["align", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert key in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_bad_manifest_column_is_named(pairs_root, tmp_path):
    config = write_config(pairs_root, extra="", train="")
    config.write_text(config.read_text().replace('manifest = "pairs.csv"', 'manifest = "pairs.csv"\ntext = "words"'))
    result = CliRunner().invoke(app, ["align", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "'words'" in result.output
