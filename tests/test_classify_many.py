"""Classifying many files at once: per-file failures, and clips that sound alike agreeing on a label."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy.special import log_softmax
from typer.testing import CliRunner

from sensorium.space.agreement import agree

FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def unit(rows) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float64)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_confident_look_alikes_carry_an_unsure_clip_and_strangers_do_not():
    # clips 0-3 sound alike (cosine ~0.99) and are sure of label 1; clip 4 sounds like them but leans to 0
    sure = np.log([0.05, 0.9, 0.05])
    unsure = np.log([0.5, 0.4, 0.1])
    rng = np.random.default_rng(0)
    base = rng.normal(size=16)
    alike = unit([base + 0.05 * rng.normal(size=16) for _ in range(5)])
    scores = np.stack([sure] * 4 + [unsure])
    agreed = agree(scores, alike)
    assert agreed.shape == (5, 3) and np.allclose(np.exp(agreed).sum(axis=1), 1.0)
    assert agreed[4].argmax() == 1  # carried by its look-alikes
    assert np.all(agreed[:4].argmax(axis=1) == 1)

    # the same scores, but the unsure clip sounds like none of them (cosine < AGREE_MIN_COSINE): it stays itself
    strangers = alike.copy()
    strangers[4] = unit([rng.normal(size=16)])[0]
    strangers[4] -= strangers[4] @ alike[0] * alike[0]  # orthogonal to the group
    strangers[4] /= np.linalg.norm(strangers[4])
    alone = agree(scores, strangers)
    np.testing.assert_allclose(alone[4], log_softmax(unsure))


def test_a_batch_of_one_is_unchanged_and_bad_shapes_are_named():
    scores = np.log([[0.7, 0.3]])
    np.testing.assert_allclose(agree(scores, unit([[1.0, 0.0]])), scores)
    with pytest.raises(ValueError, match="agree"):
        agree(np.zeros((3, 2)), np.zeros((2, 4)))


def spoken_digits(folder: Path) -> dict[str, str]:
    """Digits as files: real FSDD takes when ../shared is here, else spoken by espeak-ng."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = {}
    if FSDD.is_dir():
        for digit, take in ((3, 1), (3, 2), (7, 1), (7, 2)):
            name = f"{digit}_jackson_{take}.wav"
            shutil.copy(FSDD / name, folder / name)
            truth[name] = WORDS[digit]
        return truth
    from sensorium.experts.spoken_templates import ACCENT_VOICES, ENGLISH_VOICES, PITCH, RATE_WPM
    from sensorium.experts.tts import save_wav, synthesize

    # voices, rates and pitches the spoken templates are not built from: the engine is not matched
    # against its own template of the word
    speakers = (("en-029", 175, 40), ("en-gb-scotland", 120, 75))
    assert not {voice for voice, *_ in speakers} & set(ENGLISH_VOICES + ACCENT_VOICES)
    assert all(rate != RATE_WPM and pitch != PITCH for _, rate, pitch in speakers)
    for digit in (3, 7):
        for voice, rate, pitch in speakers:
            name = f"{digit}_{voice}.wav"
            save_wav(synthesize(WORDS[digit], voice=voice, rate_wpm=rate, pitch=pitch), folder / name)
            truth[name] = WORDS[digit]
    return truth


def test_cli_classifies_many_files_together_and_reports_the_bad_one(tmp_path):
    from sensorium.cli import app

    truth = spoken_digits(tmp_path / "clips")
    broken = tmp_path / "clips" / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00not a wave file at all")
    paths = [str(tmp_path / "clips" / name) for name in truth] + [str(broken)]
    result = CliRunner().invoke(app, ["classify", *paths, "--labels", ",".join(WORDS), "--together", "--json"])
    assert result.exit_code == 1, result.output  # a file failed: documented non-zero status, the rest still printed
    report = json.loads(result.stdout)
    assert [f["path"] for f in report["failures"]] == [str(broken)]
    assert "broken.wav" in report["failures"][0]["reason"]
    found = {Path(r["path"]).name: r for r in report["results"]}
    assert set(found) == set(truth)
    for name, word in truth.items():
        assert found[name]["labels"][0]["label"] == word, found[name]
        assert "agreement with similar clips among 4" in found[name]["method"]
