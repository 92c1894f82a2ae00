"""The built-in sample collection that `sensorium demo` indexes and tours.

Why generated: the demo must work on a fresh, offline machine, so every file is made here from
data that installed packages ship (scikit-image's bundled photos, the espeak-ng voice) or from
text in this module. Nothing is downloaded and nothing is read from outside the installed packages.

    manifest = build_sample_folder(Path("~/sensorium-demo").expanduser())
    manifest.by_kind("video")[0].speech   # when each sentence is spoken in the video

The build gives the same samples every time (the same manifest and text, pictures and sound equal
within codec tolerance; speech is rendered in a fresh process because libespeak-ng's pitch-flutter
phase carries over between calls; a video encoder's bytes may still differ between runs), and it is
idempotent: files whose recipe and content are unchanged are left alone, mtimes included, so
re-indexing the folder skips them.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ModelError, ReadError
from ..modality import AUDIO, IMAGE, TEXT, VIDEO

RECIPE_VERSION = 1
STAMP_NAME = ".sensorium-sample.json"  # hidden, and .json is not a modality: never indexed

PHOTO, VOICE_MEMO, VIDEO_CLIP, NOTE = "photo", "voice memo", "video", "note"
SPEECH_RATE = 16_000
VOICE = "en-us"
WORDS_PER_MINUTE = 150

VIDEO_SIZE = (320, 240)
VIDEO_FPS = 15
VIDEO_SECONDS = 9.0
EXIF_ORIENTATION_TAG = 0x0112
EXIF_DESCRIPTION_TAG = 0x010E


@dataclass(frozen=True)
class TimedSpan:
    """A stretch of the video in seconds, with what is seen (scene) or said (speech) in it."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class SampleFile:
    path: str  # relative to the sample folder, POSIX separators
    kind: str  # photo | voice memo | video | note
    modality: str
    description: str  # what a person would say is in it
    transcript: str | None = None  # the exact words spoken (voice memos)
    duration: float | None = None  # seconds (audio, video)
    scenes: tuple[TimedSpan, ...] = ()  # video: what is on screen, when
    speech: tuple[TimedSpan, ...] = ()  # video: what is said, when
    exif_orientation: int | None = None  # photos stored sideways with an EXIF tag


@dataclass
class SampleManifest:
    root: Path
    files: list[SampleFile]
    written: list[str] = field(default_factory=list)  # paths this build created or replaced

    def by_kind(self, kind: str) -> list[SampleFile]:
        return [f for f in self.files if f.kind == kind]

    def get(self, relative: str) -> SampleFile:
        for item in self.files:
            if item.path == relative:
                return item
        raise KeyError(relative)

    def path_of(self, item: SampleFile | str) -> Path:
        return self.root / (item.path if isinstance(item, SampleFile) else item)

    def as_dict(self) -> dict:
        return {"root": str(self.root), "files": [asdict(f) for f in self.files]}


# ---------------------------------------------------------------- the content

@dataclass(frozen=True)
class _PhotoRecipe:
    path: str
    source: str  # a skimage.data function name
    description: str
    exif_orientation: int | None = None


