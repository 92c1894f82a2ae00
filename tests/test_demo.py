"""`sensorium demo`, the README's first command, as a new user runs it: a fresh process, an empty
Sensorium home (no joined or exported models yet) and no network; then the collection it leaves is
searched from the command line, and a second run rebuilds and re-indexes nothing."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

SENSORIUM = Path(sys.executable).with_name("sensorium")
# where unshare cannot make a network namespace, every socket connection is refused in-process
NO_SOCKETS = textwrap.dedent("""
    import socket

    def _refuse(*args, **kwargs):
        raise OSError("network refused by the demo test")

    socket.socket.connect = _refuse
    socket.socket.connect_ex = _refuse
    socket.create_connection = _refuse
""")


def _offline(tmp_path: Path) -> tuple[list[str], dict]:
    env = {**os.environ, "SENSORIUM_HOME": str(tmp_path / "home"), "COLUMNS": "200", "HF_HUB_OFFLINE": "1"}
    env.pop("PYTHONPATH", None)
    unshare = shutil.which("unshare")
    if unshare and subprocess.run([unshare, "-n", "true"], capture_output=True).returncode == 0:
        return [unshare, "-n"], env
    guard = tmp_path / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(NO_SOCKETS)
    env["PYTHONPATH"] = str(guard)
    return [], env


def _run(prefix: list[str], env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, str(SENSORIUM), *args], capture_output=True, text=True, env=env, timeout=900)


def test_demo_runs_offline_from_an_empty_home_and_leaves_a_searchable_collection(tmp_path):
    prefix, env = _offline(tmp_path)
    demo = tmp_path / "demo"
    first = _run(prefix, env, "demo", "--dir", str(demo))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "Traceback" not in first.stderr
    added = re.search(r"(\d+) added, 0 updated, 0 unchanged, 0 removed, 0 failed", first.stdout)
    assert added and int(added.group(1)) >= 17, first.stdout[:2000]
    assert "try it yourself" in first.stdout

    collection = demo / "collection"
    found = _run(prefix, env, "search", "a photo of my cat", "-c", str(collection), "--json", "-k", "3")
    assert found.returncode == 0, found.stderr
    assert Path(json.loads(found.stdout)[0]["path"]).name == "cat.jpg"

    # the spoken query the tour made finds the video at the rocket sentence (times from the sample manifest)
    stamp = json.loads((demo / "media" / ".sensorium-sample.json").read_text())
    rocket = stamp["files"]["video/cat_and_rocket.mp4"]["item"]["speech"][1]
    spoken = _run(prefix, env, "search", "-c", str(collection), "--audio", str(demo / "queries" / "spoken_query.wav"),
                  "--kind", "video", "--json")
    assert spoken.returncode == 0, spoken.stderr
    hit = json.loads(spoken.stdout)[0]
    assert hit["path"].endswith("cat_and_rocket.mp4")
    assert rocket["start"] - 0.5 <= hit["start"] < rocket["end"], (hit, rocket)

    again = _run(prefix, env, "demo", "--dir", str(demo))
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"0 added, 0 updated, {added.group(1)} unchanged, 0 removed, 0 failed" in again.stdout
