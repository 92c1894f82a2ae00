"""`sensorium align` through the learning framework's Trainer: exact resume, 2 gloo ranks under
torchrun, any two modalities (a spoken-word audio + transcript job), errors naming key/row/file."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from sensorium.space.learned import AttachedSpace
from sensorium.align.bind import Edge
from sensorium.align.job import load_job
from sensorium.align.heads import Space
from sensorium.align.train import AlignConfig
from sensorium.align.trainer_bridge import AlignEdge, train_edges
from sensorium.cli import app
from sensorium.errors import ConfigError, ReadError

SRC = Path(__file__).resolve().parents[1] / "src"
WORDS = ["zero", "one", "two", "three", "four", "five"]


def synthetic_edges(seed: int = 0) -> list[AlignEdge]:
    """Two edges through a hub: audio-like (24-d) <-> image-like (20-d) <-> text-like (16-d), 6 classes."""
    rng = np.random.default_rng(seed)
    groups = np.arange(48) % 6
    concept = rng.normal(size=(6, 8))

    def view(dim):
        return (concept[groups] @ rng.normal(size=(8, dim)) + 0.3 * rng.normal(size=(48, dim))).astype(np.float32)

    return [AlignEdge("audio", "image", Edge(view(24), view(20), groups)),
            AlignEdge("image", "text", Edge(view(20), view(16), groups))]


def test_stopped_and_resumed_run_ends_with_the_same_weights(tmp_path):
    # mlp heads with dropout and hard-negative batches: the torch RNG and the batch plan must resume too
    config = AlignConfig(dim=16, head="mlp", dropout=0.1, epochs=3, batch_size=8, hard_negatives=True, warmup_steps=2)
    edges = synthetic_edges()
    whole = train_edges(edges, config, tmp_path / "whole", frozen=("text",), identity=("text",))
    assert whole.summary["step"] == 3 * 6 and whole.history[-1] < whole.history[0]
    torch.testing.assert_close(whole.space.heads["text"].net.weight, torch.eye(16), rtol=0, atol=0)  # frozen

    stopped = train_edges(edges, config, tmp_path / "cut", frozen=("text",), identity=("text",), stop_after_steps=8)
    assert stopped.summary["interrupted"] and stopped.summary["step"] == 8
    assert (tmp_path / "cut" / "checkpoint" / "model.safetensors").is_file()
    assert (tmp_path / "cut" / "checkpoint" / "state.json").is_file()
    resumed = train_edges(edges, config, tmp_path / "cut", frozen=("text",), identity=("text",), resume=True)
    assert resumed.summary["step"] == whole.summary["step"]
    final, expected = resumed.space.state_dict(), whole.space.state_dict()
    for name in expected:
        torch.testing.assert_close(final[name], expected[name], rtol=1e-6, atol=1e-7, msg=name)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(ReadError, match="checkpoint"):
        train_edges(synthetic_edges(), AlignConfig(dim=8, epochs=1, batch_size=8), tmp_path / "none", resume=True)


WORKER = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    from sensorium.align.job import AlignJob, SourceFeatures, train_and_save
    from sensorium.align.train import AlignConfig
    from sensorium.training.distributed import setup, teardown

    torch.set_num_threads(1)
    context = setup()
    rng = np.random.default_rng(0)
    groups = np.arange(40) % 5
    concept = rng.normal(size=(5, 6))
    audio = (concept[groups] @ rng.normal(size=(6, 512)) + 0.2 * rng.normal(size=(40, 512))).astype(np.float32)
    text = (concept[groups] @ rng.normal(size=(6, 384)) + 0.2 * rng.normal(size=(40, 384))).astype(np.float32)
    job = AlignJob(train=AlignConfig(dim=16, epochs=2, batch_size=8), combine=None)
    found = [SourceFeatures("pairs", ("audio", "text"), audio, text, groups)]
    summary = train_and_save(job, found, sys.argv[1], context=context)
    open(f"{sys.argv[1]}/done{context.rank}", "w").write(str(summary["trainer"]["step"]))
    teardown(context)
''')


def test_two_gloo_ranks_train_and_save_one_space(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(SRC)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "done0").read_text() == (out / "done1").read_text() == "6"  # both ranks finished every step
    summary = json.loads((out / "align.json").read_text())
    assert summary["inputs"] == {"audio": ["audio"], "text": ["text"]} and summary["bridge"] is None
    # 5 batches of 8 per epoch, split over 2 ranks -> 3 steps an epoch each (the sampler pads)
    assert summary["trainer"]["step"] == 2 * 3 and len(summary["history"]) == 2
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]  # rank 0 alone logs
    space = Space.load(out)
    checkpoint = load_file(str(out / "checkpoint" / "model.safetensors"))
    for name, value in space.state_dict().items():  # the saved space is the last checkpoint's heads
        torch.testing.assert_close(checkpoint["space." + name], value, rtol=0, atol=0)


def test_edges_config_parses_hub_options(tmp_path):
    (tmp_path / "a.csv").write_text("clip,photo\n", encoding="utf-8")
    config = tmp_path / "hub.toml"
    config.write_text('frozen = ["text"]\nidentity = ["text"]\n'
                      '[[edges]]\nmanifest = "a.csv"\naudio = "clip"\nimage = "photo"\n'
                      '[[edges]]\nmanifest = "b.csv"\nimage = "photo"\ntext = "caption"\ngroup = "id"\n'
                      '[train]\ndim = 384\n', encoding="utf-8")
    job = load_job(config)
    assert [s.key for s in job.sources] == ["edges[0]", "edges[1]"]
    assert job.sources[0].columns == {"audio": "clip", "image": "photo"}
    assert job.sources[1].columns == {"image": "photo", "text": "caption"} and job.sources[1].group_column == "id"
    assert job.frozen == ("text",) and job.identity == ("text",) and job.combine is None
    config.write_text(config.read_text().replace('frozen = ["text"]', 'frozen = ["speech"]'))
    with pytest.raises(ConfigError, match="frozen: 'speech' is not a head"):
        load_job(config)


# --- an audio + transcript job on spoken words (espeak-ng), Whisper features ------------------
@pytest.fixture(scope="module")
def speech_root(tmp_path_factory) -> Path:
    # Whisper and espeak-ng are required dependencies: their absence fails this test, never skips it
    from sensorium.align.audio_features import WhisperPooler
    from sensorium.experts.tts import save_wav, synthesize

    WhisperPooler()
    root = tmp_path_factory.mktemp("speech")
    rows = []
    for number, word in enumerate(WORDS):
        for take, (rate, pitch) in enumerate(((150, 40), (190, 60))):
            name = f"clips/{word}_{take}.wav"
            (root / "clips").mkdir(exist_ok=True)
            save_wav(synthesize(word, rate_wpm=rate, pitch=pitch), root / name)
            rows.append({"clip": name, "words": word, "digit": str(number)})
    with open(root / "speech.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, ["clip", "words", "digit"])
        writer.writeheader()
        writer.writerows(rows)
    return root


def speech_config(root: Path, name: str = "speech.toml", manifest: str = "speech.csv", pairs: str = "") -> Path:
    config = root / name
    config.write_text(f'[pairs]\nmanifest = "{manifest}"\n'
                      + (pairs or 'audio = "clip"\ntext = "words"\ngroup = "digit"\n')
                      + '[train]\ndim = 32\nepochs = 20\nbatch_size = 6\nlr = 0.003\n'
                      '[features]\ncache = "feature-cache"\n', encoding="utf-8")
    return config


def test_audio_transcript_job_trains_a_space_with_an_audio_head(speech_root, tmp_path):
    out = tmp_path / "space"
    result = CliRunner().invoke(app, ["align", str(speech_config(speech_root)), "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "align.json").read_text())
    assert summary["inputs"] == {"audio": ["audio"], "text": ["text"]}
    assert summary["input_dims"] == {"audio": [512], "text": [384]} and summary["weight_policy"] == "none"
    assert summary["data"]["sources"][0]["modalities"] == ["audio", "text"] and summary["data"]["pairs"] == 12
    assert summary["history"][-1] < summary["history"][0] and len(summary["history"]) == 20
    # training pairs: each spoken word finds its own transcript among the 6 words
    assert summary["metrics_train"]["pairs"]["r1_right_to_left"] >= 0.8
    space = Space.load(out)
    assert set(space.heads) == {"audio", "text"} and space.dim == 32
    assert (out / "checkpoint" / "model.safetensors").is_file() and (out / "metrics.jsonl").is_file()
    assert summary["input_norm"] == {"audio": "l2"}  # the audio head reads unit vectors, as a collection stores
    assert AttachedSpace.load(out).item_heads == ["audio"]  # attachable (tests/test_space_attach_audio.py)
    # --resume on a finished run trains nothing more and writes the same space
    again = CliRunner().invoke(app, ["align", str(speech_config(speech_root)), "--out", str(out), "--resume", "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "align.json").read_text())["data"]["cache_misses"] == 0
    resumed = Space.load(out)
    for name, value in space.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, rtol=0, atol=0)


@pytest.mark.parametrize("pairs, needles", [
    ('sound = "clip"\ntext = "words"\n', ["pairs.sound", "unknown key", "audio"]),
    ('audio = "clip"\ntext = "transcript"\n', ["pairs.manifest", "'transcript'"]),
])
def test_bad_modality_or_column_names_the_key(speech_root, tmp_path, pairs, needles):
    config = speech_config(speech_root, "bad.toml", pairs=pairs)
    result = CliRunner().invoke(app, ["align", str(config), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "Traceback" not in result.output
    for needle in needles:
        assert needle in result.output


def test_missing_file_and_unreadable_file_name_row_and_file(speech_root, tmp_path):
    rows = (speech_root / "speech.csv").read_text().splitlines()
    (speech_root / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    bad = {"missing.csv": rows[:3] + ["clips/nine_0.wav,nine,9"], "broken.csv": rows[:3] + ["broken.wav,nine,9"]}
    for name, lines in bad.items():
        (speech_root / name).write_text("\n".join(lines) + "\n")
        config = speech_config(speech_root, name.replace(".csv", ".toml"), manifest=name)
        result = CliRunner().invoke(app, ["align", str(config), "--out", str(tmp_path / name)])
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        text = " ".join(result.output.split())
        assert "pairs.manifest" in text and "row 3" in text, text
        assert ("nine_0.wav" if name == "missing.csv" else "broken.wav") in text, text
