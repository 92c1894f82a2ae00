"""Generate small corpora of valid and malformed media files for reader (and pipeline) tests.

Everything is synthesised at test time (scikit-image sample photos, synthetic tones, PyAV-encoded
clips), so the repository holds no binary fixtures. Other test modules import these helpers:

    bad = make_bad_corpus(tmp_path)    # {file name: substring the ReadError reason must contain}
    good = make_good_corpus(tmp_path)  # {file name: what the file is}
"""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

AUDIO_RATE = 44_100
CLIP_SECONDS = 3.0
CLIP_FPS = 25
CLIP_SIZE = (320, 240)  # width, height
TONE_HZ = 440.0


# ---------------------------------------------------------------------------------------- sources

def photo(name: str) -> np.ndarray:
    """A real photograph shipped inside scikit-image (astronaut, coffee, chelsea), RGB uint8."""
    from skimage import data

    return np.ascontiguousarray(getattr(data, name)())


def tone(seconds: float = 1.0, rate: int = AUDIO_RATE, channels: int = 1, hz: float = TONE_HZ) -> np.ndarray:
    """A sine with a smooth attack/decay envelope, float32, shape (n,) or (n, channels)."""
    t = np.arange(int(seconds * rate)) / rate
    envelope = np.sin(np.pi * t / seconds) ** 0.5
    wave = (0.5 * envelope * np.sin(2 * np.pi * hz * t)).astype(np.float32)
    if channels == 1:
        return wave
    return np.stack([wave * (0.6 + 0.4 * c / max(1, channels - 1)) for c in range(channels)], axis=1)


def moving_square(index: int, size: tuple[int, int] = CLIP_SIZE) -> np.ndarray:
    """Frame `index` of a clip: a white square sliding right over a colour gradient."""
    width, height = size
    x = np.linspace(0, 255, width, dtype=np.float32)
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = x[None, :]
    img[..., 1] = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    img[..., 2] = 128
    side = height // 4
    left = (index * 4) % (width - side)
    img[height // 2 - side // 2: height // 2 + side // 2, left: left + side] = 255
    return img


# ---------------------------------------------------------------------------------------- writers

def write_clip(
    path: Path,
    video_codec: str | None = "libx264",
    audio_codec: str | None = "aac",
    seconds: float = CLIP_SECONDS,
    fps: int = CLIP_FPS,
    audio_rate: int = AUDIO_RATE,
    size: tuple[int, int] = CLIP_SIZE,
    silent: bool = False,
) -> Path:
    """Encode a clip with PyAV: moving frames and/or a tone (all zeros when `silent`)."""
    import av

    with av.open(str(path), mode="w") as out:
        video = out.add_stream(video_codec, rate=fps) if video_codec else None
        if video is not None:
            video.width, video.height = size
            video.pix_fmt = "yuv420p"
        audio = out.add_stream(audio_codec, rate=audio_rate, layout="mono") if audio_codec else None
        if video is not None:
            for i in range(int(seconds * fps)):
                frame = av.VideoFrame.from_ndarray(moving_square(i, size), format="rgb24")
                out.mux(video.encode(frame))
            out.mux(video.encode(None))
        if audio is not None:
            samples = tone(seconds, audio_rate)
            if silent:
                samples[:] = 0
            step = audio.codec_context.frame_size or 1024
            fmt = audio.codec_context.format.name
            for start in range(0, len(samples), step):
                chunk = samples[start: start + step]
                array = chunk[None, :]  # mono: one plane (planar) or one interleaved row (packed)
                if fmt.startswith("s16"):
                    array = (array * 32767).astype(np.int16)
                elif fmt.startswith("s32"):
                    array = (array * 2**31 - 1).astype(np.int32)
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array), format=fmt, layout="mono")
                frame.sample_rate = audio_rate
                frame.pts = start
                out.mux(audio.encode(frame))
            out.mux(audio.encode(None))
    return path


