"""Log-mel spectrogram in plain torch (torchaudio does not install here), padding-aware.

Frames are taken without centring, so a frame is valid only when its whole window lies inside the
valid samples; invalid frames are set to the silence level. Padding a clip therefore never changes
the spectrogram of the clip itself, which keeps masked encoders padding-invariant.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

SILENCE = -1.0  # the normalised value of a frame with no energy (log10 floor -10 -> -1)


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_fft: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters, each normalised to unit area (Slaney)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    edges = mel_to_hz(np.linspace(hz_to_mel(f_min), hz_to_mel(f_max), n_mels + 2))
    bins = np.linspace(0.0, sample_rate / 2, n_fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= (2.0 / (upper - lower))  # equal area, so wide high filters are not louder
    return filters.astype(np.float32)


class LogMel(nn.Module):
    """waveform (B, N) at `sample_rate` -> normalised log-mel (B, n_mels, F) and frame mask (B, F)."""

    def __init__(self, sample_rate: int = 16_000, n_fft: int = 400, hop: int = 160, n_mels: int = 64,
                 f_min: float = 0.0, f_max: float | None = None):
        super().__init__()
        self.n_fft, self.hop, self.n_mels = n_fft, hop, n_mels
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        filters = torch.from_numpy(mel_filterbank(n_fft, n_mels, sample_rate, f_min, f_max))
        self.register_buffer("filters", filters, persistent=False)

    def frames_for(self, samples: Tensor) -> Tensor:
        """How many whole frames fit in each clip's valid length (at least 1)."""
        return (1 + (samples - self.n_fft).clamp(min=0) // self.hop).long()

    def forward(self, waveform: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if waveform.dim() != 2:
            raise ValueError(f"waveform must be (B, N) mono, got {tuple(waveform.shape)}")
        waveform = waveform.float()
        if mask is not None:
            if mask.shape != waveform.shape:
                raise ValueError(f"audio mask must match the waveform {tuple(waveform.shape)}, got {tuple(mask.shape)}")
            waveform = waveform * mask
            lengths = mask.long().sum(dim=1)
        else:
            lengths = torch.full((waveform.shape[0],), waveform.shape[1], device=waveform.device)
        if waveform.shape[1] < self.n_fft:
            waveform = nn.functional.pad(waveform, (0, self.n_fft - waveform.shape[1]))
        spectrum = torch.stft(waveform, self.n_fft, self.hop, window=self.window, center=False, return_complex=True)
        power = spectrum.abs().pow(2)  # (B, n_fft//2+1, F)
        mel = torch.einsum("mf,bft->bmt", self.filters, power)
        logmel = (torch.log10(mel.clamp(min=1e-10)) + 5.0) / 5.0
        count = power.shape[-1]
        valid_frames = self.frames_for(lengths) * (lengths > 0)
        frame_mask = torch.arange(count, device=waveform.device)[None] < valid_frames[:, None]
        logmel = torch.where(frame_mask[:, None, :], logmel, torch.full_like(logmel, SILENCE))
        return logmel, frame_mask


def pad_frames(logmel: Tensor, frame_mask: Tensor, multiple: int) -> tuple[Tensor, Tensor]:
    """Pad the time axis with silence up to a multiple of `multiple` frames."""
    extra = (-logmel.shape[-1]) % multiple
    if extra:
        logmel = nn.functional.pad(logmel, (0, extra), value=SILENCE)
        frame_mask = nn.functional.pad(frame_mask, (0, extra), value=False)
    return logmel, frame_mask


def pool_mask(frame_mask: Tensor, stride: int) -> Tensor:
    """A token covering `stride` frames is valid when any of them is (frames already padded)."""
    batch, frames = frame_mask.shape
    return frame_mask.view(batch, frames // stride, stride).any(dim=-1)
