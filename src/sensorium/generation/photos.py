"""Describe and ask about photo files: read, run the experts once, compose. What the CLI and service call.

    describe_photo("cat.jpg")                          # Description
    describe_photos(paths, progress=cb)                # ([(path, Description)], [(path, reason)])
    ask_photo("street.jpg", "How many people are there?")   # Answer

A file that cannot be read raises QueryError naming it (describe_photos reports it and goes on).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import QueryError, ReadError, SensoriumError
from ..experts import default_experts
from ..readers.image import read_image
from ..space.image_bridge import bridge_for
from .answer import Answer, check_question
from .describe import DescribeOptions, Description
from .describer import Describer

MAX_SIDE = 2048  # photos are read at most this large: the classifier sees 224 px, OCR caps at 960


def read_photo(path: str | Path) -> np.ndarray:
    try:
        return read_image(path, max_side=MAX_SIDE).pixels
    except ReadError as error:
        raise QueryError(f"{error.path}: {error.reason}") from None


def describer(experts=None, options: DescribeOptions | None = None) -> Describer:
    return Describer(bridge_for(experts or default_experts()), options)


def describe_photo(path: str | Path, experts=None, options: DescribeOptions | None = None) -> Description:
    return describer(experts, options).describe(read_photo(path))


def describe_photos(paths, experts=None, options: DescribeOptions | None = None, progress=None):
    """Each photo described alone; one unreadable file is reported, never fatal."""
    paths = list(paths)
    engine = describer(experts, options)
    results, failures = [], []
    for done, path in enumerate(paths, 1):
        try:
            results.append((str(path), engine.describe(read_photo(path))))
        except SensoriumError as error:
            failures.append((str(path), str(error)))
        if progress is not None:
            progress(done, len(paths), str(path))
    return results, failures


def ask_photo(path: str | Path, question: str, experts=None, options: DescribeOptions | None = None) -> Answer:
    """One question about one photo; ValueError for an empty question (before the photo is read)."""
    check_question(question)
    return describer(experts, options).answer(read_photo(path), question)
