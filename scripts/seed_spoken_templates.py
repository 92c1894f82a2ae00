"""Rebuild the spoken-template seed shipped in the package (src/sensorium/experts/data/spoken-templates.safetensors).

The seed holds the template vectors of common spoken labels (`spoken_templates.SEED_WORDS`), so that
classifying a clip among them does not first synthesise and encode ~28 clips per word (~3 s a word on
2 cores). It is used only while its settings key matches the models and settings in use; run this
after changing either (the test suite says when the seed no longer matches).

Usage: .venv/bin/python scripts/seed_spoken_templates.py
"""
from __future__ import annotations

import time

from sensorium.experts import spoken_templates
from sensorium.experts.speech import SpeechRecognizer


def main() -> None:
    recognizer = SpeechRecognizer()
    if recognizer.keyword is None:
        raise SystemExit("the keyword model (openwakeword's ONNX files) is not installed: run `make install` first")
    start = time.perf_counter()
    path = spoken_templates.write_seed(recognizer.template_vectors, recognizer.whisper.sha256, recognizer.keyword)
    print(f"{path}: {len(spoken_templates.SEED_WORDS)} words, {path.stat().st_size / 1024:.0f} KiB, "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
