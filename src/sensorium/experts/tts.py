"""Speech synthesis: text -> AudioPayload through the libespeak-ng that `espeakng-loader` ships.

Why espeak-ng: it is a small formant synthesiser whose library and voice data come inside an
installed wheel, so speech can be generated fully offline (the demo's voice memos and the video's
spoken track are made with it).

Interface:
    synthesize("Hello there.", voice="en-us", rate_wpm=160, pitch=50) -> AudioPayload (16 kHz mono)
    save_wav(payload, "memo.wav")
    voices() -> ["af", "am", ..., "en-us", ...]
    info() -> ModelInfo

libespeak-ng keeps global state (one voice, one set of parameters, one callback), so the library is
initialised once per process and every call that touches it holds one lock.
"""
from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..readers.payloads import SAMPLE_RATE, AudioPayload
from .base import ModelInfo, package_version, sha256_of

# Constants from espeak-ng's speak_lib.h.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_ESPEAK_RATE, _ESPEAK_VOLUME, _ESPEAK_PITCH = 1, 2, 3
_CHARS_UTF8 = 1
_EE_OK = 0
_POS_CHARACTER = 1

MIN_RATE_WPM, MAX_RATE_WPM = 80, 450
TTS_PATH = Path("<tts>")

_CALLBACK_TYPE = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Voice(ctypes.Structure):
    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),  # packed (priority byte, NUL-terminated name)* + NUL
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


class _Engine:
    """The one initialised libespeak-ng of this process."""

    def __init__(self):
        try:
            import espeakng_loader

            library_path = espeakng_loader.get_library_path()
            data_path = espeakng_loader.get_data_path()
            lib = ctypes.CDLL(library_path)
        except (ImportError, OSError, RuntimeError) as exc:
            raise ModelError(f"espeak-ng: cannot load the library from espeakng-loader ({exc})") from exc
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK_TYPE]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.POINTER(ctypes.c_uint), ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p

        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), 0)
        if rate <= 0:
            raise ModelError(f"espeak-ng: initialisation failed with data folder {data_path}")
        self.lib = lib
        self.library_path = Path(library_path)
        self.native_rate = int(rate)
        self.version = (lib.espeak_Info(None) or b"?").decode(errors="replace").split()[0]
        self._chunks: list[np.ndarray] = []
        # Kept on self: ctypes would otherwise free the trampoline while C still holds it.
        self._callback = _CALLBACK_TYPE(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count, _events) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = keep synthesising

    def speak(self, text: str, voice: str, rate_wpm: int, pitch: int) -> np.ndarray:
        """int16 samples at `native_rate`; the caller holds the lock."""
        if self.lib.espeak_SetVoiceByName(self.resolve(voice).encode()) != _EE_OK:
            raise ModelError(f"espeak-ng: unknown voice {voice!r} (see sensorium.experts.tts.voices())")
        self.lib.espeak_SetParameter(_ESPEAK_RATE, int(rate_wpm), 0)
        self.lib.espeak_SetParameter(_ESPEAK_PITCH, int(pitch), 0)
        self.lib.espeak_SetParameter(_ESPEAK_VOLUME, 100, 0)
        encoded = text.encode("utf-8") + b"\0"
        buffer = ctypes.create_string_buffer(encoded, len(encoded))
        self._chunks = []
        status = self.lib.espeak_Synth(buffer, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        if status != _EE_OK:
            raise ModelError(f"espeak-ng: synthesis failed with error code {status}")
        self.lib.espeak_Synchronize()
        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)

    def resolve(self, voice: str) -> str:
        """Language code ("en-gb", "fr-fr", optionally "+f3" variant) -> the voice file name.

        espeak_SetVoiceByName only matches voice file names ("gmw/en" for British English), so
        language codes are mapped through the voice list first; anything else passes unchanged.
        """
        base, plus, variant = voice.partition("+")
        identifier = self.languages().get(base.strip().lower())
        return (identifier + plus + variant) if identifier else voice

    def languages(self) -> dict[str, str]:
        """language code -> voice identifier, choosing the voice that ranks the language highest."""
        if getattr(self, "_languages", None) is None:
            table = self.lib.espeak_ListVoices(None)
            best: dict[str, tuple[int, int, str]] = {}  # lang -> (priority, list position, identifier)
            primary: set[str] = set()
            index = 0
            while table and table[index]:
                voice = table[index].contents
                if voice.identifier:
                    langs = _languages_of(voice.languages)
                    if langs:
                        primary.add(langs[0][1].lower())
                    for priority, lang in langs:
                        candidate = (priority, index, voice.identifier.decode())
                        best[lang.lower()] = min(best.get(lang.lower(), candidate), candidate)
                index += 1
            self._primary = sorted(primary)
            self._languages = {lang: entry[2] for lang, entry in best.items()}
        return self._languages

    def voice_names(self) -> list[str]:
        self.languages()
        return list(self._primary)


