"""Observers: modules that watch activations or weights and choose a symmetric scale.

`forward(x)` records statistics and returns `x` unchanged; `calculate_qparams()` turns what was
seen into a float32 scale (one per tensor, or one per channel along `ch_axis`). The zero point is
always 0 (docs/numerics.md §1), so every observer reduces to choosing a clipping threshold `t` and
returns `scale = f32(t / qmax)` with `qmax` 127 for si8 and 32767 for si16. Statistics are
buffers, so `state_dict()` carries them; per-channel buffers take their size from the first batch
and from a loaded state dict.
"""

from __future__ import annotations

import abc
import math

import numpy as np
import torch
from torch import nn

from hbdk_sim.errors import UsageError

QMAX = {"si8": 127, "si16": 32767}
QMIN = {"si8": -128, "si16": -32768}

# An observer that saw only zeros still needs a positive scale; this is the one
# `hbdk_sim.calibration` uses for the same case. Any positive scale represents zeros exactly.
MIN_SCALE = 1e-8


def check_dtype(dtype: str) -> str:
    if dtype not in QMAX:
        raise UsageError(f"expected dtype 'si8' or 'si16' but got {dtype!r}")
    return dtype


def scale_from_threshold(threshold: torch.Tensor, dtype: str) -> torch.Tensor:
    """`f32(t / qmax)` with the division in float64, floored at MIN_SCALE."""
    scale = (threshold.to(torch.float64) / QMAX[dtype]).to(torch.float32)
    return torch.clamp(scale, min=MIN_SCALE)


class ObserverBase(nn.Module, abc.ABC):
    """Common state: the target dtype and, for per-channel observers, the channel axis."""

    # Saved in state_dict metadata; bump it when the buffers change meaning.
    _version = 1

    def __init__(self, dtype: str = "si8", ch_axis: int | None = None) -> None:
        super().__init__()
        self.dtype = check_dtype(dtype)
        self.ch_axis = ch_axis

    @property
    def qmax(self) -> int:
        return QMAX[self.dtype]

    @property
    def qmin(self) -> int:
        return QMIN[self.dtype]

    def calculate_qparams(self) -> torch.Tensor:
        return scale_from_threshold(self.threshold(), self.dtype)

    @abc.abstractmethod
    def threshold(self) -> torch.Tensor:
        """The clipping threshold `t` (float32, one per tensor or per channel)."""

    def _no_data(self) -> RuntimeError:
        return RuntimeError(f"{type(self).__name__} has observed no data; run calibration before asking for a scale")

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        # Per-channel statistics are sized by the data; take the saved shape instead of
        # refusing the load because a fresh observer has not seen a batch yet.
        for name, buf in self._buffers.items():
            saved = state_dict.get(prefix + name)
            if buf is not None and isinstance(saved, torch.Tensor) and saved.shape != buf.shape:
                self._buffers[name] = torch.empty_like(saved, dtype=buf.dtype, device=buf.device)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def extra_repr(self) -> str:
        ch = "" if self.ch_axis is None else f", ch_axis={self.ch_axis}"
        return f"dtype={self.dtype}{ch}"


