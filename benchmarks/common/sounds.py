"""Synthetic everyday sounds with no speech in them (16 kHz float32), for the sound-search tests and
the no-speech gate's benchmark: a plucked tune, rain on a roof, an idling engine, a faint hiss."""
from __future__ import annotations

import numpy as np

RATE = 16000
MELODY = [262, 294, 330, 349, 392, 440, 494, 523] * 2


def plucked(notes, seed: int, detune: float = 1.0, note_seconds: float = 0.35) -> np.ndarray:
    """A plucked-string tune: harmonics with an exponential decay per note."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(note_seconds * RATE)) / RATE
    tune = np.concatenate([sum(np.sin(2 * np.pi * f * detune * k * t) / k for k in range(1, 6)) * np.exp(-4 * t)
                           for f in notes])
    return (0.3 * tune / np.abs(tune).max() + 0.003 * rng.standard_normal(len(tune))).astype(np.float32)


def rain(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    hiss = np.convolve(rng.standard_normal(int(seconds * RATE)), np.ones(8) / 8, "same")
    drops = (rng.random(len(hiss)) < 0.002) * rng.standard_normal(len(hiss)) * 4
    return (0.025 * (hiss + drops)).astype(np.float32)


def engine(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return (np.sign(np.sin(2 * np.pi * 45 * t)) * 0.2 + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def hiss(seconds: float, seed: int, level: float = 0.01) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)
