"""Calibration, conformal sets, abstention and per-speaker gaps of spoken-digit classification (FSDD).

    .venv/bin/python -m benchmarks.trust.fsdd_probabilities     # once: ~20-45 min, cached
    .venv/bin/python -m benchmarks.trust.fsdd_trust [--confidence 0.9] [--repeats 50]

Every figure is on speakers the calibration never heard unless it says "exchangeable":
- calibration: leave one speaker out: the temperature is fitted on the other three speakers' clips
  and measured on the fourth (ECE with 15 equal-width bins, adaptive ECE, NLL, Brier);
- conformal sets at `--confidence`: "exchangeable" = random halves of all 2,000 clips, repeated;
  "new speaker" = calibrated on three speakers, tested on the fourth, marginal, per label
  (Mondrian by label) and speaker-robust (the largest of the per-speaker thresholds);
- abstention: on the held-out speaker, accuracy of the most confident 90% (risk-coverage), and of
  the answers `classify --abstain` gives (set of one label at the confidence asked);
- per speaker (fairness): error rate, ECE after calibration, and coverage of marginal against
  speaker-conditional (Mondrian by speaker) sets in the exchangeable split.
"""
from __future__ import annotations

import argparse

import numpy as np

from benchmarks.trust.fsdd_probabilities import SPEAKERS, load
from sensorium.trust import calibration, conformal


def calibrated_on(probs: np.ndarray, truth: np.ndarray, fit: np.ndarray) -> tuple[np.ndarray, float]:
    logits = calibration.as_logits(probs)
    temperature = calibration.fit_temperature(logits[fit], truth[fit])
    return calibration.scale(logits, temperature), temperature


