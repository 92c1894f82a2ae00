"""Text-to-image training speed: samples/s of one training step (forward, backward, AdamW, EMA) per UNet shape.

    .venv/bin/python -m benchmarks.speed.imagine_training [--size 64] [--channels 3] [--batch 64] [--steps 12]

Random pictures and prompt embeddings (speed does not depend on content), bf16 autocast as `sensorium
train` uses, the threads torch has. Each shape warms up for 2 steps, then STEPS are timed. `patch` 2 folds
2 x 2 pixel squares into channels, so the UNet runs at half the side; `tokens` adds cross-attention
over the prompt's token states.
"""
from __future__ import annotations

import argparse
import time

import torch

from sensorium.diffusion import ImagineConfig, TextToImage, condition_width
from sensorium.training.imagining import DiffusionObjective
from sensorium.training.evaluate import precision

# (patch, widths, tokens read by cross-attention)
SHAPES = [(1, [32, 64, 64], 0), (2, [32, 64, 64], 0), (2, [48, 96, 96], 0), (2, [64, 96, 128], 0),
          (2, [64, 128, 128], 0), (2, [64, 96, 128], 24)]


def step_rate(patch: int, widths: list[int], tokens: int, size: int, channels: int, batch: int,
              steps: int) -> tuple[float, int]:
    torch.manual_seed(0)
    model = TextToImage(ImagineConfig(size=size, image_size=size, channels=channels, widths=widths, patch=patch,
                                     tokens=tokens))
    objective = DiffusionObjective(model, 0.999, 0.1)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    batch_data = {"pixels": torch.rand(batch, channels, size, size) * 2 - 1, "prompts": torch.randn(batch, *condition_width(model.config))}
    began = 0.0
    for step in range(steps + 2):
        if step == 2:
            began = time.perf_counter()
        with precision(True):
            loss = objective(batch_data)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        objective.after_step()
    return batch * steps / (time.perf_counter() - began), sum(p.numel() for p in model.parameters())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args(argv)
    print(f"{args.size} px, {args.channels} channels, batches of {args.batch}, {torch.get_num_threads()} threads, bf16\n")
    print("| patch | widths | tokens | parameters | samples/s | vs patch 1 [32, 64, 64] |\n|---|---|---|---|---|---|")
    base = None
    for patch, widths, tokens in SHAPES:
        rate, parameters = step_rate(patch, widths, tokens, args.size, args.channels, args.batch, args.steps)
        base = base or rate
        print(f"| {patch} | {widths} | {tokens or '-'} | {parameters / 1e6:.2f} M | {rate:.1f} | {rate / base:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
