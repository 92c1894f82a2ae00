"""Every reader fuzzed: structure-aware files (valid framing, hostile fields) and mutated seeds must
give a payload that keeps its invariants or one of Sensorium's own errors, nothing else; and every
interesting input kept under tests/fuzz_corpus/ is replayed.

Derandomised (the same inputs every run, so `make test` cannot turn red by luck); the benchmark
`benchmarks/fuzz_readers.py` explores >= 100,000 inputs per reader with fresh randomness and atheris.
"""
from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks.common.hostile import READERS, mutate, outcome, png, seeds, wav

CORPUS = Path(__file__).parent / "fuzz_corpus"
FUZZ = settings(derandomize=True, database=None, deadline=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def mutated(reader: str):
    """A seed of the reader's kind with up to 24 bytes overwritten and maybe truncated."""
    return st.builds(
        lambda seed, edits, cut: (seed[0], mutate(seed[1], edits, cut)),
        st.sampled_from(seeds()[reader]),
        st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=24),
        st.none() | st.integers(0, 1 << 20),
    )


HOSTILE_WAV = st.builds(
    lambda *fields: (".wav", wav(*fields[:4], format_tag=fields[4], declared=fields[5])),
    st.one_of(st.integers(0, 16), st.sampled_from([1999, 2000, 8000, 44100, 768000, 768001]), st.integers(0, 2**32 - 1)),
    st.one_of(st.integers(0, 3), st.integers(0, 65535)),
    st.one_of(st.sampled_from([0, 1, 8, 16, 24, 32, 64]), st.integers(0, 65535)),
    st.binary(max_size=2048),
    st.one_of(st.sampled_from([1, 3, 6, 7, 0x55, 0xFFFE]), st.integers(0, 65535)),
    st.none() | st.integers(0, 2**32 - 1),
)
HOSTILE_PNG = st.builds(
    lambda *fields: (".png", png(*fields)),
    st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)),
    st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)),
    st.sampled_from([0, 1, 2, 3, 4, 8, 16]),
    st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7]),
    st.none() | st.binary(max_size=512),
)
TEXT_BYTES = st.one_of(
    st.binary(max_size=4096).map(lambda b: (".txt", b)),
    st.builds(lambda text, encoding: (".txt", text.encode(encoding, errors="replace")),
              st.text(max_size=2000), st.sampled_from(["utf-8", "utf-16", "utf-32", "latin-1", "cp1252", "utf-8-sig"])),
)
CSV_TEXT = st.builds(
    lambda rows: (".csv", "\n".join(",".join(row) for row in rows).encode("utf-8", errors="surrogatepass")),
    st.lists(st.lists(st.text(max_size=12), max_size=5), max_size=8),
)
TOML_TEXT = st.builds(
    lambda lines: (".toml", "\n".join(lines).encode("utf-8", errors="surrogatepass")),
    st.lists(st.one_of(
        st.sampled_from(["[model]", "[data]", "[train]", "[pairs]", "[data.modalities.image]", "[tasks.label]",
                         "[[tasks]]", "[space]", "[loss]"]),
        st.builds(lambda key, value: f"{key} = {value}",
                  st.sampled_from(["fusion", "train", "label", "column", "encoder", "epochs", "manifest", "folder",
                                   "lr", "batch_size", "seed", "left", "right", "dim", "x"]),
                  st.one_of(st.integers(-2**70, 2**70).map(str), st.floats(allow_nan=True).map(repr),
                            st.text(max_size=10).map(lambda t: '"' + t.replace('"', "").replace("\\", "") + '"'),
                            st.sampled_from(["true", "[]", "{}", "[1, 2]", "nan", "inf", '"../.."']))),
    ), max_size=16),
)
STRATEGIES = {
    "audio": st.one_of(HOSTILE_WAV, mutated("audio")),
    "image": st.one_of(HOSTILE_PNG, mutated("image")),
    "video": mutated("video"),
    "text": st.one_of(TEXT_BYTES, mutated("text")),
    "manifest": st.one_of(CSV_TEXT, mutated("manifest"), st.binary(max_size=1024).map(lambda b: (".csv", b))),
    "config": st.one_of(TOML_TEXT, mutated("config"), st.binary(max_size=1024).map(lambda b: (".toml", b))),
}
EXAMPLES = {"audio": 700, "image": 600, "video": 150, "text": 400, "manifest": 300, "config": 400}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@pytest.mark.parametrize("reader", READERS)
def test_reader_keeps_the_rule_on_hostile_inputs(reader, scratch):
    failures: list[str] = []

    @settings(FUZZ, max_examples=EXAMPLES[reader])
    @given(STRATEGIES[reader])
    def run(case):
        suffix, data = case
        path = scratch / f"{reader}{suffix}"
        path.write_bytes(data)
        judged = outcome(reader, path)
        if not judged.ok:
            failures.append(f"{judged.what} <- {data[:64]!r}... ({len(data)} bytes)")
        assert judged.ok, judged.what

    run()
    assert not failures


def test_the_kept_corpus_replays_clean():
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "README.md")
    assert len(files) >= 8, "the corpus is kept under tests/fuzz_corpus/<reader>/"
    bad = []
    for path in files:
        reader = path.parent.name
        assert reader in READERS, path
        assert path.stat().st_size <= 64 * 1024, f"{path}: the corpus keeps small files only"
        judged = outcome(reader, path)
        if not judged.ok:
            bad.append(f"{path.relative_to(CORPUS)}: {judged.what}")
    assert not bad, bad