def write_bomb_png(path: Path, width: int = 30_000, height: int = 30_000) -> Path:
    """A valid 1-bit PNG declaring width x height pixels, all black: a few hundred KB on disk."""
    row = b"\x00" + b"\x00" * ((width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def jpeg_bytes(pixels: np.ndarray, **save_opts) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90, **save_opts)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------- corpora

def make_good_corpus(directory: Path) -> dict[str, str]:
    """Write small valid files of every supported kind; {file name: what it is}."""
    import soundfile as sf

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    made: dict[str, str] = {}

    def put(name: str, what: str) -> Path:
        made[name] = what
        return directory / name

    astronaut, coffee, chelsea = photo("astronaut"), photo("coffee"), photo("chelsea")
    put("astronaut.jpg", "RGB JPEG 512x512").write_bytes(jpeg_bytes(astronaut))
    Image.fromarray(coffee).save(put("coffee.png", "RGB PNG 600x400"))
    Image.fromarray(chelsea).save(put("chelsea.webp", "lossy WebP 451x300"), quality=80)
    Image.fromarray(chelsea).save(put("chelsea.bmp", "BMP 451x300"))
    Image.fromarray(coffee).save(put("coffee.tiff", "TIFF 600x400"))
    frames = [Image.fromarray(chelsea).quantize(64), Image.fromarray(chelsea[::-1]).quantize(64)]
    frames[0].save(put("chelsea.gif", "2-frame palette GIF 451x300"), save_all=True, append_images=frames[1:])
    rgba = np.dstack([coffee, np.full(coffee.shape[:2], 255, np.uint8)])
    rgba[:100, :100, 3] = 0  # transparent corner, must come out white
    Image.fromarray(rgba, "RGBA").save(put("coffee_rgba.png", "RGBA PNG with transparent top-left corner"))
    gray16 = (np.linspace(0, 65535, 300 * 200).reshape(200, 300)).astype(np.uint16)
    Image.fromarray(gray16).save(put("gray16.png", "16-bit grayscale PNG 300x200, left-to-right ramp"))
    Image.fromarray(astronaut).convert("CMYK").save(put("astronaut_cmyk.jpg", "CMYK JPEG 512x512"), quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    put("chelsea_exif6.jpg", "JPEG stored 451x300 with EXIF Orientation=6 (shows 300x451)").write_bytes(
        jpeg_bytes(chelsea, exif=exif.tobytes()))
    put("jpeg_named.png", "JPEG content behind a .png extension (reads by content)").write_bytes(
        jpeg_bytes(coffee))

    prose = "Café au lait, naïve façade, Øresund, señor, déjà vu.\nSecond line: ½ price, © 2024.\n"
    put("latin1.txt", "latin-1 text").write_bytes((prose * 3).encode("latin-1"))
    put("utf16.md", "UTF-16 markdown with BOM").write_bytes(("# Título\n\n" + prose).encode("utf-16"))
    put("utf8_bom.txt", "UTF-8 with BOM").write_bytes(("\ufeff" + prose).encode("utf-8"))
    put("cp1252.rst", "cp1252 text with curly quotes").write_bytes(
        ("\u201cQuoted\u201d words \u2014 and \u20ac5 prices \u2026\n" * 4 + prose).encode("cp1252"))

    sf.write(put("tone_stereo.wav", "1 s stereo 44.1 kHz PCM16 tone"), tone(1.0, channels=2), AUDIO_RATE, subtype="PCM_16")
    sf.write(put("tone.flac", "1 s mono 44.1 kHz FLAC tone"), tone(1.0), AUDIO_RATE)
    sf.write(put("tone.ogg", "1 s mono 44.1 kHz Ogg Vorbis tone"), tone(1.0), AUDIO_RATE, format="OGG", subtype="VORBIS")
    sf.write(put("tone.opus", "1 s mono 48 kHz Ogg Opus tone"), tone(1.0, 48_000), 48_000, format="OGG", subtype="OPUS")
    sf.write(put("tone.mp3", "1 s mono 44.1 kHz MP3 tone"), tone(1.0), AUDIO_RATE, format="MP3", subtype="MPEG_LAYER_III")
    sf.write(put("tone.aiff", "1 s mono 44.1 kHz AIFF tone (Apple's PCM)"), tone(1.0), AUDIO_RATE, format="AIFF", subtype="PCM_16")
    write_clip(put("tone.m4a", "1 s mono AAC in MP4 (PyAV only)"), video_codec=None, audio_codec="aac", seconds=1.0)

    write_clip(put("clip.mp4", "3 s 25 fps 320x240 H.264 + AAC tone"), "libx264", "aac")
    write_clip(put("clip.webm", "3 s VP8 + Opus tone"), "libvpx", "libopus", audio_rate=48_000)
    write_clip(put("clip.avi", "3 s MPEG-4 part 2 + MP3 tone"), "mpeg4", "libmp3lame")
    write_clip(put("clip_mute.mkv", "3 s H.264 in Matroska, no audio track"), "libx264", None)
    write_clip(put("clip_silent.mov", "3 s H.264 + all-zero AAC track (audio -> None)"), "libx264", "aac", silent=True)
    return made


def make_bad_corpus(directory: Path) -> dict[str, str]:
    """Write malformed files of every kind; {file name: substring the ReadError reason must contain}."""
    import soundfile as sf

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    made: dict[str, str] = {}

    def put(name: str, reason: str) -> Path:
        made[name] = reason
        return directory / name

    for name in ("empty.txt", "empty.jpg", "empty.png", "empty.wav", "empty.flac", "empty.mp4", "empty.webm"):
        put(name, "zero-byte file").write_bytes(b"")
    put("blank.md", "empty text").write_text("  \n\t\n   \r\n")
    put("binary.txt", "undecodable text").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes() + b"\x00" * 64)
    put("jpeg_named.txt", "content looks like image").write_bytes(jpeg_bytes(photo("coffee")))

    astronaut = jpeg_bytes(photo("astronaut"))
    put("truncated.jpg", "truncated").write_bytes(astronaut[: len(astronaut) // 2])
    png = io.BytesIO()
    Image.fromarray(photo("coffee")).save(png, format="PNG")
    put("truncated.png", "truncated").write_bytes(png.getvalue()[: len(png.getvalue()) // 2])
    put("text_named.jpg", "not an image (content looks like text)").write_text("This is a note, not a photo.\n" * 20)
    put("garbage.png", "not a recognised image format").write_bytes(rng.integers(0, 256, 2048, dtype=np.uint8).tobytes())
    write_bomb_png(put("bomb.png", "decompression bomb"))

    sf.write(put("silent.wav", "audio is silent"), np.zeros(16_000, np.float32), 16_000, subtype="PCM_16")
    sf.write(put("no_samples.wav", "no audio samples"), np.zeros(0, np.float32), 16_000, subtype="PCM_16")
    flac = io.BytesIO()
    sf.write(flac, tone(2.0), AUDIO_RATE, format="FLAC")
    put("truncated.flac", "truncated").write_bytes(flac.getvalue()[: len(flac.getvalue()) // 3])
    put("garbage.wav", "not decodable audio").write_bytes(
        b"RIFF" + rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    put("text_named.mp3", "not audio (content looks like text)").write_text("la la la\n" * 50)

    put("corrupt.mp4", "video").write_bytes(
        b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2" + rng.integers(0, 256, 8192, dtype=np.uint8).tobytes())
    clip = write_clip(directory / "_whole.mp4", "libx264", "aac")
    data = clip.read_bytes()
    clip.unlink()
    put("truncated.mp4", "not a valid video container").write_bytes(data[: len(data) // 2])
    write_clip(put("audio_only.mp4", "no video stream"), video_codec=None, audio_codec="aac", seconds=1.0)
    put("text_named.mkv", "not a video (content looks like text)").write_text("subtitles, maybe\n" * 30)
    return made