PHOTOS = (
    _PhotoRecipe("photos/cat.jpg", "chelsea",
                 "Close-up of a tabby cat's face with big green eyes and long white whiskers.",
                 exif_orientation=6),
    _PhotoRecipe("photos/astronaut.jpg", "astronaut",
                 "Portrait of astronaut Eileen Collins in an orange NASA flight suit, with the American flag "
                 "and a space shuttle model behind her."),
    _PhotoRecipe("photos/coffee.png", "coffee",
                 "A red cup of espresso on a red saucer with a spoon, on a wooden table, seen from above."),
    _PhotoRecipe("photos/rocket_on_launch_pad.webp", "rocket",
                 "A white rocket standing on its launch pad at dusk between tall lightning towers, "
                 "under a deep blue sky."),
    _PhotoRecipe("photos/motorcycle.jpg", "motorcycle",
                 "A red Yamaha motorcycle parked in a garage in front of shelves full of boxes."),
    _PhotoRecipe("photos/cameraman.png", "camera",
                 "Black-and-white photo of a man in a dark coat looking through a camera on a tripod, on a lawn."),
    _PhotoRecipe("photos/horse_silhouette.png", "horse",
                 "A black silhouette of a horse standing, on a white background."),
    _PhotoRecipe("photos/galaxies.jpg", "hubble_deep_field",
                 "Hubble Deep Field: hundreds of distant galaxies and stars on a black night sky."),
    _PhotoRecipe("photos/microscope_cells.jpg", "immunohistochemistry",
                 "Microscope image of stained tissue: brown-stained cell clusters among small blue nuclei (immunohistochemistry)."),
    _PhotoRecipe("photos/scanned_page.png", "page",
                 "A scanned book page about region-based segmentation of coins, with a line of Python code."),
)


@dataclass(frozen=True)
class _MemoRecipe:
    path: str
    transcript: str
    description: str
    voice: str = VOICE


VOICE_MEMOS = (
    _MemoRecipe("voice_memos/shopping_list.wav",
                "Remember to buy milk, eggs and coffee beans on the way home.",
                "Spoken shopping reminder: milk, eggs and coffee beans."),
    _MemoRecipe("voice_memos/meeting_moved.flac",
                "The team meeting moved to Thursday at ten.",
                "Spoken work note: the team meeting moved to Thursday at ten."),
    _MemoRecipe("voice_memos/cat_and_plant.ogg",
                "My cat knocked the plant off the window sill again.",
                "Spoken note about the cat knocking a plant off the window sill.", voice="en-gb"),
)

VIDEO_PATH = "video/cat_and_rocket.mp4"
# (start, end, what is on screen, source photo, crop at start, crop at end) - crops are fractions
# (left, top, right, bottom) of the source photo: a slow zoom in on the cat, a slow pan up the rocket.
VIDEO_SCENES = (
    (0.0, 4.5, "Close-up of a tabby cat with green eyes, slowly zooming in on its face.", "chelsea",
     (0.0, 0.0, 1.0, 1.0), (0.15, 0.0, 0.90, 0.85)),
    (4.5, 9.0, "A rocket on its launch pad at dusk between lightning towers, the view panning up.", "rocket",
     (0.05, 0.25, 0.75, 1.0), (0.25, 0.0, 0.95, 0.75)),
)
# (start, sentence): each sentence is said while its scene is on screen.
VIDEO_SENTENCES = (
    (0.6, "Here is my cat, looking right at the camera."),
    (5.1, "And this is the rocket launch we watched."),
)

