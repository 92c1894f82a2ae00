"""One episode, filmed: what the agent did in a level, as an animated GIF or an MP4 to watch.

    sensorium agent run runs/agent --level GoToLocal --seed 7 --render episode.gif

Each frame is the whole level as minigrid draws it (the agent's 7x7 view lit up) under a banner
with the mission, the step and the action just taken; the last frame says whether the mission was
done and stays on screen a while. GIFs are written by Pillow, MP4s (H.264) by PyAV: both ship with
Sensorium, nothing is downloaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .levels import AgentError
from .policy import InstructionPolicy
from .rollout import PLAIN, Conditions, Outcome, run_episodes

ACTION_NAMES = ("turn left", "turn right", "forward", "pick up", "drop", "toggle", "done")
FORMATS = (".gif", ".mp4")
BANNER, FONT_SIZE, MARGIN = 56, 15, 8
INK, PAPER, DONE_INK, FAILED_INK = (240, 240, 240), (30, 30, 30), (120, 230, 120), (240, 120, 110)


@dataclass
class Recording:
    """The frames of one episode (the level after reset, then after each action) and what happened."""
    level: str
    outcome: Outcome
    frames: list[np.ndarray] = field(default_factory=list)
    actions: list[int] = field(default_factory=list)


def record_episode(policy: InstructionPolicy, level: str, seed: int, conditions: Conditions = PLAIN) -> Recording:
    """Run the policy on `level` from `seed`, keeping a rendered frame per step."""
    frames: list[np.ndarray] = []
    actions: list[int] = []

    def watch(_index: int, env, action: int | None) -> None:
        frames.append(env.render())
        if action is not None:
            actions.append(action)

    (outcome,) = run_episodes(policy, level, [seed], parallel=1, conditions=conditions, watch=watch)
    return Recording(level, outcome, frames, actions)


def _wrap(text: str, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        trial = f"{line} {word}".strip()
        if line and font.getlength(trial) > width:
            lines.append(line)
            line = word
        else:
            line = trial
    return lines + [line]


def captioned_frames(recording: Recording) -> list[Image.Image]:
    """Each frame under a banner: the mission, then "step i/n: action" (or the verdict, at the end)."""
    font = ImageFont.load_default(size=FONT_SIZE)
    outcome, last = recording.outcome, len(recording.frames) - 1
    images = []
    for i, frame in enumerate(recording.frames):
        height, width = frame.shape[:2]
        canvas = Image.new("RGB", (width, height + BANNER), PAPER)
        canvas.paste(Image.fromarray(frame), (0, BANNER))
        draw = ImageDraw.Draw(canvas)
        mission = _wrap(outcome.mission, font, width - 2 * MARGIN)
        draw.text((MARGIN, 4), "\n".join(mission[:2]), font=font, fill=INK, spacing=2)
        if i == last and i > 0:
            status = (f"done in {outcome.steps} steps" if outcome.success else f"failed after {outcome.steps} steps")
            colour = DONE_INK if outcome.success else FAILED_INK
        else:
            action = f": {ACTION_NAMES[recording.actions[i - 1]]}" if i else ""
            status, colour = f"step {i}/{outcome.steps}{action}", INK
        draw.text((MARGIN, BANNER - FONT_SIZE - 6), status, font=font, fill=colour)
        images.append(canvas)
    return images


def animation_format(path: str | Path) -> str:
    """The suffix `path` will be written as; AgentError for one we cannot write (checked before acting)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise AgentError(f"{path}: cannot write {suffix or 'a file without a suffix'}; use one of {', '.join(FORMATS)}")
    return suffix


def write_animation(recording: Recording, path: str | Path, fps: float = 4.0, hold_seconds: float = 2.0) -> Path:
    """The episode as `path` (.gif or .mp4); the last frame is held `hold_seconds`."""
    path, suffix = Path(path), animation_format(path)
    if fps <= 0:
        raise AgentError(f"frames per second: above 0, got {fps}")
    if not recording.frames:
        raise AgentError(f"{path}: the episode has no frames to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    images = captioned_frames(recording)
    if suffix == ".gif":  # a GIF holds the last frame by its duration, a video by repeating it
        durations = [round(1000 / fps)] * (len(images) - 1) + [round(1000 * hold_seconds)]
        images[0].save(path, save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=True)
    else:
        _write_mp4(images + [images[-1]] * (max(1, round(hold_seconds * fps)) - 1), path, fps)
    return path


def _write_mp4(images: list[Image.Image], path: Path, fps: float) -> None:
    import fractions

    import av

    width, height = (images[0].width + 1) // 2 * 2, (images[0].height + 1) // 2 * 2  # H.264 wants even sides
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fractions.Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in images:
            even = Image.new("RGB", (width, height), PAPER)
            even.paste(image)
            for packet in stream.encode(av.VideoFrame.from_image(even)):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
