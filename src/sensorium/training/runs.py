"""A run folder: what `sensorium train` writes and `sensorium evaluate` reads back.

OUT/run.json holds the resolved config, class names and vocabulary sizes, so a run rebuilds its
model from the folder alone; OUT/tokenizers/ holds text tokenizers; OUT/best/ the best weights;
OUT/checkpoint/ the resumable state; OUT/metrics.jsonl one line per epoch; OUT/best/calibration.json
the temperature fitted on the validation set for the best weights (`sensorium.trust.calibration`).
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, ReadError
from .checkpoint import load_weights
from .config import Config, config_from_dict, load_config
from .data import Collate, ItemDataset, TableDataset, load_datasets, open_dataset
from .model import MultimodalModel, build_model

RUN_FILE = "run.json"


def _tokenizers(config: Config, out: Path, train: ItemDataset | TableDataset | None) -> dict[str, Any]:
    """Train (first run) or load (resume, evaluate) a WordPiece tokenizer per text modality."""
    from ..encoders.text_tokenizer import TextTokenizer

    found = {}
    for name, spec in config.data.modalities.items():
        if spec.kind != "text":
            continue
        path = out / "tokenizers" / f"{name}.json"
        if path.is_file() or train is None:
            found[name] = TextTokenizer.load(path)
        else:
            found[name] = TextTokenizer.train(train.texts(name), vocab_size=spec.vocab_size, min_frequency=1)
            found[name].save(path)
    return found


def run_training(config_path: str | Path, out: str | Path, resume: bool = False, *,
                 stop_after_steps: int | None = None) -> dict[str, Any]:
    """Everything `sensorium train` does: read config and data, build the model, train, save."""
    from .distributed import setup, teardown
    from .trainer import Trainer, seed_everything, threads_for

    config, out = load_config(config_path), Path(out)
    if resume and not (out / RUN_FILE).is_file():
        raise ConfigError(f"--resume: {out} holds no run to resume ({RUN_FILE} missing)")
    context = setup()
    try:
        torch.set_num_threads(threads_for(config.train.threads, context.world_size))
        train, validation = load_datasets(config)
        if context.is_main:
            out.mkdir(parents=True, exist_ok=True)
        context.barrier()
        tokenizers = _tokenizers(config, out, train) if context.is_main else {}
        context.barrier()
        if not context.is_main:
            tokenizers = _tokenizers(config, out, None)
        vocab = {name: tok.vocab_size for name, tok in tokenizers.items()}
        classes = train.classes
        seed_everything(config.train.seed)
        model = build_model(config, {task: len(names) for task, names in classes.items()}, vocab)
        if context.is_main and not resume:
            record = {"config": config.to_dict(), "classes": classes, "vocab_sizes": vocab}
            (out / RUN_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
            (out / "metrics.jsonl").unlink(missing_ok=True)
        trainer = Trainer(config, model, train, validation, Collate.for_specs(config.data.modalities, tokenizers),
                          out=out, context=context)
        return trainer.fit(resume=resume, stop_after_steps=stop_after_steps)
    finally:
        teardown(context)


def load_run(out: str | Path, weights: str = "best") -> tuple[Config, MultimodalModel, dict[str, list[str]], Collate]:
    """Rebuild a trained model from its run folder (`weights`: "best" or "checkpoint")."""
    out = Path(out)
    if not (out / RUN_FILE).is_file():
        raise ReadError(out / RUN_FILE, "not a training run folder (run.json missing)")
    try:
        record = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ReadError(out / RUN_FILE, f"not valid JSON ({exc})") from exc
    config = config_from_dict(record["config"])
    tokenizers = _tokenizers(config, out, None)
    classes = record["classes"]
    model = build_model(config, {task: len(names) for task, names in classes.items()}, record["vocab_sizes"])
    path = out / weights / "model.safetensors"
    if weights == "best" and not path.is_file():
        path = out / "checkpoint" / "model.safetensors"
    load_weights(model, path)
    return config, model.eval(), classes, Collate.for_specs(config.data.modalities, tokenizers)


def run_temperature(out: str | Path) -> dict[str, Any] | None:
    """The calibration the trainer stored with the best weights ({"task", "temperature", ...}), or None."""
    path = Path(out) / "best" / "calibration.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        float(record["temperature"]), str(record["task"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ReadError(path, f"not a calibration record ({exc})") from exc
    return record


def evaluate_run(out: str | Path, data: str | Path | None = None, levels=None, batch_size: int | None = None,
                 diagram: str | Path | None = None, bf16: bool | None = None,
                 as_trained: bool = False) -> dict[str, Any]:
    """Metrics, calibration and robustness of a trained run on labelled items: `data` (any source
    `sensorium train` reads), or the config's `data.test` when it is None.
    With a temperature stored by training, calibration is measured before and after it (and drawn as
    a reliability diagram into `diagram`). The noise sweep runs only when `levels` are given: it
    re-scores the whole set once per level and modality and once per missing modality (24 passes
    with MultiBench's 11 levels and two modalities). `bf16` None scores in the precision the run
    trained in (`train.bf16`); True or False overrides it. `batch_size` None scores in the batches the run
    trained in (`train.batch_size`): they are known to fit, and on a CPU a batch whose activations stay
    in the cache is what scores fastest (MultiBench's LeNet pair: 1,760 items/s in batches of 40,
    990-1,230 in batches of 64; `benchmarks/multibench_parity.py`). Unless `as_trained`, each encoder is
    scored in its fastest form that gives the same outputs on the first batch (`training.inference`:
    batch norm folded, channels-last); the report's `encoders` says which, and the time spent choosing
    is part of `predict_seconds`."""
    import time

    from torch.utils.data import DataLoader

    from .evaluate import (bf16_pays, classification_metrics, inference_precision, predict, relative_robustness,
                           robustness)

    from .trainer import threads_for

    config, model, classes, collate = load_run(out)
    torch.set_num_threads(threads_for(config.train.threads))  # as in training: spare threads only spin on a busy CPU
    if data is None:
        if config.data.test is None:
            raise ConfigError("evaluate: give --data, or name the test data as data.test in the run's config")
        data = config.data.test
    dataset = open_dataset(data, config, classes)
    batch_size = batch_size or config.train.batch_size
    if batch_size < 1:
        raise ConfigError(f"evaluate: the batch size must be at least 1, got {batch_size}")
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=collate)
    began = time.perf_counter()
    batches = list(loader) if levels else loader  # the noise sweep walks the batches again; plain scoring streams
    bf16 = bf16_pays(config.train.bf16 if bf16 is None else bf16, "evaluate --bf16" if bf16 else "train.bf16")
    forms = {}
    if not as_trained and len(dataset):
        from .inference import fastest_form

        if levels:  # a list, walked again by the noise sweep
            first = batches[0]
        else:  # a stream: its first batch is scored after choosing on it
            stream = iter(batches)
            first = next(stream)
            batches = itertools.chain([first], stream)
        model, forms = fastest_form(model, first, lambda: inference_precision(bf16))
    logits, labels = predict(model, batches, bf16=bf16)
    seconds = time.perf_counter() - began  # reading and decoding included
    report: dict[str, Any] = {"items": len(dataset), "tasks": {}, "bf16": bf16, "batch_size": batch_size,
                              "predict_seconds": seconds,
                              "items_per_s": len(dataset) / seconds if seconds else 0.0,
                              "encoders": {modality: form.as_dict() for modality, form in forms.items()}}
    for task, names in classes.items():
        report["tasks"][task] = classification_metrics(labels[task].tolist(), logits[task].argmax(1).tolist(), names)
    stored = run_temperature(out)
    if stored is not None and stored["task"] in logits:
        from ..trust import calibration

        raw, truth = logits[stored["task"]].double().numpy(), labels[stored["task"]].numpy().astype(int)
        before, after = calibration.softmax(raw), calibration.scale(raw, stored["temperature"])
        report["calibration"] = {"task": stored["task"], "temperature": stored["temperature"],
                                 "before": calibration.measures(before, truth), "after": calibration.measures(after, truth)}
        if diagram is not None:
            from ..trust.diagram import reliability_diagram

            reliability_diagram(diagram, [("before", before, truth), (f"T = {stored['temperature']:.3g}", after, truth)])
    if levels:
        levels = list(levels)
        main = config.tasks[0].name
        robust = robustness(model, batches, model.modalities, main, levels, bf16=bf16)
        robust["relative"] = {m: relative_robustness(c, levels) for m, c in robust["noise"].items()}
        report["robustness"] = robust
    return report
