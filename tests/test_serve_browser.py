"""The web page in headless Chromium: search by text, see thumbnails, search by a dropped photo,
open a recording and play it from the matched time, draw pictures from words. A screenshot goes to artifacts/."""
from __future__ import annotations

import base64
import shutil
from pathlib import Path

import pytest

from helpers.serve import REPO, start_server, stop_server

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright for Python is not installed")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny collection (a photo, a voice memo, a note) indexed with the library, then served."""
    from sensorium import Collection
    from sensorium.demo.sample_data import build_sample_folder

    sample = tmp_path_factory.mktemp("sample")
    manifest = build_sample_folder(sample)
    root = tmp_path_factory.mktemp("root")
    for relative in ["photos/cat.jpg", "photos/coffee.png",
                     "voice_memos/shopping_list.wav", "notes/cat_care.md",
                     "video/cat_and_rocket.mp4"]:
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(sample / relative, root / relative)
    directory = tmp_path_factory.mktemp("collection")
    with Collection(directory) as collection:
        assert collection.index(root).ok
    process, base = start_server(directory, [root], tmp_path_factory.mktemp("log") / "server.log")
    (video,) = manifest.by_kind("video")
    yield base, root, video.speech[1]  # the rocket sentence and when it is said
    stop_server(process)


def drop(page, path: Path, mime: str) -> None:
    """Drag a file over the page and drop it, as a person would from their file manager."""
    payload = base64.b64encode(path.read_bytes()).decode()
    transfer = page.evaluate_handle(
        "([data, name, type]) => { const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));"
        " const t = new DataTransfer(); t.items.add(new File([bytes], name, { type })); return t; }",
        [payload, path.name, mime])
    page.dispatch_event("#drop", "dragenter", {"dataTransfer": transfer})
    page.dispatch_event("#drop", "dragover", {"dataTransfer": transfer})
    assert "over" in page.get_attribute("#drop", "class"), "the drop zone should light up while dragging"
    page.dispatch_event("#drop", "drop", {"dataTransfer": transfer})


def test_search_browse_drop_and_play_in_the_page(served):
    base, root, rocket = served
    artifacts = REPO / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        # bypass_csp: Playwright polls wait_for_function strings with eval, which the page's CSP forbids
        page = browser.new_page(viewport={"width": 1200, "height": 900}, bypass_csp=True)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(base + "/")

        page.fill("#q", "a cat")
        page.click("button[type=submit]")
        page.wait_for_selector(".hit")
        names = page.locator(".hit .name").all_inner_texts()
        assert any("cat.jpg" in name for name in names), names
        page.wait_for_function("[...document.querySelectorAll('.hit img')].every(i => i.complete && i.naturalWidth > 0)")

        # a photo opens with its description, which the page can read aloud
        page.locator(".hit", has_text="cat.jpg").first.click()
        page.wait_for_function("document.querySelector('#description') && "
                               "document.querySelector('#description').textContent.includes('cat')")
        with page.expect_response(lambda r: r.url.endswith("/api/v1/speak")) as spoken:
            page.click("#read-aloud")
        assert spoken.value.status == 200 and spoken.value.headers["content-type"] == "audio/wav"

        # search by example: a real drag-and-drop sequence carrying the photo as a File
        drop(page, root / "photos/coffee.png", "image/png")
        page.wait_for_function("document.querySelector('#status').textContent.includes('result') && "
                               "document.querySelector('.hit .name').textContent.includes('coffee.png')")
        assert "over" not in (page.get_attribute("#drop", "class") or "")

        # the file picker is the other way in: a recording as the query
        page.set_input_files("#example", str(root / "voice_memos/shopping_list.wav"))
        page.wait_for_function("document.querySelector('.hit .name') && "
                               "document.querySelector('.hit .name').textContent.includes('shopping_list.wav')")

        page.fill("#q", "buy milk and coffee beans")
        page.click("button[type=submit]")
        memo = page.locator(".hit[data-kind=audio]").first
        memo.wait_for()
        memo.click()
        page.wait_for_selector("#item audio")
        assert "milk" in page.locator("#item .transcript").inner_text().lower()
        start = page.evaluate("() => { const t = document.querySelector('.hit[data-kind=audio] .name').textContent;"
                              " const m = t.match(/@ (\\d+):([\\d.]+)/); return m ? (+m[1]) * 60 + (+m[2]) : 0; }")
        page.wait_for_function("document.querySelector('#player').readyState >= 1")
        page.evaluate("() => { const p = document.querySelector('#player'); p.muted = true; return p.play(); }")
        page.wait_for_function("!document.querySelector('#player').paused || document.querySelector('#player').ended")
        current = page.evaluate("document.querySelector('#player').currentTime")
        assert current >= start - 0.1  # the player starts at the hit (a seek lands on the nearest audio frame)
        assert page.evaluate("document.querySelector('#player').duration") > 1

        # a spoken line in the middle of a video: the player starts where it is said
        page.fill("#q", "the rocket launch we watched")
        page.select_option("#kind", "video")
        page.click("button[type=submit]")
        page.wait_for_selector(".hit[data-kind=video]")
        page.locator(".hit[data-kind=video]").first.click()
        page.wait_for_selector("#item video")
        page.wait_for_function("document.querySelector('#player').readyState >= 1")
        matched = page.evaluate("() => { const t = document.querySelector('.hit[data-kind=video] .name').textContent;"
                                " const m = t.match(/@ (\\d+):([\\d.]+)/); return m ? (+m[1]) * 60 + (+m[2]) : 0; }")
        assert rocket.start - 0.5 <= matched < rocket.end  # at the words asked for, wherever Whisper cut segments
        page.wait_for_function(f"document.querySelector('#player').currentTime >= {matched - 0.1}")
        page.screenshot(path=str(artifacts / "serve_page.png"), full_page=True)

        # drawing from words: a grid from the shipped digit model, its nearest concept, a warning when far
        page.click("#imagining summary")
        page.fill("#prompt", "a handwritten seven")
        page.fill("#imagine-n", "4")
        page.fill("#imagine-steps", "4")
        page.click("#imagine-button")
        page.wait_for_function("document.querySelector('#imagined-picture').naturalWidth > 0")
        assert page.evaluate("document.querySelector('#imagined-picture').naturalWidth") >= 4 * 28
        assert "nearest concepts: seven" in page.inner_text("#imagined-caption")
        assert page.inner_text("#imagine-status") == ""
        page.fill("#prompt", "a bowl of ramen")
        page.click("#imagine-button")
        page.wait_for_function("document.querySelector('#imagine-status').textContent.includes('far from')")
        assert page.get_attribute("#imagine-status", "class") == "warning"
        page.select_option("#imagine-model", "fashion")
        page.fill("#prompt", "an ankle boot")
        page.click("#imagine-button")
        page.wait_for_function("document.querySelector('#imagined-caption').textContent.includes('nearest concepts: ankle boot')")
        browser.close()
    assert errors == []