def _languages_of(address: int | None) -> list[tuple[int, str]]:
    """Decode espeak's packed language list: repeated (priority byte, C string), ended by a 0 byte.

    A lower priority number means the voice is a better match for that language.
    """
    found: list[tuple[int, str]] = []
    if not address:
        return found
    offset = 0
    while (priority := ctypes.c_ubyte.from_address(address + offset).value) != 0:
        name = ctypes.string_at(address + offset + 1)
        found.append((priority, name.decode(errors="replace")))
        offset += 1 + len(name) + 1
    return found


_lock = threading.Lock()
_engine: _Engine | None = None


def _get_engine() -> _Engine:
    """Initialise libespeak-ng on first use; the caller holds `_lock`."""
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


def synthesize(text: str, voice: str = "en-us", rate_wpm: int = 160, pitch: int = 50) -> AudioPayload:
    """Speak `text`; returns 16 kHz mono float32 in [-1, 1]."""
    if not isinstance(text, str) or not text.strip():
        raise ModelError("espeak-ng: nothing to say (empty text)")
    if not MIN_RATE_WPM <= int(rate_wpm) <= MAX_RATE_WPM:
        raise ModelError(f"espeak-ng: rate_wpm={rate_wpm} outside {MIN_RATE_WPM}..{MAX_RATE_WPM}")
    if not 0 <= int(pitch) <= 100:
        raise ModelError(f"espeak-ng: pitch={pitch} outside 0..100")
    with _lock:
        engine = _get_engine()
        pcm = engine.speak(text, voice, rate_wpm, pitch)
        native_rate = engine.native_rate
    if pcm.size == 0:
        raise ModelError(f"espeak-ng: voice {voice!r} produced no audio for {text[:40]!r}")
    samples = pcm.astype(np.float32) / 32768.0
    if native_rate != SAMPLE_RATE:
        import soxr

        samples = soxr.resample(samples, native_rate, SAMPLE_RATE, quality="HQ")
    samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
    return AudioPayload(path=TTS_PATH, samples=np.ascontiguousarray(samples), sample_rate=SAMPLE_RATE)


def save_wav(payload: AudioPayload, path):
    """Write 16-bit PCM WAV (the container every audio tool opens) to a path or a binary file object."""
    import soundfile

    target = path if hasattr(path, "write") else Path(path)
    soundfile.write(target if hasattr(target, "write") else str(target), payload.samples, payload.sample_rate,
                    subtype="PCM_16", format="WAV")
    return target


def voices() -> list[str]:
    """Language/voice names that `synthesize(voice=...)` accepts, e.g. "en-us", "en-gb", "fr-fr"."""
    with _lock:
        return _get_engine().voice_names()


def info() -> ModelInfo:
    with _lock:
        engine = _get_engine()
    library = engine.library_path.resolve()
    return ModelInfo(
        name="espeak-ng", task="speech synthesis", package="espeakng-loader",
        version=f"{package_version('espeakng-loader')} (libespeak-ng {engine.version})",
        file=str(library), sha256=sha256_of(library),
        licence="GPL-3.0-or-later",  # espeak-ng's own licence; the wheel declares none itself
        size_bytes=library.stat().st_size, dim=None,
    )