NOTES = {
    "notes/pancake_recipe.md": (
        "Recipe: fluffy pancakes with flour, milk, eggs and butter.",
        "# Fluffy pancakes\n\n"
        "Serves 4. Ready in 25 minutes.\n\n"
        "## Ingredients\n\n"
        "- 200 g plain flour\n- 2 teaspoons baking powder\n- 1 tablespoon sugar\n- a pinch of salt\n"
        "- 300 ml milk\n- 2 eggs\n- 30 g melted butter, plus more for the pan\n\n"
        "## Method\n\n"
        "1. Whisk the flour, baking powder, sugar and salt in a large bowl.\n"
        "2. Beat the milk, eggs and melted butter together, pour into the flour and whisk until just smooth.\n"
        "3. Let the batter rest for ten minutes.\n"
        "4. Heat a frying pan over medium heat, brush with butter and pour in a small ladle of batter.\n"
        "5. Flip when bubbles appear on the surface; cook one more minute until golden.\n\n"
        "Serve warm with maple syrup, lemon and sugar, or fresh berries.\n",
    ),
    "notes/lisbon_trip.txt": (
        "Travel diary: a weekend trip to Lisbon, trams, custard tarts and the sea.",
        "Lisbon weekend - travel diary\n\n"
        "Friday: landed in Lisbon at noon, took the metro to Baixa and checked into the hotel. "
        "Walked up to the Alfama district and watched the sunset over the river Tagus from a viewpoint.\n\n"
        "Saturday: rode the yellow tram 28 through the narrow streets, visited the castle of Sao Jorge, "
        "then took the train to Belem to see the tower and the monastery. Ate warm custard tarts "
        "(pasteis de nata) with cinnamon. Dinner was grilled sardines and a glass of green wine.\n\n"
        "Sunday: day trip to the beach at Cascais, swam in the cold Atlantic, flew home in the evening.\n",
    ),
    "notes/cat_care.md": (
        "Cat care notes: feeding schedule, litter box, vet vaccination and keeping plants out of reach.",
        "# Looking after Chelsea the cat\n\n"
        "- Feeding: wet food at 7 am and 6 pm, a small handful of dry food at lunch. Fresh water every day.\n"
        "- Litter box: scoop daily, change the litter completely every Sunday.\n"
        "- Vet: yearly vaccination booster is due in March; worming tablet every three months.\n"
        "- Grooming: brush her twice a week, she sheds a lot in spring.\n"
        "- Plants: she keeps knocking the plant off the window sill, so move the pots to the high shelf. "
        "Lilies are poisonous to cats - never bring them into the flat.\n",
    ),
    "notes/bike_repair.txt": (
        "How to fix a flat bicycle tyre: remove the wheel, patch the inner tube, pump it up.",
        "Fixing a flat bicycle tyre\n\n"
        "You need tyre levers, a patch kit and a pump.\n"
        "1. Shift to the smallest gear, open the brake and take the wheel out.\n"
        "2. Use two tyre levers to lift one side of the tyre off the rim and pull out the inner tube.\n"
        "3. Pump a little air into the tube and listen or feel for the hole; mark it.\n"
        "4. Roughen the area with sandpaper, apply glue, wait a minute, then press the patch on firmly.\n"
        "5. Check the inside of the tyre for glass or thorns before refitting the tube.\n"
        "6. Refit the tyre, pump it to the pressure printed on the sidewall and put the wheel back.\n",
    ),
}


# ---------------------------------------------------------------- building

def build_sample_folder(dest: Path) -> SampleManifest:
    """Create (or bring up to date) the demo collection in `dest` and describe what is in it."""
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    stamp = _load_stamp(dest)
    files, written, stamped = [], [], {}
    for entry in _plan(_SpeechCache()):
        target = dest / entry.path
        recipe = _recipe_hash(entry.recipe)
        recorded = stamp.get(entry.path, {})
        current = _sha256_file(target)
        if (current is not None and recorded.get("recipe") == recipe and recorded.get("sha256") == current
                and "item" in recorded):
            item = _sample_file_from_dict(recorded["item"])
        else:
            item = entry.describe()
            data = entry.render()
            if _write_if_changed(target, data):
                written.append(entry.path)
            current = hashlib.sha256(data).hexdigest()
        stamped[entry.path] = {"recipe": recipe, "sha256": current, "item": asdict(item)}
        files.append(item)
    if json.loads(json.dumps(stamped)) != stamp:  # compare as stored (tuples become lists)
        _save_stamp(dest, stamped)
    return SampleManifest(root=dest, files=files, written=written)


@dataclass(frozen=True)
class _Entry:
    path: str
    recipe: dict  # everything the bytes depend on; a change means the file is rebuilt
    describe: Callable[[], SampleFile]
    render: Callable[[], bytes]


