"""The thumbnail cache stays within its byte budget and drops the least recently used first."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sensorium.serve.media import ThumbnailCache


def _photos(folder: Path, count: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = folder / f"photo_{index}.png"
        Image.fromarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)).save(path)  # noise: large JPEGs
        paths.append(path)
    return paths


def _total(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.glob("*.jpg"))


def test_cache_stays_within_budget_and_keeps_recent_thumbnails(tmp_path: Path):
    photos = _photos(tmp_path, 12)
    cache = ThumbnailCache(tmp_path / "thumbs", max_bytes=1)
    one = cache.get(photos[0], "image").stat().st_size
    cache.max_bytes = int(one * 4.5)  # room for about four

    made = {}
    for index, photo in enumerate(photos):
        made[index] = cache.get(photo, "image")
        os.utime(made[index], (time.time() - 1000 + index, time.time() - 1000 + index))  # a clear order of use
        assert _total(cache.directory) <= cache.max_bytes + one  # never more than one thumbnail over
    cache.prune()
    left = sorted(cache.directory.glob("*.jpg"))
    assert 1 <= len(left) <= 4
    assert _total(cache.directory) <= cache.max_bytes
    assert made[len(photos) - 1] in left, "the most recently used thumbnail must survive"
    assert made[0] not in left

    # a hit makes an old entry recent again, so the next prune keeps it
    survivor = made[len(photos) - 1]
    os.utime(survivor, (time.time() - 5000, time.time() - 5000))
    assert cache.get(photos[-1], "image") == survivor
    assert survivor.stat().st_mtime > time.time() - 60
    others = [p for p in left if p != survivor]
    cache.get(photos[0], "image")  # one more new thumbnail pushes the cache over: the oldest go
    cache.prune()
    assert survivor.exists()
    assert not all(p.exists() for p in others)


def test_prune_clears_old_temporary_files_but_not_fresh_ones(tmp_path: Path):
    cache = ThumbnailCache(tmp_path / "thumbs")
    cache.directory.mkdir()
    old, fresh = cache.directory / "a.tmp", cache.directory / "b.tmp"
    old.write_bytes(b"x" * 10)
    fresh.write_bytes(b"x" * 10)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert cache.prune() == 1
    assert not old.exists() and fresh.exists()


def test_edited_file_gets_a_new_thumbnail(tmp_path: Path):
    photo = _photos(tmp_path, 1)[0]
    cache = ThumbnailCache(tmp_path / "thumbs")
    first = cache.get(photo, "image")
    Image.new("RGB", (64, 64), "red").save(photo)
    os.utime(photo, (time.time() + 5, time.time() + 5))
    second = cache.get(photo, "image")
    assert second != first
    assert Image.open(second).getpixel((2, 2))[0] > 200


def _two_scene_video(path: Path, fps: int = 10, seconds_each: float = 3.0, clock_starts_at: float = 0.0) -> Path:
    """Red for the first `seconds_each`, then blue: which frame a thumbnail shows is plain to see.
    `clock_starts_at` > 0 stamps the first frame that late, as MPEG-TS and cut files do."""
    from fractions import Fraction

    import av

    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        stream.options = {"g": "5"}  # a keyframe every half second, so seeking has somewhere to land
        index = round(clock_starts_at * fps)
        for colour in ((220, 30, 30), (30, 30, 220)):
            pixels = np.zeros((120, 160, 3), np.uint8) + np.asarray(colour, np.uint8)
            for _ in range(int(fps * seconds_each)):
                frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
                frame.pts, frame.time_base, index = index, Fraction(1, fps), index + 1
                out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _mean_rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(axis=0)


def test_a_video_thumbnail_shows_the_frame_at_the_asked_time(tmp_path: Path):
    video = _two_scene_video(tmp_path / "two_scenes.mp4")
    cache = ThumbnailCache(tmp_path / "thumbs")
    opening = _mean_rgb(cache.get(video, "video"))
    assert opening[0] > opening[2] + 100  # no time: the opening scene (red)
    for seconds in (3.6, 4.5, 5.8, 99.0):  # the second scene, and past the end: its last frame
        red, _, blue = _mean_rgb(cache.get(video, "video", at=seconds))
        assert blue > red + 100, seconds
    red, _, blue = _mean_rgb(cache.get(video, "video", at=1.2))
    assert red > blue + 100
    assert len(list(cache.directory.glob("*.jpg"))) == 6  # one entry per time asked


def test_a_video_whose_clock_starts_late_is_timed_from_its_first_frame(tmp_path: Path):
    """Hit times come from the video reader, which counts from the first frame; the thumbnail at a
    hit's time must count the same way, not by the container's clock (here 5 s at the first frame)."""
    from sensorium.readers import read

    video = _two_scene_video(tmp_path / "late_clock.mp4", clock_starts_at=5.0)
    frames = read(video).frames
    blue_from = next(f.time for f in frames if f.pixels[..., 2].mean() > f.pixels[..., 0].mean())
    assert 2.5 <= blue_from <= 3.5, [f.time for f in frames]  # the reader's clock: the second scene at 3 s
    cache = ThumbnailCache(tmp_path / "thumbs")
    red, _, blue = _mean_rgb(cache.get(video, "video", at=1.5))
    assert red > blue + 100
    red, _, blue = _mean_rgb(cache.get(video, "video", at=4.5))
    assert blue > red + 100
