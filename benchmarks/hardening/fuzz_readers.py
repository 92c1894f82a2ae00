"""Fuzz every reader: >= 100,000 inputs each, coverage-guided (atheris / libFuzzer) from the seeds and
the kept corpus, then structure-aware (hypothesis, fresh randomness); prints inputs, failures and
speed per reader.

    .venv/bin/python -m benchmarks.hardening.fuzz_readers [--runs 100000] [--readers audio image ...]
        [--engine atheris hypothesis] [--jobs 2]

The rule is `benchmarks.common.hostile.outcome`: a payload that keeps its invariants, or one of
Sensorium's own errors. Each reader runs in its own process; its peak resident memory (VmHWM, which
only rises) is checked after every input against the input's starting RSS plus `READ_MEMORY_BOUND`
(512 MB), and an address-space limit (baseline + 4 GB) turns an absurd allocation attempt into a
MemoryError: both count as failures. Failing inputs are written to `--out` (default
`fuzz-crashes/<reader>/`); fix the reader, then keep the file in `tests/fuzz_corpus/<reader>/`.
atheris needs `pip install -e '.[fuzz]'` (a CPython 3.11 wheel exists for Linux); without it only
hypothesis runs.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common.hostile import READERS

CORPUS = Path(__file__).resolve().parents[2] / "tests" / "fuzz_corpus"

_CHILD = r"""
import json, os, resource, sys, time, hashlib
from pathlib import Path
engine, reader, runs, out, scratch = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]), Path(sys.argv[5])
if engine == "atheris":  # instrument our code and the pure-Python parsers before anything imports them
    import atheris
    with atheris.instrument_imports(include=["sensorium", "PIL", "charset_normalizer", "csv", "tomllib"]):
        import sensorium.readers, sensorium.align.data, sensorium.align.job, sensorium.training.config
from benchmarks.common import hostile
from sensorium.readers.limits import READ_MEMORY_BOUND
seeds = hostile.seeds()[reader]
suffixes = sorted({s for s, _ in seeds})
state = {"runs": 0, "failed": 0, "refused": 0, "kinds": {}}
def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
def reset_peak():
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
def judge(suffix, data):
    path = scratch / f"input{suffix}"
    path.write_bytes(data)
    before = rss()
    result = hostile.outcome(reader, path)
    # VmHWM only rises: when it shows more than the budget above this input's start, the input is run
    # again from a reset peak, so memory that an earlier one left resident (glibc keeps freed heap)
    # is not charged to it
    if result.ok and baseline is not None and peak_rss() - before > READ_MEMORY_BOUND:
        reset_peak()
        before = rss()
        result = hostile.outcome(reader, path)
        grown = peak_rss() - before
        if result.ok and grown > READ_MEMORY_BOUND:
            result = hostile.Outcome(False, f"over budget: {grown / 2**20:.0f} MB resident")
    state["runs"] += 1
    if result.ok:
        state["refused"] += result.what.startswith("refused")
        return
    state["failed"] += 1
    kind = result.what.split(":")[0]
    state["kinds"][kind] = state["kinds"].get(kind, 0) + 1
    out.mkdir(parents=True, exist_ok=True)
    (out / (hashlib.sha256(data).hexdigest()[:16] + suffix)).write_bytes(data)
    (out / "failures.txt").open("a").write(f"{result.what}\n")
def vm():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
baseline = None
for suffix, data in seeds:  # warm every library before the limits
    judge(suffix, data)
reset_peak()
baseline = peak_rss()
# Resident memory is what the budget is about (checked per input above); the address-space limit only
# turns an absurd allocation attempt (gigabytes) into a MemoryError. It leaves room for address space
# that decoders reserve without using (thread arenas, and ~0.5-2.5 MB that libsndfile and FFmpeg
# leave mapped per malformed FLAC, never touched).
limit = vm() + 8 * READ_MEMORY_BOUND
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
began = time.perf_counter()
def report():
    state["seconds"] = time.perf_counter() - began
    (scratch / "state.json").write_text(json.dumps(state))
