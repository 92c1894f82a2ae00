"""Generation: words composed from what the experts found (`describe`, `ask` on real photos).

Everything here reads the frozen experts' evidence (`sensorium.space.image_bridge.ImageEvidence`)
and says only what that evidence supports, hedged by its confidence; nothing is a learned captioner.
"""
from .concepts import ConceptTable, load_concepts
from .describe import Certainty, DescribeOptions, Description, Finding, describe_evidence
from .describer import Describer
from .answer import Answer, answer_question, parse_question

__all__ = ["Answer", "Certainty", "ConceptTable", "DescribeOptions", "Description", "Describer", "Finding",
           "answer_question", "describe_evidence", "load_concepts", "parse_question"]
