"""search.py's pure parts: the span of matched words inside a spoken segment, and the reasons shown."""
from __future__ import annotations

from sensorium.index.catalog import SegmentRow
from sensorium.search import SPAN_CONTEXT_SECONDS, Query, explain, matched_span

SENTENCE = [(0.0, 0.3, "Tonight"), (0.3, 0.6, "we"), (0.6, 1.0, "watched"), (1.0, 1.2, "the"), (1.2, 1.5, "old"),
            (1.5, 2.0, "film"), (2.0, 2.2, "and"), (2.2, 2.4, "then"), (4.6, 4.9, "the"), (4.9, 5.4, "rocket"),
            (5.4, 6.1, "launched"), (6.1, 6.3, "into"), (6.3, 6.4, "the"), (6.4, 6.9, "clouds."), (9.0, 9.5, "Rocket!")]


def _row(words, source="speech", start=0.0, end=10.0, text="...") -> SegmentRow:
    return SegmentRow(1, 1, "/m.wav", "audio", start, end, source, text, [], "", words)


def test_a_hit_spans_the_words_it_matched_with_a_little_context():
    start, end = matched_span(_row(SENTENCE), "rocket launch")
    assert abs(start - (4.9 - SPAN_CONTEXT_SECONDS)) < 1e-6  # "launch" matches "launched"
    assert abs(end - (6.1 + SPAN_CONTEXT_SECONDS)) < 1e-6


def test_the_place_matching_most_terms_wins_and_single_matches_tie_to_the_earliest():
    assert matched_span(_row(SENTENCE), "rocket launch")[0] < 5  # not the lone "Rocket!" at 9 s
    assert matched_span(_row(SENTENCE), "rockets")[0] < 5  # plural query, two places: the earlier
    start, end = matched_span(_row(SENTENCE), "films")
    assert abs(start - (1.5 - SPAN_CONTEXT_SECONDS)) < 1e-6 and abs(end - (2.0 + SPAN_CONTEXT_SECONDS)) < 1e-6


def test_words_asked_for_across_a_segment_boundary_make_one_place():
    """Whisper ended a segment after "musician"; the hit is the next segment, holding "violin"."""
    before = [(11.9, 12.3, "an"), (12.3, 12.6, "old"), (12.6, 13.1, "musician")]
    after = [(13.7, 13.9, "his"), (13.94, 14.2, "violin"), (14.2, 14.5, "under")]
    hit = _row(after, start=13.7, end=16.4)
    assert matched_span(hit, "musician violin")[0] > 13.5  # its own words alone
    start, end = matched_span(hit, "musician violin", sorted(before + after))
    assert abs(start - (12.6 - SPAN_CONTEXT_SECONDS)) < 1e-6 and abs(end - (14.2 + SPAN_CONTEXT_SECONDS)) < 1e-6
    # the same word in the neighbour and in the hit's own segment, far apart: the hit's own wins the tie
    earlier = [(10.0, 10.4, "violin")]
    assert matched_span(hit, "violin", sorted(earlier + after))[0] > 13.5
    lone = matched_span(_row(after, start=13.7, end=16.4), "musician", sorted(before + after))
    assert abs(lone[0] - (12.6 - SPAN_CONTEXT_SECONDS)) < 1e-6  # only the neighbour holds it


def test_no_span_without_word_times_matches_or_speech():
    assert matched_span(_row([]), "rocket") is None
    assert matched_span(_row(SENTENCE), "giraffe") is None
    assert matched_span(_row(SENTENCE), "") is None
    assert matched_span(_row(SENTENCE, source="text"), "rocket") is None


def test_the_span_stays_inside_the_file_and_the_reason_gives_its_times():
    row = _row([(0.1, 0.5, "rocket")], end=0.6)
    start, end = matched_span(row, "rocket")
    assert start == 0.0 and end == 0.6  # clamped to the file's start and the segment's end
    why = explain(_row(SENTENCE), None, 1.0, Query(), 4.6, 6.4)
    assert "at 0:04.6-0:06.4" in why and "words match" in why


def test_text_read_in_a_picture_is_its_own_reason():
    row = SegmentRow(2, 2, "/sign.jpg", "image", None, None, "image", "street sign", [["street sign", 0.8]],
                     "STOP AHEAD", [])
    why = explain(row, None, None, Query())
    assert why.startswith("looks like street sign") and 'reads "STOP AHEAD"' in why