if engine == "hypothesis":
    from hypothesis import HealthCheck, given, settings
    sys.path.insert(0, str(Path.cwd() / "tests"))
    from test_fuzz import STRATEGIES
    @settings(max_examples=runs, database=None, deadline=None, phases=["generate"],
              suppress_health_check=list(HealthCheck))
    @given(STRATEGIES[reader])
    def run(case):
        judge(*case)
    run()
    report()
else:
    def one(data):
        suffix = suffixes[data[0] % len(suffixes)] if data else suffixes[0]
        judge(suffix, data[1:])
        if state["runs"] % 1000 == 0 or state["runs"] >= runs:
            report()
    corpus = scratch / "corpus"
    corpus.mkdir(exist_ok=True)
    for index, (suffix, data) in enumerate(seeds):
        (corpus / f"seed{index}").write_bytes(bytes([suffixes.index(suffix)]) + data)
    kept = Path(sys.argv[6]) / reader
    for index, path in enumerate(sorted(kept.glob("*")) if kept.is_dir() else []):
        suffix = path.suffix if path.suffix in suffixes else suffixes[0]
        (corpus / f"kept{index}").write_bytes(bytes([suffixes.index(suffix)]) + path.read_bytes())
    atheris.Setup([sys.argv[0], str(corpus), f"-runs={runs}", "-max_len=65536", "-rss_limit_mb=0",
                   "-print_final_stats=0", "-close_fd_mask=3"], one)
    atheris.Fuzz()
"""


def fuzz(engine: str, reader: str, runs: int, out: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{reader}-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None) as tmp:
        began = time.perf_counter()
        # glibc reserves 64 MB of address space per thread arena (FFmpeg decodes on threads): two arenas
        # keep the address-space limit about memory actually used
        env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
        child = subprocess.run([sys.executable, "-c", _CHILD, engine, reader, str(runs), str(out / reader), tmp, str(CORPUS)],
                               capture_output=True, text=True, env=env)
        state_file = Path(tmp) / "state.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {"runs": 0, "failed": 0, "kinds": {}}
        state["wall"] = time.perf_counter() - began
        if child.returncode not in (0,) and state["runs"] < runs:
            state["crash"] = (child.stderr.strip().splitlines() or [f"exit {child.returncode}"])[-1][:200]
        return state


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--readers", nargs="+", default=list(READERS), choices=READERS)
    parser.add_argument("--engine", nargs="+", default=["atheris", "hypothesis"], choices=["atheris", "hypothesis"])
    parser.add_argument("--jobs", type=int, default=2, help="readers fuzzed at once, one process each")
    parser.add_argument("--out", type=Path, default=Path("fuzz-crashes"))
    args = parser.parse_args()
    engines = list(args.engine)
    if "atheris" in engines:
        try:
            import atheris  # noqa: F401
        except ImportError:
            print("atheris is not installed (pip install -e '.[fuzz]'): hypothesis only")
            engines.remove("atheris")
    print(f"{args.runs:,} inputs per reader and engine; {args.jobs} at once")
    print("| reader | engine | inputs | failures | refused | inputs/s | wall |")
    print("|---|---|---|---|---|---|---|")
    jobs = [(engine, reader) for engine in engines for reader in args.readers]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = pool.map(lambda job: (job, fuzz(job[0], job[1], args.runs, args.out / job[0])), jobs)
        for (engine, reader), state in results:
            failures = state["failed"] + (1 if "crash" in state else 0)
            detail = f" ({', '.join(f'{k}: {v}' for k, v in state.get('kinds', {}).items())}{'; ' + state['crash'] if 'crash' in state else ''})" if failures else ""
            speed = state["runs"] / state["seconds"] if state.get("seconds") else 0.0
            print(f"| {reader} | {engine} | {state['runs']:,} | **{failures}**{detail} | {state.get('refused', 0):,} | "
                  f"{speed:,.0f} | {state['wall']:.0f} s |", flush=True)


if __name__ == "__main__":
    main()