def _plan(speech: "_SpeechCache") -> list[_Entry]:
    """Every sample file with its recipe; describing and rendering run only when needed."""
    plan: list[_Entry] = []
    for photo in PHOTOS:
        item = SampleFile(photo.path, PHOTO, IMAGE, photo.description, exif_orientation=photo.exif_orientation)
        plan.append(_Entry(photo.path, asdict(photo), lambda i=item: i, lambda p=photo: _render_photo(p)))
    for memo in VOICE_MEMOS:
        plan.append(_Entry(
            memo.path, {**asdict(memo), "wpm": WORDS_PER_MINUTE},
            lambda m=memo: SampleFile(
                m.path, VOICE_MEMO, AUDIO, m.description, transcript=m.transcript,
                duration=round(speech.duration(m.transcript, m.voice), 3)),
            lambda m=memo: _render_memo(m, speech),
        ))
    video_recipe = {"scenes": VIDEO_SCENES, "sentences": VIDEO_SENTENCES, "voice": VOICE, "wpm": WORDS_PER_MINUTE,
                    "size": VIDEO_SIZE, "fps": VIDEO_FPS, "seconds": VIDEO_SECONDS}
    plan.append(_Entry(VIDEO_PATH, video_recipe, lambda: _describe_video(speech), lambda: _render_video(speech)))
    for path, (description, text) in NOTES.items():
        item = SampleFile(path, NOTE, TEXT, description)
        plan.append(_Entry(path, {"text": text}, lambda i=item: i, lambda t=text: t.encode("utf-8")))
    return plan


def _describe_video(speech: "_SpeechCache") -> SampleFile:
    scenes = tuple(TimedSpan(start, end, text) for start, end, text, *_ in VIDEO_SCENES)
    spoken = tuple(
        TimedSpan(start, round(start + speech.duration(sentence, VOICE), 3), sentence)
        for start, sentence in VIDEO_SENTENCES
    )
    description = ("Home video: first a close-up of a tabby cat, then a rocket on its launch pad, with a "
                   "voice describing each scene.")
    return SampleFile(VIDEO_PATH, VIDEO_CLIP, VIDEO, description, duration=VIDEO_SECONDS,
                      scenes=scenes, speech=spoken)


def _sample_file_from_dict(data: dict) -> SampleFile:
    spans = {key: tuple(TimedSpan(**span) for span in data.get(key, ())) for key in ("scenes", "speech")}
    return SampleFile(**{**data, **spans})


# ---------------------------------------------------------------- photos

def _source_pixels(name: str) -> np.ndarray:
    """An RGB uint8 photo from the files scikit-image ships inside its wheel (no pooch download)."""
    import skimage.data

    if name == "motorcycle":
        pixels = skimage.data.stereo_motorcycle()[0]
    else:
        pixels = getattr(skimage.data, name)()
    if pixels.dtype == bool:  # the horse: a binary mask -> black silhouette on white
        pixels = np.where(pixels, 255, 0).astype(np.uint8)
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return np.ascontiguousarray(pixels[..., :3].astype(np.uint8))


def _render_photo(photo: _PhotoRecipe) -> bytes:
    from PIL import Image

    pixels = _source_pixels(photo.source)
    suffix = Path(photo.path).suffix.lower()
    buffer = io.BytesIO()
    if photo.exif_orientation == 6:
        # Stored as a phone would: sensor rows sideways (90 deg counter-clockwise), with the EXIF
        # tag telling viewers to turn it 90 deg clockwise back upright.
        image = Image.fromarray(np.ascontiguousarray(np.rot90(pixels, k=1)))
        exif = Image.Exif()
        exif[EXIF_ORIENTATION_TAG] = 6
        exif[EXIF_DESCRIPTION_TAG] = "Sensorium sample: cat photo stored sideways"
        image.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    elif photo.exif_orientation is not None:
        raise ValueError(f"unsupported sample orientation {photo.exif_orientation}")
    else:
        image = Image.fromarray(pixels)
        if suffix == ".jpg":
            image.save(buffer, format="JPEG", quality=90)
        elif suffix == ".png":
            image.save(buffer, format="PNG", optimize=False)
        elif suffix == ".webp":
            image.save(buffer, format="WEBP", quality=85, method=4)
        else:
            raise ValueError(f"no encoder for {photo.path}")
    return buffer.getvalue()


