"""`describe` and `ask` on photos: composed only from what the experts found, hedged by confidence.

The composition rules are checked on hand-made evidence (exact, no model); the CLI end to end on
the sample photos with the real experts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from sensorium.experts.ocr import OcrLine
from sensorium.experts.person import Box
from sensorium.generation import Certainty, DescribeOptions, answer_question, describe_evidence, load_concepts
from sensorium.generation.answer import CANNOT_TELL, COUNT, EXIST, READ, UNSUPPORTED, WHAT, parse_question
from sensorium.space.image_bridge import ImageEvidence

TABLE = load_concepts()


def _classes(word: str) -> np.ndarray:
    found = TABLE.term_classes(word)
    assert found is not None, word
    return found


def _evidence(mass: dict[str, float], faces: int = 0, face_score: float = 0.9, ocr: list[tuple[str, float]] = ()):
    """Whole-image probabilities with `mass` spread evenly over each word's classes, the rest uniform."""
    probs = np.zeros(1000)
    for word, share in mass.items():
        members = _classes(word)
        probs[members] += share / len(members)
    probs += (1.0 - probs.sum()) / 1000
    boxes = [Box(10 * i, 10, 30, 60, face_score, "face") for i in range(faces)]
    lines = [OcrLine(text, score, (0, 0, 10, 10)) for text, score in ocr]
    return ImageEvidence(probs[None, :], np.zeros(1280, np.float32), boxes, 0.0, lines)


def whole(view_probs):
    return np.atleast_2d(view_probs)[0]


def test_every_class_joins_a_concept_and_breeds_pool_into_their_general_word():
    assert len(TABLE.class_concept) == 1000 and TABLE.class_concept.max() == len(TABLE.nouns) - 1
    assert len(_classes("dog")) > 100 and len(_classes("dogs")) == len(_classes("dog"))
    assert TABLE.term_classes("giraffe") is None  # no ImageNet class: `ask` must say cannot tell
    assert "kitchen" not in TABLE.nouns  # settings never stand for a thing (a frying pan is a pan)


def test_a_dog_spread_over_many_breeds_is_stated_as_a_dog():
    description = describe_evidence(_evidence({"dog": 0.9}), whole)
    assert description.sentence == "A photo of a dog."
    [dog] = description.findings
    assert dog.certainty is Certainty.SURE and dog.confidence == pytest.approx(0.9, abs=0.02)


def test_unsure_findings_are_hedged_and_weak_ones_left_out():
    description = describe_evidence(_evidence({"cat": 0.8, "bicycle": 0.4, "pizza": 0.1}), whole)
    assert description.sentence == "A photo of a cat, and probably a bicycle."
    assert [f.noun for f in description.left_out][:1] == ["pizza"]
    nothing = describe_evidence(_evidence({"cat": 0.2, "pizza": 0.2}), whole)
    assert nothing.sentence == "I cannot tell what this photo shows." and not nothing.findings


def test_people_are_counted_and_text_is_quoted_only_when_read_confidently():
    description = describe_evidence(_evidence({"bicycle": 0.9}, faces=2, ocr=[("OPEN", 0.95), ("x7#", 0.4)]), whole)
    assert description.sentence == "A photo of a bicycle, with two people. The text in it reads “OPEN”."
    strict = describe_evidence(_evidence({"bicycle": 0.9}), whole, DescribeOptions(sure=0.95, probable=0.95))
    assert strict.sentence.startswith("I cannot tell")


def test_thresholds_are_checked_and_the_cli_defaults_are_the_library_ones():
    from sensorium.commands.describe import PROBABLE, SURE

    with pytest.raises(ValueError, match="probable"):
        DescribeOptions(sure=0.3, probable=0.6)
    assert (DescribeOptions().sure, DescribeOptions().probable) == (SURE, PROBABLE)


@pytest.mark.parametrize("question, kind, thing", [
    ("Is there a dog?", EXIST, "dog"), ("Are there any cats in the photo?", EXIST, "cats"),
    ("How many people are there?", COUNT, "people"), ("What does the sign say?", READ, ""),
    ("What is this?", WHAT, ""), ("What colour is the car?", UNSUPPORTED, ""),
])
def test_questions_are_parsed_into_what_the_experts_can_answer(question, kind, thing):
    assert parse_question(question) == (kind, thing)


def test_answers_come_from_findings_and_cannot_tell_otherwise():
    evidence = _evidence({"cat": 0.85}, faces=3, ocr=[("EXIT", 0.9)])
    assert answer_question("Is there a cat?", evidence, whole).answer == "yes"
    assert answer_question("how many people?", evidence, whole).answer == "3"
    assert answer_question("What does the sign say?", evidence, whole).answer == "EXIT"
    assert answer_question("What is this?", evidence, whole).answer == "a cat and three people"
    # absence is never asserted: the classifier names only the main things
    for question in ("Is there a dog?", "Is there a giraffe?", "What colour is the cat?", "Что это?",
                     "How many cats are there?"):
        answer = answer_question(question, evidence, whole)
        assert answer.answer == CANNOT_TELL and answer.reason and answer.confidence == 0.0, question
    assert answer_question("Is there a bicycle?", _evidence({"bicycle": 0.4}), whole).answer == "probably"
    with pytest.raises(ValueError, match="question: empty"):
        answer_question("   ", evidence, whole)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from sensorium.demo.sample_data import build_sample_folder

    folder = tmp_path_factory.mktemp("sample")
    build_sample_folder(folder)
    return folder / "photos"


def test_cli_describe_names_the_cat_and_reports_a_bad_file_without_stopping(photos, tmp_path):
    from typer.testing import CliRunner

    from sensorium.cli import app

    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    speech = tmp_path / "cat.wav"
    result = CliRunner().invoke(app, ["describe", str(photos / "cat.jpg"), str(broken), "--json",
                                      "--speak", str(speech)])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    [cat] = report["results"]
    assert "cat" in cat["sentence"] and cat["findings"][0]["certainty"] == "sure"
    assert report["failures"][0]["path"] == str(broken) and "broken.jpg" in report["failures"][0]["reason"]
    import soundfile

    samples, rate = soundfile.read(speech)
    assert rate == 16000 and len(samples) / rate > 0.5


def test_cli_ask_answers_and_refuses_an_empty_question(photos):
    from typer.testing import CliRunner

    from sensorium.cli import app

    runner = CliRunner()
    yes = runner.invoke(app, ["ask", str(photos / "cat.jpg"), "Is there a cat?", "--json"])
    assert yes.exit_code == 0 and json.loads(yes.stdout)["answer"] == "yes"
    unsure = runner.invoke(app, ["ask", str(photos / "cat.jpg"), "Is there a giraffe?"])
    assert unsure.exit_code == 0 and unsure.stdout.startswith(CANNOT_TELL)
    empty = runner.invoke(app, ["ask", str(photos / "cat.jpg"), " "])
    assert empty.exit_code == 2 and "question: empty" in empty.output
