"""The photo describer: the shared experts' evidence, turned into a description or an answer.

It lives apart from `describe` and `answer` because it uses both, and they share vocabulary one way
(`answer` reads `describe`'s findings)."""

from __future__ import annotations

import numpy as np

from .answer import Answer, answer_question, check_question
from .concepts import load_concepts
from .describe import DescribeOptions, Description, describe_evidence


class Describer:
    """Describe photos with an `ImageBridge`'s experts (one bridge per process is shared: `bridge_for`)."""

    def __init__(self, bridge, options: DescribeOptions | None = None):
        self.bridge = bridge
        self.options = options or DescribeOptions()
        self.table = load_concepts()

    def describe_evidence(self, evidence) -> Description:
        return describe_evidence(evidence, self.bridge.labels.combine_probs, self.options, self.table)

    def describe(self, pixels: np.ndarray) -> Description:
        return self.describe_many([pixels])[0]

    def describe_many(self, images: list[np.ndarray]) -> list[Description]:
        return [self.describe_evidence(evidence) for evidence in self.bridge.observe(images)]

    def answer(self, pixels: np.ndarray, question: str) -> Answer:
        """One question about one photo (`answer.answer_question`); ValueError for an empty question,
        raised before the experts run."""
        question = check_question(question)
        [evidence] = self.bridge.observe([pixels])
        return answer_question(question, evidence, self.bridge.labels.combine_probs, self.options, self.table)