# ---------------------------------------------------------------- speech

class _SpeechCache:
    """Renders every sentence the samples need, once per build, in a fresh process.

    A fresh process starts libespeak-ng from the same internal state, so the same sentences in the
    same order give the same samples on every build.
    """

    def __init__(self):
        self._samples: dict[tuple[str, str], np.ndarray] | None = None

    @staticmethod
    def requests() -> list[tuple[str, str]]:
        wanted = [(m.transcript, m.voice) for m in VOICE_MEMOS]
        wanted += [(sentence, VOICE) for _, sentence in VIDEO_SENTENCES]
        return wanted

    def samples(self, text: str, voice: str) -> np.ndarray:
        if self._samples is None:
            self._samples = dict(zip(self.requests(), _speak_in_fresh_process(self.requests())))
        return self._samples[(text, voice)]

    def duration(self, text: str, voice: str) -> float:
        return len(self.samples(text, voice)) / SPEECH_RATE


_SPEAKER_SCRIPT = """
import json, sys
import numpy as np
from sensorium.experts.tts import synthesize
requests, wpm, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
np.savez(out, *[synthesize(text, voice=voice, rate_wpm=wpm).samples for text, voice in requests])
"""


def _speak_in_fresh_process(requests: list[tuple[str, str]]) -> list[np.ndarray]:
    package_parent = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    with tempfile.TemporaryDirectory(prefix="sensorium-tts-") as scratch:
        out = Path(scratch) / "speech.npz"
        done = subprocess.run(
            [sys.executable, "-c", _SPEAKER_SCRIPT, json.dumps(requests), str(WORDS_PER_MINUTE), str(out)],
            env=env, capture_output=True, text=True, timeout=120,
        )
        if done.returncode != 0 or not out.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ModelError(f"espeak-ng: speech for the sample folder failed ({tail[0]})")
        with np.load(out) as archive:
            return [archive[f"arr_{i}"].astype(np.float32) for i in range(len(requests))]


def _render_memo(memo: _MemoRecipe, speech: _SpeechCache) -> bytes:
    samples = speech.samples(memo.transcript, memo.voice)
    suffix = Path(memo.path).suffix.lower()
    if suffix == ".ogg":
        return _encode_ogg_opus(samples)
    import soundfile

    container, subtype = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16")}[suffix]
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SPEECH_RATE, format=container, subtype=subtype)
    return buffer.getvalue()


def _encode_ogg_opus(samples: np.ndarray) -> bytes:
    """Ogg Opus through PyAV: libsndfile's Ogg writer picks a random stream serial number, which
    would make the file differ on every build; FFmpeg's bit-exact mode does not."""
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="ogg", options={"fflags": "+bitexact"}) as container:
        stream = container.add_stream("libopus", rate=SPEECH_RATE, layout="mono")
        stream.codec_context.bit_rate = 32_000
        step = SPEECH_RATE // 50  # 20 ms, Opus's frame
        for offset in range(0, len(samples), step):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[np.newaxis, offset:offset + step]), format="flt", layout="mono")
            frame.sample_rate, frame.pts = SPEECH_RATE, offset
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


# ---------------------------------------------------------------- video

def _video_codec() -> str:
    import av

    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - PyAV raises several types for a missing encoder
            continue
    raise ModelError("PyAV has neither an H.264 (libx264) nor an MPEG-4 encoder")


