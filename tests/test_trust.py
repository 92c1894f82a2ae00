"""Calibration, conformal prediction sets and abstention (`sensorium.trust`), on synthetic data whose
truth is known: an overconfident toy model is fixed by temperature scaling, conformal sets cover at
the rate asked within what the sample size allows, and a calibration file round-trips and refuses
bad input by name. The CLI test calibrates spoken labels end to end."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from sensorium.errors import ConfigError
from sensorium.trust import calibration, conformal
from sensorium.trust.diagram import reliability_diagram
from sensorium.trust.profile import CalibrationProfile


def toy(n: int, labels: int = 5, sharpness: float = 3.0, seed: int = 0):
    """Labels drawn from softmax(z) (so softmax(z) is perfectly calibrated); the model reports
    softmax(sharpness * z): overconfident by a temperature of `sharpness`."""
    rng = np.random.default_rng(seed)
    z = rng.normal(scale=1.5, size=(n, labels))
    true_probs = calibration.softmax(z)
    truth = np.array([rng.choice(labels, p=p) for p in true_probs])
    return calibration.softmax(sharpness * z), truth


def test_temperature_scaling_fixes_an_overconfident_model():
    model, truth = toy(6000)
    fit, test = slice(0, 3000), slice(3000, None)
    before = calibration.measures(model[test], truth[test])
    temperature = calibration.fit_temperature(calibration.as_logits(model[fit]), truth[fit])
    after = calibration.measures(calibration.scale(calibration.as_logits(model[test]), temperature), truth[test])
    assert temperature == pytest.approx(3.0, rel=0.1)
    assert before["ece"] > 0.1 and after["ece"] <= 0.03, (before, after)
    assert after["adaptive_ece"] <= 0.03 and after["nll"] < before["nll"] and after["brier"] < before["brier"]
    assert after["accuracy"] == before["accuracy"]  # a temperature never changes the ranking


def test_a_calibrated_model_keeps_a_temperature_near_one():
    model, truth = toy(4000, sharpness=1.0, seed=1)
    assert calibration.fit_temperature(calibration.as_logits(model), truth) == pytest.approx(1.0, rel=0.1)


def test_ece_of_known_cases():
    truth = np.zeros(100, dtype=int)
    sure_and_right = np.tile([1.0, 0.0], (100, 1))
    assert calibration.ece(sure_and_right, truth) == 0.0
    half = np.tile([0.9, 0.1], (100, 1))  # 90% sure, right half the time
    assert calibration.ece(half, np.r_[np.zeros(50, int), np.ones(50, int)]) == pytest.approx(0.4)


def test_a_sure_right_model_has_an_nll_of_exactly_zero():
    """A softmax in float32 can put 1 + 1e-8 on the true class; the NLL is then 0, not a negative
    zero that prints as "-0.0000" (seen after training kept a later, surer epoch)."""
    truth = np.zeros(4, dtype=int)
    above_one = np.tile([1.0 + 1e-8, 0.0], (4, 1))
    value = calibration.nll(above_one, truth)
    assert value == 0.0 and f"{value:.4f}" == "0.0000"
    assert calibration.nll(np.tile([0.5, 0.5], (4, 1)), truth) == pytest.approx(np.log(2))


def test_conformal_coverage_holds_within_the_sampling_error():
    """Marginal coverage of split conformal is at least 1 - alpha and at most 1 - alpha + 1/(n + 1) in
    expectation; over 30 independent splits the mean must sit inside that band, give or take 3
    standard errors, and no single split may stray beyond what its own sizes explain."""
    n_cal, n_test, confidence = 500, 2000, 0.9
    covered = []
    for seed in range(30):
        model, truth = toy(n_cal + n_test, seed=100 + seed)
        probs = calibration.scale(calibration.as_logits(model), 3.0)
        sets = conformal.ConformalSets(conformal.scores(probs[:n_cal], truth[:n_cal]), truth[:n_cal], 5)
        covered.append(conformal.coverage(sets.member(probs[n_cal:], confidence), truth[n_cal:]))
    covered = np.array(covered)
    # the coverage of one split is Beta-distributed around its mean (calibration draw) plus binomial test noise
    spread = math.sqrt(confidence * (1 - confidence) / (n_cal + 2) + confidence * (1 - confidence) / n_test)
    assert confidence - 3 * spread / math.sqrt(30) <= covered.mean() <= confidence + 1 / (n_cal + 1) + 3 * spread / math.sqrt(30)
    assert np.all(np.abs(covered - confidence) <= 4 * spread), covered


def test_mondrian_sets_cover_every_label():
    """A label the model is bad at: marginal sets miss it more often than asked; per-label sets do not."""
    rng = np.random.default_rng(7)
    n, labels = 6000, 4
    truth = rng.integers(0, labels, n)
    logits = rng.normal(size=(n, labels))
    logits[np.arange(n), truth] += np.where(truth == 3, 0.3, 3.0)  # label 3 is hard
    probs = calibration.softmax(logits)
    cal, test = slice(0, 3000), slice(3000, None)
    scores = conformal.scores(probs[cal], truth[cal])
    for mondrian in (False, True):
        member = conformal.ConformalSets(scores, truth[cal], labels, mondrian=mondrian).member(probs[test], 0.9)
        hard = truth[test] == 3
        hard_coverage = conformal.coverage(member[hard], truth[test][hard])
        if mondrian:
            assert hard_coverage >= 0.87, hard_coverage
        else:
            assert hard_coverage < 0.85, hard_coverage  # the average hides it


def test_too_few_examples_give_every_label():
    assert conformal.threshold(np.array([0.1, 0.2, 0.3]), 0.9) == math.inf
    sets = conformal.ConformalSets(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 2]), 3)
    assert sets.sets(np.array([[0.7, 0.2, 0.1]]), 0.9) == [[0, 1, 2]]
    sure = conformal.ConformalSets(np.full(100, 0.01), np.zeros(100, int), 3)  # a classifier never wrong
    assert sure.sets(np.array([[0.995, 0.004, 0.001], [0.6, 0.3, 0.1]]), 0.9) == [[0], []]  # empty: uncertain
    with pytest.raises(ValueError):
        conformal.threshold(np.array([0.1]), 1.0)


def test_selective_accuracy_rises_as_coverage_falls():
    model, truth = toy(3000, seed=3)
    covered, accuracy = conformal.risk_coverage(model, truth)
    assert covered[-1] == 1.0 and accuracy[-1] == pytest.approx(np.mean(model.argmax(1) == truth))
    assert conformal.accuracy_at_coverage(model, truth, 0.2) > conformal.accuracy_at_coverage(model, truth, 1.0) + 0.1


def test_profile_round_trip_decisions_and_bad_files(tmp_path):
    model, truth = toy(1000, labels=3, seed=4)
    names = ["cat", "dog", "owl"]
    profile = CalibrationProfile.fit(model, truth, names, modality="image")
    assert profile.temperature == pytest.approx(3.0, rel=0.15)
    assert profile.after["ece"] < profile.before["ece"]
    path = profile.save(tmp_path / "cal.json")
    loaded = CalibrationProfile.load(path)
    assert loaded.labels == names and loaded.temperature == pytest.approx(profile.temperature)
    assert np.allclose(loaded.scores, profile.scores, atol=1e-6)
    sure, torn = loaded.decide(np.array([[0.999, 0.0005, 0.0005], [0.5, 0.49, 0.01]]))
    assert sure.label == "cat" and sure.candidates == ["cat"]
    assert torn.uncertain and torn.as_dict()["decision"] == "uncertain" and set(torn.candidates) >= {"cat", "dog"}
    assert loaded.order(["owl", "cat", "dog"]) == [1, 2, 0]
    with pytest.raises(ConfigError, match="calibrate again"):
        loaded.order(["cat", "dog"])

    data = json.loads(path.read_text())
    for field, value, message in (("temperature", -1, "temperature"), ("labels", ["one"], "labels"),
                                  ("kind", "x", "not a Sensorium calibration"), ("format", 9, "format")):
        broken = dict(data, **{field: value})
        (tmp_path / "bad.json").write_text(json.dumps(broken))
        with pytest.raises(ConfigError, match=message):
            CalibrationProfile.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text(json.dumps(dict(data, examples={"scores": [0.1], "truth": [7]})))
    with pytest.raises(ConfigError, match="examples"):
        CalibrationProfile.load(tmp_path / "bad.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="bad.json"):
        CalibrationProfile.load(tmp_path / "bad.json")


def test_reliability_diagram_is_a_picture(tmp_path):
    model, truth = toy(500, seed=5)
    path = reliability_diagram(tmp_path / "r.png", [("before", model, truth), ("after", model ** 0.3, truth)])
    with Image.open(path) as picture:
        assert picture.size == (720, 360)
        colours = np.unique(np.asarray(picture.convert("RGB")).reshape(-1, 3), axis=0)
        assert len(colours) > 3  # bars and text drawn, not a blank page


def test_cli_calibrates_spoken_labels_and_classify_abstains_or_answers(tmp_path):
    """`sensorium calibrate` on a folder per label of spoken words, then `classify` with the file."""
    from helpers.serve import run_cli

    from sensorium.experts.tts import save_wav, synthesize

    words = ["up", "down", "left"]
    voices = [("en-us", 150, 40), ("en-us", 190, 70), ("en-gb", 160, 50), ("en-gb", 130, 30)]
    for word in words:
        for number, (voice, rate, pitch) in enumerate(voices):
            (tmp_path / "examples" / word).mkdir(parents=True, exist_ok=True)
            save_wav(synthesize(word, voice=voice, rate_wpm=rate, pitch=pitch), tmp_path / "examples" / word / f"{number}.wav")
    save_wav(synthesize("left", voice="en-us", rate_wpm=170, pitch=60), tmp_path / "query.wav")

    fitted = run_cli("calibrate", str(tmp_path / "examples"), "-o", str(tmp_path / "cal.json"),
                     "--diagram", str(tmp_path / "r.png"), timeout=600)
    assert fitted.returncode == 0, fitted.stderr
    assert "calibrated 12 examples of 3 labels" in fitted.stdout and "ECE" in fitted.stdout
    assert (tmp_path / "r.png").stat().st_size > 1000
    profile = CalibrationProfile.load(tmp_path / "cal.json")
    assert profile.labels == ["down", "left", "up"] and profile.modality == "audio" and profile.before["accuracy"] >= 0.9

    answer = run_cli("classify", str(tmp_path / "query.wav"), "--labels", "up,down,left", "--calibration",
                     str(tmp_path / "cal.json"), "--abstain", "--json", timeout=600)
    assert answer.returncode == 0, answer.stderr
    result = json.loads(answer.stdout)
    assert "calibrated" in result["method"] and result["confidence"] == 0.9
    assert result["decision"] in ("left", "uncertain") and set(result["prediction_set"]) <= {"up", "down", "left"}
    assert result["decision"] == "uncertain" or result["prediction_set"] == ["left"]
    assert abs(sum(label["score"] for label in result["labels"]) - 1.0) < 1e-3

    refused = run_cli("classify", str(tmp_path / "query.wav"), "--labels", "up,down", "--calibration",
                      str(tmp_path / "cal.json"))
    assert refused.returncode == 2 and "calibrate again" in refused.stderr
    alone = run_cli("classify", str(tmp_path / "query.wav"), "--labels", "up,down,left", "--abstain")
    assert alone.returncode == 2 and "--calibration" in alone.stderr


def test_service_classifies_with_a_calibration_for_those_labels(tmp_path):
    import io

    from fastapi.testclient import TestClient
    from helpers.cli import cat_photo

    from sensorium.serve.app import LOOPBACK_HOSTS, create_app

    model, truth = toy(400, labels=2, seed=9)
    CalibrationProfile.fit(model, truth, ["cat", "rocket"], modality="image").save(tmp_path / "cal.json")
    app = create_app(tmp_path / "collection", [tmp_path], allowed_hosts=LOOPBACK_HOSTS,
                     calibrations=[tmp_path / "cal.json"])
    photo = io.BytesIO()
    Image.fromarray(cat_photo()).save(photo, "JPEG")
    upload = {"file": ("kitty.jpg", photo.getvalue(), "image/jpeg")}
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        reply = client.post("/api/v1/classify", files=upload, data={"labels": "rocket,cat", "confidence": "0.9",
                                                                    "abstain": "true"})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert "calibrated" in body["method"] and body["confidence"] == 0.9 and body["decision"] in ("cat", "uncertain")
        assert body["labels"][0]["label"] == "cat"
        plain = client.post("/api/v1/classify", files=upload, data={"labels": "cat,rocket,dog", "abstain": "true"})
        assert plain.status_code == 422 and "no calibration for these labels" in plain.json()["detail"]
    (tmp_path / "broken.json").write_text("{}")
    with pytest.raises(ConfigError, match="broken.json"):
        create_app(tmp_path / "collection", [tmp_path], calibrations=[tmp_path / "broken.json"])
