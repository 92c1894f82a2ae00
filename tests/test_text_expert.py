"""The onnxruntime and numpy MiniLMs must be the same function as sentence-transformers, and a
query must never need torch once the ONNX graph has been exported."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from sensorium.errors import ModelError
from sensorium.experts.text import TextEncoder

ROOT = Path(__file__).resolve().parents[1]
COCO = ROOT.parent / "shared" / "data" / "coco_mini" / "captions_train2017.json"


def varied_sentences() -> list[str]:
    """~300 sentences of mixed length, case, punctuation and script (plus COCO captions if present)."""
    subjects = ["A dog", "the old man", "Two children", "a red car", "THE CAT", "une femme"]
    verbs = ["runs across", "is sleeping on", "looks at", "waits near", "jumps over"]
    places = ["the beach.", "a snowy street", "the kitchen table!", "a busy market in Tokyo?", "草原"]
    sentences = [" ".join(parts) for parts in product(subjects, verbs, places)]  # 150
    sentences += ["", "a", "ok", "Ünïcødé café naïve", "stock market report", "word " * 300]
    if COCO.is_file():
        sentences += [c["caption"] for c in json.loads(COCO.read_text())["annotations"][:150]]
    else:
        sentences += [f"sentence {i}: {s.lower()} again" for i, s in enumerate(sentences[:150])]
    return sentences


@pytest.mark.slow  # importing torch + sentence-transformers alone takes 30+ s on a busy 2-core box
def test_fast_paths_match_sentence_transformers():
    every = varied_sentences()  # a spread of the combinations, every edge case, some captions
    texts = every[:150:4] + every[150:156] + every[156::5]
    reference = TextEncoder(backend="torch").encode(texts)
    for backend in ("numpy", "onnx"):
        encoder = TextEncoder(backend=backend)
        fast = encoder.encode(texts)
        assert encoder.backend == backend
        assert fast.shape == reference.shape == (len(texts), 384)
        assert fast.dtype == np.float32
        cosine = np.sum(fast * reference, axis=1)
        assert cosine.min() > 1 - 1e-5, (backend, texts[int(cosine.argmin())])
        assert np.abs(fast - reference).max() < 1e-4, backend


def test_rows_are_unit_length_and_order_independent_of_batching():
    texts = varied_sentences()[:40]
    encoder = TextEncoder(batch_size=7)
    vectors = encoder.encode(texts)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    one_by_one = np.stack([encoder.encode([t])[0] for t in texts[:5]])
    np.testing.assert_allclose(vectors[:5], one_by_one, atol=1e-5)


def test_semantic_sanity():
    dog, puppy, stocks = TextEncoder().encode(["a photo of a dog", "a puppy", "stock market report"])
    assert dog @ puppy > dog @ stocks + 0.2


def test_empty_input_and_bad_backend():
    assert TextEncoder().encode([]).shape == (0, 384)
    with pytest.raises(ModelError, match="backend"):
        TextEncoder(backend="tensorflow")


def test_bad_local_folder_raises_model_error(tmp_path):
    with pytest.raises(ModelError, match=str(tmp_path)):
        TextEncoder(local_dir=tmp_path).encode(["hello"])


def test_onnx_and_numpy_agree_on_every_kind_of_sentence():
    texts = varied_sentences()[::3]
    onnx, plain = TextEncoder(backend="onnx"), TextEncoder(backend="numpy")
    a, b = onnx.encode(texts), plain.encode(texts)
    assert onnx.backend == "onnx"
    assert np.abs(a - b).max() < 1e-5


def test_encoding_does_not_import_torch():
    TextEncoder().encode(["export the graph first, if this home has none yet"])
    code = (
        "import sys; from sensorium.experts.text import TextEncoder; "
        "v = TextEncoder().encode(['a dog on a beach']); "
        "assert v.shape == (1, 384); assert 'torch' not in sys.modules, 'torch imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin",
                               **{k: v for k, v in os.environ.items() if k == "SENSORIUM_HOME"}})
    assert done.returncode == 0, done.stderr