def _scene_frame(photo, t: float, start_box, end_box) -> np.ndarray:
    """One frame of a slow zoom/pan: the crop moves from start_box to end_box as t goes 0 -> 1."""
    from PIL import Image

    width, height = photo.size
    ease = t * t * (3 - 2 * t)  # smoothstep: starts and ends gently
    box = [a + (b - a) * ease for a, b in zip(start_box, end_box)]
    left, top, right, bottom = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    # trim the crop to the frame's 4:3 around its centre so nothing is stretched
    aspect = VIDEO_SIZE[0] / VIDEO_SIZE[1]
    crop_w, crop_h = right - left, bottom - top
    if crop_w / crop_h > aspect:
        centre, crop_w = (left + right) / 2, crop_h * aspect
        left, right = centre - crop_w / 2, centre + crop_w / 2
    else:
        centre, crop_h = (top + bottom) / 2, crop_w / aspect
        top, bottom = centre - crop_h / 2, centre + crop_h / 2
    box = (max(0.0, left), max(0.0, top), min(float(width), right), min(float(height), bottom))
    return np.asarray(photo.resize(VIDEO_SIZE, Image.Resampling.BILINEAR, box=box))


def _soundtrack(speech: _SpeechCache) -> np.ndarray:
    track = np.zeros(int(VIDEO_SECONDS * SPEECH_RATE), dtype=np.float32)
    for start, sentence in VIDEO_SENTENCES:
        samples = speech.samples(sentence, VOICE)
        begin = int(round(start * SPEECH_RATE))
        end = min(len(track), begin + len(samples))
        track[begin:end] += samples[: end - begin]
    return np.clip(track, -1.0, 1.0)


def _render_video(speech: _SpeechCache) -> bytes:
    import av
    from PIL import Image

    buffer = io.BytesIO()
    codec = _video_codec()
    with av.open(buffer, mode="w", format="mp4", options={"fflags": "+bitexact"}) as container:
        video = container.add_stream(codec, rate=VIDEO_FPS)
        video.width, video.height = VIDEO_SIZE
        video.pix_fmt = "yuv420p"
        video.codec_context.gop_size = VIDEO_FPS
        video.codec_context.thread_count = 1  # x264's output depends on its thread count
        if codec == "libx264":
            video.codec_context.options = {"crf": "23", "preset": "veryfast", "threads": "1"}
        else:
            video.codec_context.bit_rate = 800_000
        audio = container.add_stream("aac", rate=SPEECH_RATE, layout="mono")
        audio.codec_context.bit_rate = 48_000

        photos = {name: Image.fromarray(_source_pixels(name)) for *_, name, _, _ in VIDEO_SCENES}
        for index in range(int(VIDEO_SECONDS * VIDEO_FPS)):
            seconds = index / VIDEO_FPS
            start, end, _, name, start_box, end_box = next(s for s in VIDEO_SCENES if s[0] <= seconds < s[1])
            pixels = _scene_frame(photos[name], (seconds - start) / (end - start), start_box, end_box)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts = index
            container.mux(video.encode(frame))
        container.mux(video.encode(None))

        track = _soundtrack(speech)
        step = 1024  # the AAC frame size
        for offset in range(0, len(track), step):
            chunk = track[offset:offset + step]
            frame = av.AudioFrame.from_ndarray(chunk[np.newaxis, :], format="fltp", layout="mono")
            frame.sample_rate, frame.pts = SPEECH_RATE, offset
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    return buffer.getvalue()


# ---------------------------------------------------------------- idempotency

def _recipe_hash(recipe: dict) -> str:
    text = json.dumps({"version": RECIPE_VERSION, "recipe": recipe}, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def _sha256_file(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ReadError(path, f"cannot read existing sample file ({exc.strerror or exc})") from exc


def _write_if_changed(path: Path, data: bytes) -> bool:
    """Write atomically unless the file already holds exactly these bytes (its mtime then stays)."""
    if _sha256_file(path) == hashlib.sha256(data).hexdigest():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return True


def _load_stamp(dest: Path) -> dict:
    try:
        stamp = json.loads((dest / STAMP_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return stamp.get("files", {}) if stamp.get("version") == RECIPE_VERSION else {}


def _save_stamp(dest: Path, files: dict) -> None:
    text = json.dumps({"version": RECIPE_VERSION, "files": files}, indent=1, sort_keys=True)
    partial = dest / f"{STAMP_NAME}.partial"
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, dest / STAMP_NAME)
