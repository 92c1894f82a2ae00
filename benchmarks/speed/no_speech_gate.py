"""No speech, no decoding: what the silero gate before Whisper saves on short clips without speech,
and what speech it lets through.

    .venv/bin/python -m benchmarks.speed.no_speech_gate [--fsdd DIR]

Whisper decodes a short clip whole (VAD's padding can clip a lone word), so a clip of rain or an
engine went through all six fallback temperatures (beam 5, then sampling best of 5), looping on
text that is then thrown away: seconds per clip, for no transcript. `speech.heard_speech` now asks
silero VAD first, at a permissive threshold. Table 1 times `SpeechRecognizer.transcribe` on such
sounds with the gate and without (the gate patched to always answer yes). Table 2 is the other side:
the share of spoken clips the gate lets through (FSDD's spoken digits when ../shared is there,
espeak-ng words in several voices, and both 20 dB quieter).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.common.sounds import MELODY, RATE, engine, hiss, plucked, rain

FSDD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd"
WORDS = ["up", "down", "left", "right", "yes", "no", "oh", "go", "stop", "one", "two", "six", "eight", "hi",
         "maybe", "zero"]


def no_speech_sounds() -> dict[str, np.ndarray]:
    return {"rain, 3 s": rain(3, seed=9), "rain, 6 s": rain(6, seed=1), "engine, 6 s": engine(6, seed=3),
            "hiss, 2 s": hiss(2, seed=0), "silence, 1 s": np.zeros(RATE, np.float32),
            "plucked tune, 3.2 s": plucked(MELODY[3:12], seed=5, detune=1.03),
            "plucked tune, 5.6 s": plucked(MELODY, seed=0)}


def timed_transcripts(recognizer, sounds: dict[str, np.ndarray], gate: bool) -> dict[str, tuple[float, str]]:
    from sensorium.experts import speech
    from sensorium.readers.payloads import AudioPayload

    real = speech.heard_speech
    speech.heard_speech = real if gate else (lambda samples: True)
    try:
        out = {}
        for name, samples in sounds.items():
            started = time.perf_counter()
            segments = recognizer.transcribe(AudioPayload(path=Path(name), samples=samples, sample_rate=RATE))
            out[name] = (time.perf_counter() - started, " ".join(s.text for s in segments))
        return out
    finally:
        speech.heard_speech = real


def spoken_clips(fsdd: Path) -> dict[str, list[np.ndarray]]:
    import soundfile as sf
    import soxr

    from sensorium.experts.spoken_templates import ENGLISH_VOICES
    from sensorium.experts.tts import synthesize

    def at_16k(samples: np.ndarray, rate: int) -> np.ndarray:
        samples = np.asarray(samples, np.float32).reshape(-1)
        return samples if rate == RATE else soxr.resample(samples, rate, RATE).astype(np.float32)

    groups = {}
    files = sorted(fsdd.glob("*.wav")) if fsdd.is_dir() else []
    if files:
        groups[f"FSDD spoken digits ({len({f.stem.split('_')[1] for f in files})} speakers)"] = [
            at_16k(*sf.read(f, dtype="float32")) for f in files]
    said = [synthesize(w, voice=v) for w in WORDS for v in ENGLISH_VOICES]
    groups[f"espeak-ng words ({len(WORDS)} words x {len(ENGLISH_VOICES)} voices)"] = [
        at_16k(a.samples, a.sample_rate) for a in said]
    for name in list(groups):
        groups[name + ", 20 dB quieter"] = [clip * 0.1 for clip in groups[name]]
    return groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fsdd", type=Path, default=FSDD)
    args = parser.parse_args()
    from sensorium.experts.speech import SPEECH_GATE_THRESHOLD, SpeechRecognizer, heard_speech

    recognizer = SpeechRecognizer()
    timed_transcripts(recognizer, {"warm-up": np.zeros(RATE, np.float32)}, gate=False)
    sounds = no_speech_sounds()
    before, after = timed_transcripts(recognizer, sounds, False), timed_transcripts(recognizer, sounds, True)
    print(f"Table 1. `transcribe` on clips without speech (gate threshold {SPEECH_GATE_THRESHOLD})\n")
    print("| sound | without the gate | transcript | with the gate | transcript |\n|---|---|---|---|---|")
    for name in sounds:
        (b, said_before), (a, said_after) = before[name], after[name]
        print(f"| {name} | {b:.2f} s | {said_before or '(none)'} | {a:.3f} s | {said_after or '(none)'} |")
    total_b, total_a = sum(t for t, _ in before.values()), sum(t for t, _ in after.values())
    print(f"| all | {total_b:.1f} s | | {total_a:.1f} s | |\n")

    print("Table 2. Spoken clips the gate lets through to Whisper\n")
    print("| clips | let through | gate time per clip |\n|---|---|---|")
    for name, clips in spoken_clips(args.fsdd).items():
        started = time.perf_counter()
        kept = sum(heard_speech(clip) for clip in clips)
        per = (time.perf_counter() - started) / len(clips)
        print(f"| {name} | {kept} / {len(clips)} | {per * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
