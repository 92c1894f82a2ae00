"""Trainable encoders: one output type, correct shapes, padding never leaks, tokenizer round-trips."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sensorium import encoders
from sensorium.encoders import EncoderOutput
from sensorium.encoders.audio_frontend import LogMel, mel_filterbank
from sensorium.encoders.frozen import FrozenEncoder
from sensorium.encoders.text_tokenizer import TextTokenizer
from sensorium.errors import ConfigError, ReadError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

CORPUS = [
    "A man riding a wave on top of a surfboard.",
    "A black and white cat sleeping on a laptop keyboard.",
    "Two giraffes standing next to each other in a field.",
    "A plate of food with broccoli, rice and a piece of chicken.",
    "A red double decker bus driving down a city street.",
    "A woman holding an umbrella while walking in the rain.",
    "A dog catching a frisbee in a grassy park.",
    "Several people skiing down a snowy mountain slope.",
    "A kitchen with a stove, a sink and wooden cabinets.",
    "A train travelling past a station platform at night.",
] * 3


def build(name: str, **kwargs):
    torch.manual_seed(0)
    return encoders.create(name, **kwargs).eval()


# name, constructor kwargs, a batch of 2 inputs, expected (T, D)
CASES = {
    "image_cnn": (dict(in_channels=1, dim=24), lambda: torch.rand(2, 1, 28, 28), (9, 24)),
    "image_vit": (dict(image_size=28, patch_size=7, in_channels=1, dim=24, depth=1, heads=2),
                  lambda: torch.rand(2, 1, 28, 28), (16, 24)),
    "audio_cnn": (dict(dim=24, n_mels=32), lambda: torch.randn(2, 8000) * 0.1, (6, 24)),
    "audio_ast": (dict(dim=24, depth=1, heads=2, n_mels=32), lambda: torch.randn(2, 8000) * 0.1, (2 * 12, 24)),
    "text_transformer": (dict(vocab_size=50, dim=24, depth=1, heads=2), lambda: torch.randint(1, 50, (2, 11)), (11, 24)),
    "series_cnn": (dict(in_channels=6, dim=24), lambda: torch.randn(2, 40, 6), (40, 24)),
    "series_transformer": (dict(in_channels=6, dim=24, depth=1, heads=2), lambda: torch.randn(2, 40, 6), (40, 24)),
    "video_factorised": (dict(image_size=16, patch_size=8, dim=24, spatial_depth=1, temporal_depth=1, heads=2),
                         lambda: torch.rand(2, 5, 3, 16, 16), (5, 24)),
}


def test_registry_lists_every_encoder_and_rejects_unknown_names():
    assert set(encoders.available()) == set(CASES) | {"frozen"}
    with pytest.raises(ConfigError, match="'image_resnet'"):
        encoders.create("image_resnet")
    with pytest.raises(ConfigError, match="series_cnn"):
        encoders.create("series_cnn", channels=3)  # wrong keyword


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_encoder_returns_tokens_mask_and_pooled_of_its_output_dim(name):
    kwargs, make_input, (length, dim) = CASES[name]
    model = build(name, **kwargs)
    out = model(make_input())
    assert isinstance(out, EncoderOutput)
    assert model.output_dim == dim
    assert out.tokens.shape == (2, length, dim) and out.mask.shape == (2, length) and out.pooled.shape == (2, dim)
    assert out.mask.all() and torch.isfinite(out.tokens).all()
    # gradients reach the parameters (they are trainable from scratch)
    out.pooled.sum().backward()
    assert sum(p.grad.abs().sum() for p in model.parameters() if p.grad is not None) > 0


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_sample_marked_absent_pools_to_zeros_without_nan(name):
    kwargs, make_input, _ = CASES[name]
    model = build(name, **kwargs)
    x = make_input()
    absent = torch.tensor([True, False])
    if name in ("audio_cnn", "audio_ast"):
        mask = absent[:, None].expand_as(x)  # audio masks are per sample point
    else:
        mask = absent
    with torch.no_grad():
        out = model(x, mask)
        alone = model(x[:1])
    assert not out.mask[1].any() and torch.all(out.pooled[1] == 0)
    assert torch.isfinite(out.tokens).all()
    torch.testing.assert_close(out.pooled[0], alone.pooled[0], atol=1e-5, rtol=1e-4)


def pad_and_compare(model, short, long, pad_value=0.0):
    """Encode `short` alone and right-padded in a batch with `long`: the valid part must not change."""
    length = long.shape[1]
    padded = torch.full((1, length, *short.shape[2:]), pad_value, dtype=short.dtype)
    padded[:, : short.shape[1]] = short
    batch = torch.cat([padded, long])
    mask = torch.zeros(2, length, dtype=torch.bool)
    mask[0, : short.shape[1]] = True
    mask[1] = True
    with torch.no_grad():
        alone = model(short)
        together = model(batch, mask)
    valid = alone.tokens.shape[1]
    torch.testing.assert_close(together.pooled[0], alone.pooled[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(together.tokens[0, :valid], alone.tokens[0], atol=1e-5, rtol=1e-4)
    assert together.mask[0].sum() == valid
    return together


@pytest.mark.parametrize("name", ["series_transformer", "series_cnn"])
def test_series_encoders_ignore_padding(name):
    model = build(name, **CASES[name][0])
    generator = torch.Generator().manual_seed(5)
    pad_and_compare(model, torch.randn(1, 23, 6, generator=generator), torch.randn(1, 40, 6, generator=generator), 7.0)


def test_text_transformer_ignores_padding_and_follows_the_pad_id():
    model = build("text_transformer", **CASES["text_transformer"][0])
    short, long = torch.randint(1, 50, (1, 6)), torch.randint(1, 50, (1, 15))
    pad_and_compare(model, short, long)
    padded = torch.cat([short, torch.zeros(1, 9, dtype=torch.long)], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded).pooled, model(short).pooled, atol=1e-5, rtol=1e-4)


def test_video_encoder_ignores_padding_frames():
    model = build("video_factorised", **CASES["video_factorised"][0])
    generator = torch.Generator().manual_seed(6)
    pad_and_compare(model, torch.rand(1, 3, 3, 16, 16, generator=generator),
                    torch.rand(1, 7, 3, 16, 16, generator=generator), pad_value=0.5)


def test_audio_transformer_ignores_padding_even_mid_patch():
    model = build("audio_ast", **CASES["audio_ast"][0])
    generator = torch.Generator().manual_seed(7)
    # 5,000 samples -> 29 frames: the last time patch is only partly real
    short, long = torch.randn(1, 5000, generator=generator) * 0.1, torch.randn(1, 12000, generator=generator) * 0.1
    batch = torch.cat([torch.nn.functional.pad(short, (0, 7000), value=0.3), long])
    mask = torch.ones(2, 12000, dtype=torch.bool)
    mask[0, 5000:] = False
    with torch.no_grad():
        alone, together = model(short), model(batch, mask)
    torch.testing.assert_close(together.pooled[0], alone.pooled[0], atol=1e-5, rtol=1e-4)
    assert together.mask[0].sum() == alone.mask[0].sum() == 2 * math.ceil(29 / 4)


def test_audio_cnn_masks_the_time_steps_of_padding():
    model = build("audio_cnn", **CASES["audio_cnn"][0])
    batch = torch.randn(2, 16000) * 0.1
    mask = torch.ones(2, 16000, dtype=torch.bool)
    mask[0, 4000:] = False  # 23 frames of 98 -> 3 of 13 tokens
    with torch.no_grad():
        out = model(batch, mask)
    assert out.tokens.shape[1] == 13 and out.mask.sum(1).tolist() == [3, 13]
    assert torch.all(out.tokens[0, 3:] == 0)


def test_mel_filterbank_and_log_mel_locate_a_pure_tone():
    filters = mel_filterbank(400, 64, 16000)
    assert filters.shape == (64, 201) and (filters >= 0).all()
    peaks = filters.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0)  # centres rise with the mel index
    frontend = LogMel(n_mels=64)
    t = torch.arange(16000) / 16000
    for hz in (300.0, 1000.0, 4000.0):
        logmel, frames = frontend(torch.sin(2 * math.pi * hz * t)[None])
        assert logmel.shape == (1, 64, 98) and frames.all()
        loudest = int(logmel[0].mean(dim=1).argmax())
        centre = peaks[loudest] * 16000 / 400
        assert abs(centre - hz) / hz < 0.12, (hz, centre)
    silence, _ = frontend(torch.zeros(1, 1600))
    assert torch.all(silence == -1.0)


def test_log_mel_frames_of_a_clip_do_not_change_when_it_is_padded():
    frontend = LogMel()
    clip = torch.randn(1, 3333) * 0.2
    alone, frames_alone = frontend(clip)
    padded = torch.cat([clip, torch.randn(1, 2000)], dim=1)
    mask = torch.zeros_like(padded, dtype=torch.bool)
    mask[:, :3333] = True
    together, frames = frontend(padded, mask)
    count = int(frames_alone.sum())
    assert count == 1 + (3333 - 400) // 160 == int(frames.sum())
    torch.testing.assert_close(together[..., :count], alone[..., :count])
    assert torch.all(together[..., count:] == -1.0)


@pytest.mark.skipif(not (DATA / "fsdd").is_dir(), reason="shared FSDD data not present")
def test_audio_encoders_on_real_spoken_digits():
    import soundfile
    import soxr

    clips = []
    for path in sorted((DATA / "fsdd").rglob("*.wav"))[:3]:
        samples, rate = soundfile.read(path, dtype="float32")
        clips.append(torch.from_numpy(soxr.resample(samples, rate, 16000).astype(np.float32)))
    lengths = [len(c) for c in clips]
    batch = torch.nn.utils.rnn.pad_sequence(clips, batch_first=True)
    mask = torch.arange(batch.shape[1])[None] < torch.tensor(lengths)[:, None]
    logmel, frames = LogMel()(batch, mask)
    assert frames.sum(1).tolist() == [1 + (n - 400) // 160 for n in lengths]
    assert (logmel.mean(dim=(1, 2)) > -1.0).all()  # speech is louder than silence
    for name in ("audio_cnn", "audio_ast"):
        out = build(name, dim=32, **({"depth": 1} if name == "audio_ast" else {}))(batch, mask)
        assert torch.isfinite(out.pooled).all() and out.pooled.shape == (3, 32)


def test_tokenizer_trains_saves_and_reloads_identically(tmp_path):
    tokenizer = TextTokenizer.train(CORPUS, vocab_size=300, min_frequency=1)
    texts = ["A dog riding a surfboard.", "Giraffes sleeping on a snowy keyboard at night, near the station!"]
    ids, mask = tokenizer.encode(texts)
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert mask[0].sum() < mask[1].sum() and torch.all(ids[~mask] == tokenizer.pad_id)
    assert tokenizer.decode(ids[0][mask[0]].tolist()) == "a dog riding a surfboard."
    written = tokenizer.save(tmp_path)
    assert written.name == "tokenizer.json" and json.loads(written.read_text())["model"]["type"] == "WordPiece"
    again = TextTokenizer.load(written)
    assert again.vocab_size == tokenizer.vocab_size
    ids2, mask2 = again.encode(texts)
    assert torch.equal(ids, ids2) and torch.equal(mask, mask2)
    short, _ = tokenizer.encode(texts, max_length=5)
    assert short.shape[1] == 5 and short[1, -1] == tokenizer.tokenizer.token_to_id("[SEP]")


def test_tokenizer_load_errors_name_the_file(tmp_path):
    with pytest.raises(ReadError, match="no tokenizer file"):
        TextTokenizer.load(tmp_path / "missing.json")
    broken = tmp_path / "tokenizer.json"
    broken.write_text("{not json")
    with pytest.raises(ReadError, match="tokenizer.json"):
        TextTokenizer.load(tmp_path)


@pytest.mark.skipif(not (DATA / "coco_mini").is_dir(), reason="shared COCO captions not present")
def test_tokenizer_and_text_transformer_on_real_captions():
    captions = [a["caption"] for a in json.loads((DATA / "coco_mini" / "captions_train2017.json").read_text())["annotations"]]
    tokenizer = TextTokenizer.train(iter(captions), vocab_size=800)
    ids, mask = tokenizer.encode(captions[:8], max_length=32)
    unknown = tokenizer.tokenizer.token_to_id("[UNK]")
    assert (ids[mask] == unknown).float().mean() < 0.02
    model = build("text_transformer", vocab_size=tokenizer.vocab_size, dim=32, depth=1, heads=2,
                  pad_id=tokenizer.pad_id)
    with torch.no_grad():
        batch = model(ids, mask)
        one = model(*tokenizer.encode(captions[:1], max_length=32))
    torch.testing.assert_close(batch.pooled[0], one.pooled[0], atol=1e-5, rtol=1e-4)


def test_frozen_encoder_wraps_a_vector_table_and_a_callable():
    table = torch.randn(10, 5)
    encoder = encoders.create("frozen", features=lambda index: table[index], output_dim=5)
    lookup = FrozenEncoder.from_table(table)
    for model in (encoder, lookup):
        out = model(torch.tensor([3, 7]), torch.tensor([True, False]))
        assert out.tokens.shape == (2, 1, 5) and out.mask.tolist() == [[True], [False]]
        torch.testing.assert_close(out.pooled[0], table[3])
        assert torch.all(out.pooled[1] == 0) and not out.pooled.requires_grad
    assert list(lookup.parameters()) == [] and "features.vectors" in lookup.state_dict()
    numpy_features = FrozenEncoder(lambda batch: np.ones((len(batch), 4)), 4)(["a", "b", "c"])
    assert numpy_features.pooled.dtype == torch.float32 and numpy_features.pooled.shape == (3, 4)
    with pytest.raises(ValueError, match=r"\(B, 6\)"):
        FrozenEncoder(lambda batch: np.ones((len(batch), 4)), 6)(["a"])


@pytest.mark.slow
def test_frozen_encoder_stands_in_for_the_pretrained_text_expert():
    from sensorium.experts.text import TextEncoder

    expert = FrozenEncoder(TextEncoder().encode, 384)
    out = expert(["a dog runs on the beach", "a puppy running along the sand", "a tax form"])
    assert out.tokens.shape == (3, 1, 384)
    similarity = out.pooled @ out.pooled.T
    assert similarity[0, 1] > similarity[0, 2] + 0.2