def robust_threshold(scores: np.ndarray, groups: np.ndarray, confidence: float) -> float:
    """The largest per-group conformal threshold: a shift as large as the one between any calibration
    group and the rest is still covered (a conservative, distribution-shift-aware choice)."""
    return max(conformal.threshold(scores[groups == g], confidence) for g in np.unique(groups))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--takes", type=int, default=50)
    parser.add_argument("--confidence", type=float, default=0.9)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--diagram", type=str, default=None,
                        help="also draw the reliability diagram of the four held-out speakers (PNG), before and after")
    args = parser.parse_args()
    data = load(args.takes)
    probs, truth, speaker = data["probs"], data["truth"].astype(int), data["speaker"].astype(str)
    level = args.confidence
    rng = np.random.default_rng(0)

    print(f"## Calibration, leave one speaker out ({len(truth)} clips, 10 digit words)\n")
    print("| held-out speaker | T | accuracy | ECE before | ECE after | adaptive ECE before / after | NLL before / after | Brier before / after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    held_out = {}
    for who in SPEAKERS:
        test, fit = speaker == who, speaker != who
        scaled, temperature = calibrated_on(probs, truth, fit)
        before, after = calibration.measures(probs[test], truth[test]), calibration.measures(scaled[test], truth[test])
        held_out[who] = (scaled, fit, test)
        print(f"| {who} | {temperature:.3f} | {before['accuracy']:.3f} | {before['ece']:.4f} | **{after['ece']:.4f}** | "
              f"{before['adaptive_ece']:.4f} / {after['adaptive_ece']:.4f} | {before['nll']:.4f} / {after['nll']:.4f} | "
              f"{before['brier']:.4f} / {after['brier']:.4f} |")
    pooled_before = calibration.ece(probs, truth)
    pooled_after = calibration.ece(np.concatenate([held_out[w][0][held_out[w][2]] for w in SPEAKERS]),
                                   np.concatenate([truth[held_out[w][2]] for w in SPEAKERS]))
    print(f"| all four, each held out | - | {np.mean(probs.argmax(1) == truth):.3f} | {pooled_before:.4f} | "
          f"**{pooled_after:.4f}** | | | |\n")
    if args.diagram:
        from sensorium.trust.diagram import reliability_diagram

        order = np.concatenate([np.flatnonzero(held_out[w][2]) for w in SPEAKERS])
        after = np.concatenate([held_out[w][0][held_out[w][2]] for w in SPEAKERS])
        reliability_diagram(args.diagram, [("raw", probs[order], truth[order]),
                                           ("each speaker held out", after, truth[order])])

    print(f"## Conformal sets at {level:.0%}\n")
    print("| setting | coverage | mean set size | sets of one label |")
    print("|---|---:|---:|---:|")
    logits = calibration.as_logits(probs)
    covered, sizes, singles = [], [], []
    for _ in range(args.repeats):
        order = rng.permutation(len(truth))
        cal, test = order[: len(truth) // 2], order[len(truth) // 2:]
        temperature = calibration.fit_temperature(logits[cal], truth[cal])
        scaled = calibration.scale(logits, temperature)
        member = conformal.ConformalSets(conformal.scores(scaled[cal], truth[cal]), truth[cal], 10).member(scaled[test], level)
        covered.append(conformal.coverage(member, truth[test]))
        sizes.append(member.sum(1).mean())
        singles.append(np.mean(member.sum(1) == 1))
    print(f"| exchangeable (random halves, {args.repeats} repeats) | {np.mean(covered):.4f} ± {np.std(covered):.4f} | "
          f"{np.mean(sizes):.2f} | {np.mean(singles):.3f} |")
    nonempty = []
    for _ in range(args.repeats):
        order = rng.permutation(len(truth))
        cal, test = order[: len(truth) // 2], order[len(truth) // 2:]
        scaled = calibration.scale(logits, calibration.fit_temperature(logits[cal], truth[cal]))
        member = conformal.ConformalSets(conformal.scores(scaled[cal], truth[cal]), truth[cal], 10).member(
            scaled[test], level, nonempty=True)
        nonempty.append((conformal.coverage(member, truth[test]), member.sum(1).mean()))
    print(f"| exchangeable, never-empty sets | {np.mean([c for c, _ in nonempty]):.4f} | "
          f"{np.mean([z for _, z in nonempty]):.2f} | - |")
    for variant in ("marginal", "per label (Mondrian)", "speaker-robust (max over calibration speakers)",
                    "never-empty (best guess always in)"):
        rows = []
        for who in SPEAKERS:
            scaled, fit, test = held_out[who]
            cal_scores = conformal.scores(scaled[fit], truth[fit])
            if variant == "marginal":
                member = conformal.ConformalSets(cal_scores, truth[fit], 10).member(scaled[test], level)
            elif variant.startswith("per label"):
                member = conformal.ConformalSets(cal_scores, truth[fit], 10, mondrian=True).member(scaled[test], level)
            elif variant.startswith("never-empty"):
                member = conformal.ConformalSets(cal_scores, truth[fit], 10).member(scaled[test], level, nonempty=True)
            else:
                q = robust_threshold(cal_scores, speaker[fit], level)
                member = (1 - scaled[test]) <= q
            rows.append((who, conformal.coverage(member, truth[test]), member.sum(1).mean(), np.mean(member.sum(1) == 1)))
        worst = min(rows, key=lambda r: r[1])
        print(f"| new speaker, {variant} | " + ", ".join(f"{w} {c:.3f}" for w, c, _, _ in rows) +
              f" (worst **{worst[1]:.3f}**) | {np.mean([r[2] for r in rows]):.2f} | {np.mean([r[3] for r in rows]):.3f} |")

    print("\n## Abstention on the held-out speaker\n")
    print(f"| held-out speaker | accuracy, all | accuracy of the most confident 90% | `--abstain` at {level:.0%}: answered | accuracy when answered |")
    print("|---|---:|---:|---:|---:|")
    for who in SPEAKERS:
        scaled, fit, test = held_out[who]
        sets = conformal.ConformalSets(conformal.scores(scaled[fit], truth[fit]), truth[fit], 10).member(scaled[test], level)
        answered = sets.sum(1) == 1
        right = scaled[test].argmax(1) == truth[test]
        print(f"| {who} | {right.mean():.3f} | **{conformal.accuracy_at_coverage(scaled[test], truth[test], 0.9):.4f}** | "
              f"{answered.mean():.3f} | {right[answered].mean() if answered.any() else float('nan'):.4f} |")

    print("\n## Per speaker (fairness)\n")
    print(f"| speaker | error rate | ECE after calibration (held out) | coverage at {level:.0%}, marginal | coverage, Mondrian by speaker |")
    print("|---|---:|---:|---:|---:|")
    per = {who: {"marginal": [], "mondrian": []} for who in SPEAKERS}
    for _ in range(args.repeats):
        cal = np.zeros(len(truth), dtype=bool)
        for who in SPEAKERS:  # half of each speaker's clips calibrate
            mine = np.flatnonzero(speaker == who)
            cal[rng.choice(mine, len(mine) // 2, replace=False)] = True
        temperature = calibration.fit_temperature(logits[cal], truth[cal])
        scaled = calibration.scale(logits, temperature)
        scores = conformal.scores(scaled, truth)
        q_all = conformal.threshold(scores[cal], level)
        for who in SPEAKERS:
            test = ~cal & (speaker == who)
            q_own = conformal.threshold(scores[cal & (speaker == who)], level)
            per[who]["marginal"].append(np.mean(scores[test] <= q_all))
            per[who]["mondrian"].append(np.mean(scores[test] <= q_own))
    errors, eces = {}, {}
    for who in SPEAKERS:
        scaled, _, test = held_out[who]
        errors[who] = 1 - np.mean(scaled[test].argmax(1) == truth[test])
        eces[who] = calibration.ece(scaled[test], truth[test])
        print(f"| {who} | {errors[who]:.3f} | {eces[who]:.4f} | {np.mean(per[who]['marginal']):.3f} | "
              f"{np.mean(per[who]['mondrian']):.3f} |")
    marginal = [np.mean(per[w]["marginal"]) for w in SPEAKERS]
    mondrian = [np.mean(per[w]["mondrian"]) for w in SPEAKERS]
    print(f"| **worst-group gap** | {max(errors.values()) - min(errors.values()):.3f} | "
          f"{max(eces.values()) - min(eces.values()):.4f} | {max(marginal) - min(marginal):.3f} | "
          f"{max(mondrian) - min(mondrian):.3f} |")


if __name__ == "__main__":
    main()