def _batch_min_max(x: torch.Tensor, ch_axis: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().to(torch.float32)
    if ch_axis is None:
        return torch.aminmax(x)
    if x.dim() == 0:
        raise UsageError(f"expected a tensor with a channel axis {ch_axis} but got a scalar")
    flat = x.movedim(ch_axis, 0).reshape(x.shape[ch_axis], -1)
    return torch.aminmax(flat, dim=1)


class _MinMaxBase(ObserverBase):
    def __init__(self, dtype: str = "si8", ch_axis: int | None = None) -> None:
        super().__init__(dtype, ch_axis)
        # Empty until the first batch: per-channel sizes are not known before.
        self.register_buffer("min_val", torch.empty(0))
        self.register_buffer("max_val", torch.empty(0))

    @abc.abstractmethod
    def _update(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        """Fold one batch's per-tensor or per-channel min and max into the statistics."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.numel() == 0:
            return x
        lo, hi = _batch_min_max(x, self.ch_axis)
        if self.min_val.numel() == 0:
            self.min_val = lo.clone()
            self.max_val = hi.clone()
        else:
            if lo.shape != self.min_val.shape:
                raise UsageError(
                    f"expected {tuple(self.min_val.shape)} channels along axis {self.ch_axis} but got {tuple(lo.shape)}"
                )
            self._update(lo, hi)
        return x

    def threshold(self) -> torch.Tensor:
        if self.min_val.numel() == 0:
            raise self._no_data()
        return torch.maximum(-self.min_val, self.max_val)


class MinMaxObserver(_MinMaxBase):
    """Running min and max over every batch; threshold `max(|min|, |max|)`."""

    def _update(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        self.min_val = torch.minimum(self.min_val, lo)
        self.max_val = torch.maximum(self.max_val, hi)


class MovingAverageMinMaxObserver(_MinMaxBase):
    """Exponential moving average of each batch's min and max (the first batch starts it):
    `m <- m + c * (batch - m)` in float32, with `c = averaging_constant`."""

    def __init__(self, averaging_constant: float = 0.01, dtype: str = "si8", ch_axis: int | None = None) -> None:
        if not 0.0 < averaging_constant <= 1.0:
            raise UsageError(f"expected averaging_constant in (0, 1] but got {averaging_constant}")
        super().__init__(dtype, ch_axis)
        self.averaging_constant = averaging_constant

    def _update(self, lo: torch.Tensor, hi: torch.Tensor) -> None:
        c = self.averaging_constant
        self.min_val = self.min_val + c * (lo - self.min_val)
        self.max_val = self.max_val + c * (hi - self.max_val)

    def extra_repr(self) -> str:
        return f"averaging_constant={self.averaging_constant}, " + super().extra_repr()


class HistogramObserverBase(ObserverBase):
    """A histogram of |x| over [0, hist_max) in `bins` equal bins (per tensor).

    When a batch exceeds the range, the range grows by a power of two so that old bins merge
    exactly (2^k old bins into one new bin) instead of being re-spread by interpolation.
    Non-finite values are not counted. Subclasses choose the threshold from the histogram.
    """

    def __init__(self, bins: int = 2048, dtype: str = "si8") -> None:
        if bins < 2:
            raise UsageError(f"expected bins >= 2 but got {bins}")
        super().__init__(dtype, None)
        self.bins = bins
        self.register_buffer("histogram", torch.zeros(bins, dtype=torch.float64))
        self.register_buffer("hist_max", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("amax", torch.tensor(0.0, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = x.detach().abs().flatten()
        finite = torch.isfinite(a)
        if not bool(finite.all()):  # compacting costs a pass and a copy; most batches are all finite
            a = a[finite]
        a = a.to(torch.float64)
        if a.numel() == 0:
            return x
        cur = float(a.max())
        hist_max = float(self.hist_max)
        if cur > hist_max:
            if hist_max > 0.0:
                k = max(0, math.ceil(math.log2(cur / hist_max)))
                while hist_max * 2.0**k < cur:
                    k += 1
                factor = 2 ** min(k, 62)
                merged = torch.arange(self.bins, device=a.device) // factor
                self.histogram = torch.zeros_like(self.histogram).index_add_(0, merged, self.histogram)
                hist_max = hist_max * 2.0**k
            else:
                # Only zeros so far: they all sit in bin 0 whatever the range.
                hist_max = cur
            self.hist_max = torch.tensor(hist_max, dtype=torch.float64, device=self.hist_max.device)
        if hist_max > 0.0:
            idx = torch.clamp((a / hist_max * self.bins).floor().long(), max=self.bins - 1)
        else:
            idx = torch.zeros_like(a, dtype=torch.long)
        self.histogram += torch.bincount(idx, minlength=self.bins).to(torch.float64)
        self.amax = torch.maximum(self.amax, torch.tensor(cur, dtype=torch.float32, device=self.amax.device))
        return x

    def _hist(self) -> tuple[np.ndarray, float, float]:
        """(counts, bin width, observed max |x|) as float64 numpy values."""
        hist = self.histogram.detach().cpu().numpy().astype(np.float64)
        if hist.sum() == 0:
            raise self._no_data()
        return hist, float(self.hist_max) / self.bins, float(self.amax)

    def _result(self, t: float) -> torch.Tensor:
        return torch.tensor(t, dtype=torch.float32, device=self.amax.device)

    def extra_repr(self) -> str:
        return f"bins={self.bins}, " + super().extra_repr()


class PercentileObserver(HistogramObserverBase):
    """Threshold at the `percentile`-th percentile of |x|, linearly interpolated inside the bin
    where the cumulative count reaches it (so within one bin width of the exact percentile)."""

    def __init__(self, percentile: float = 99.99, bins: int = 2048, dtype: str = "si8") -> None:
        if not 0.0 < percentile <= 100.0:
            raise UsageError(f"expected percentile in (0, 100] but got {percentile}")
        super().__init__(bins, dtype)
        self.percentile = percentile

    def threshold(self) -> torch.Tensor:
        hist, width, amax = self._hist()
        cdf = np.cumsum(hist)
        target = self.percentile / 100.0 * cdf[-1]
        j = min(int(np.searchsorted(cdf, target, side="left")), self.bins - 1)
        before = cdf[j - 1] if j > 0 else 0.0
        frac = (target - before) / hist[j] if hist[j] > 0 else 1.0
        return self._result(min((j + frac) * width, amax))

    def extra_repr(self) -> str:
        return f"percentile={self.percentile}, " + super().extra_repr()


class MSEObserver(HistogramObserverBase):
    """Threshold minimizing the expected squared quantization error of |x| over `candidates`
    evenly spaced thresholds up to the histogram range (and the observed max itself).

    Values are modelled as uniform inside each bin: a clipped bin costs `(c - t)^2 + w^2/12`
    (`c` its center, `w` the bin width); an unclipped bin costs `(c - round(c/s) s)^2 + w^2/12`
    when the step `s` is wider than a bin and the rounding noise `s^2/12` when it is narrower.
    """

    def __init__(self, bins: int = 2048, candidates: int = 512, dtype: str = "si8") -> None:
        super().__init__(bins, dtype)
        if candidates < 1:
            raise UsageError(f"expected candidates >= 1 but got {candidates}")
        self.candidates = candidates

    def threshold(self) -> torch.Tensor:
        hist, width, amax = self._hist()
        if amax == 0.0:
            return self._result(0.0)
        keep = hist > 0
        counts = hist[keep]
        centers = (np.nonzero(keep)[0] + 0.5) * width
        n = self.candidates
        ts = np.append(np.arange(1, n + 1) * (width * self.bins / n), amax)
        ts = ts[ts <= amax]
        s = ts[:, None] / self.qmax
        clip = self.qmax * s
        rounded = np.minimum(np.rint(centers[None, :] / s), self.qmax) * s
        inner = np.where(s > width, (centers[None, :] - rounded) ** 2 + width * width / 12.0, s * s / 12.0)
        err = np.where(centers[None, :] >= clip, (centers[None, :] - clip) ** 2 + width * width / 12.0, inner)
        total = err @ counts
        return self._result(float(ts[int(np.argmin(total))]))

    def extra_repr(self) -> str:
        return f"candidates={self.candidates}, " + super().extra_repr()


class KLObserver(HistogramObserverBase):
    """Entropy calibration: the threshold (a bin edge `i * w`) whose clipped distribution P,
    with the clipped mass folded into its last bin, is closest in KL divergence to Q, the
    unclipped part requantized to `qmax + 1` magnitude levels and spread back over P's
    non-empty bins. Empty Q bins under non-empty P bins get a tiny probability (a large
    penalty, not an infinite one).

    The search needs more bins than levels; with fewer (si16 with the default 2048 bins) the
    histogram cannot resolve any quantization loss and the threshold is the observed max.
    """

    _EPS = 1e-12

    def __init__(self, bins: int = 2048, dtype: str = "si8") -> None:
        super().__init__(bins, dtype)

    def threshold(self) -> torch.Tensor:
        hist, width, amax = self._hist()
        levels = self.qmax + 1
        if self.bins <= levels or amax == 0.0:
            return self._result(amax)
        total_tail = np.concatenate([np.cumsum(hist[::-1])[::-1], [0.0]])
        best_i, best_kl = self.bins, math.inf
        for i in range(levels, self.bins + 1):
            sliced = hist[:i]
            p = sliced.copy()
            p[-1] += total_tail[i]
            nonzero = p > 0
            group = (np.arange(i) * levels) // i
            sums = np.bincount(group, weights=sliced, minlength=levels)
            cnt = np.bincount(group, weights=nonzero.astype(np.float64), minlength=levels)
            q = np.where(nonzero, sums[group] / np.maximum(cnt[group], 1.0), 0.0)
            p = p[nonzero] / p.sum()
            q = q[nonzero]
            q_sum = q.sum()
            q = np.maximum(q / q_sum if q_sum > 0 else q, self._EPS)
            kl = float(np.sum(p * np.log(p / q)))
            if kl < best_kl:
                best_i, best_kl = i, kl
        return self._result(min(best_i * width, amax))
