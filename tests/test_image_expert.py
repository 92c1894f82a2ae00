"""The image expert, the person detector and OCR on real photos shipped with scikit-image."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

skimage_data = pytest.importorskip("skimage.data")

from sensorium.errors import ModelError  # noqa: E402
from sensorium.experts.image import ImageExpert, crop_views, load_class_names, prepare_views  # noqa: E402

COCO_MINI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_mini"
DOMESTIC_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat
COFFEE = {967, 968, 504}  # espresso, cup, coffee mug


@pytest.fixture(scope="module")
def expert():
    return ImageExpert()


def test_class_names_are_the_imagenet_list():
    names = load_class_names()
    assert len(names) == 1000
    assert names[0].startswith("tench") and names[281].startswith("tabby") and names[999].startswith("toilet tissue")


def test_top1_on_known_photos(expert):
    out = expert.run([skimage_data.chelsea(), skimage_data.coffee()])
    assert out.features.shape == (2, 1280) and out.probs.shape == (2, 1000)
    assert out.features.dtype == np.float32 and out.probs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out.probs.sum(axis=1), 1.0, atol=1e-4)
    assert int(out.probs[0].argmax()) in DOMESTIC_CATS
    assert int(out.probs[1].argmax()) in COFFEE
    # the native features separate a cat from a cup
    cat_again = expert.run([skimage_data.chelsea()[::-1].copy()]).features[0]  # upside-down cat
    assert cat_again @ out.features[0] > cat_again @ out.features[1]


def test_crops_give_one_row_per_view(expert):
    photo = skimage_data.astronaut()
    assert len(crop_views(photo, "grid")) == 5 and len(crop_views(photo, "five")) == 6
    [per_view] = expert.run_crops([photo], "grid")
    assert per_view.probs.shape == (5, 1000)
    np.testing.assert_allclose(per_view.probs[0], expert.run([photo]).probs[0], atol=1e-5)


def test_views_prepared_on_threads_are_the_one_thread_views():
    photos = [skimage_data.astronaut(), skimage_data.chelsea(), skimage_data.coffee(), skimage_data.rocket()]
    alone = [crop_views(photo, "grid") for photo in photos]
    for threads in (1, 2, 3):
        threaded = prepare_views(photos, "grid", threads=threads)
        assert [len(views) for views in threaded] == [5, 5, 5, 5]
        assert all(np.array_equal(a, b) for one, many in zip(alone, threaded) for a, b in zip(one, many))
    # a bad photo among good ones is named by its place in the batch
    with pytest.raises(ValueError, match="image 2: too small"):
        prepare_views([photos[0], photos[1], np.zeros((4, 4, 3), np.uint8)], "grid", threads=2)


def test_bad_input_is_rejected(expert):
    with pytest.raises(ValueError):
        expert.run([np.zeros((32, 32), np.uint8)])


def test_user_safetensors_weights_give_the_same_model(tmp_path, expert):
    import torch
    from safetensors.torch import save_file

    state = torch.load(expert.weights_path(), map_location="cpu", weights_only=True)
    own = tmp_path / "lite0.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(own))
    local = ImageExpert(own)
    photo = [skimage_data.coffee()]
    np.testing.assert_allclose(local.run(photo).probs, expert.run(photo).probs, atol=1e-5)
    assert local.info().package.startswith("local:")


def test_broken_user_weights_raise_model_error(tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError):
        ImageExpert(bad).run([skimage_data.coffee()])


def test_person_detector_finds_the_astronaut():
    from sensorium.experts.person import PersonDetector

    boxes = PersonDetector().detect(skimage_data.astronaut())
    assert boxes, "no person found on the astronaut photo"
    best = max(boxes, key=lambda b: b.score)
    # Eileen Collins' face sits around x 170-270, y 60-170 in the 512x512 photo
    assert 140 < best.x + best.w / 2 < 300 and 40 < best.y + best.h / 2 < 200
    assert all(0.5 <= box.score <= 1.0 and box.kind in ("face", "body") for box in boxes)


def test_person_detector_finds_no_one_in_photos_without_people():
    from sensorium.experts.person import PersonDetector

    detector = PersonDetector()
    assert detector.detect(skimage_data.coffee()) == []
    assert detector.detect(skimage_data.chelsea()) == []


def test_person_detector_finds_a_standing_person_on_coco():
    from PIL import Image

    from sensorium.experts.person import PersonDetector

    photo = COCO_MINI / "images" / "000000030752.jpg"
    if not photo.is_file():
        pytest.skip(f"COCO-mini photo not found at {photo} (shared data absent)")
    boxes = PersonDetector().detect(np.asarray(Image.open(photo).convert("RGB")))
    body = [box for box in boxes if box.kind == "body"]
    assert body, f"no full body found: {boxes}"
    # COCO's annotation puts the person at x 215-333, y 63-364 in the 640x426 photo
    best = max(body, key=lambda b: b.score)
    assert 215 < best.x + best.w / 2 < 333 and 63 < best.y + best.h / 2 < 364
    assert best.h > 200 and best.score > 0.5


def test_person_detector_describes_its_model():
    from sensorium.experts.person import PersonDetector

    info = PersonDetector().info()
    assert info.name == "opencv-hog-haar" and info.package == "opencv-python"
    assert info.version.startswith("4.") and info.file.endswith("haarcascade_frontalface_default.xml")
    assert len(info.sha256) == 64 and info.size_bytes > 100_000


def test_ocr_reads_rendered_text():
    from PIL import Image, ImageDraw, ImageFont

    from sensorium.experts.ocr import OcrReader

    canvas = Image.new("RGB", (420, 120), "white")
    font = ImageFont.load_default(size=44)
    ImageDraw.Draw(canvas).text((16, 30), "OPEN 24 HOURS", fill="black", font=font)
    lines = OcrReader().read(np.asarray(canvas))
    text = " ".join(line.text for line in lines).upper().replace(" ", "")
    assert "OPEN24HOURS" in text
    assert all(0.0 <= line.score <= 1.0 for line in lines)
