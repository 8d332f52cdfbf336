"""Transforms of clips (lists of frames, each a sample dict) for video tasks, where every frame of a
clip must see the same random draw: the same flip, the same scale, the same crop.

`Seq(transforms)` runs per-frame transforms on every frame of a clip with the random state rewound
before each frame: torch's global generator, and the `generator` of each transform that has its own.
A transform that draws the same numbers for frames of the same size (every transform here does)
therefore does the same thing to each of them. `RandomChoice` picks one of several transform
chains per call (inside `Seq`, one per clip). `ResizeShortSide` and `RandomSizeCrop` are the
scale and crop augmentations of the tracking task.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from hbdk_sim.data.transforms.base import Compose, Sample, check_sample
from hbdk_sim.data.transforms.geometric import crop_sample, resize_sample
from hbdk_sim.errors import UsageError, UsageTypeError
from hbdk_sim.registry import TRANSFORMS


def _generators(transform: object) -> list[torch.Generator]:
    """The own generators of `transform` and of the transforms it holds."""
    found = []
    generator = getattr(transform, "generator", None)
    if isinstance(generator, torch.Generator):
        found.append(generator)
    for inner in getattr(transform, "transforms", ()) or ():
        found += _generators(inner)
    for branch in getattr(transform, "branches", ()) or ():
        found += _generators(branch)
    return found


@TRANSFORMS.register
class Seq:
    """Apply `transforms` (per-sample transforms or TRANSFORMS configs) to every frame of a clip,
    each frame starting from the same random state, so that one random draw applies to the whole
    clip. Takes and returns a list of samples; afterwards the random state is where one frame's
    transforms left it."""

    def __init__(self, transforms: Sequence[Callable | Mapping]) -> None:
        self.compose = Compose(transforms)
        self.transforms = self.compose.transforms
        self.random = any(getattr(t, "random", False) for t in self.transforms)

    def __call__(self, clip: Sequence[Sample]) -> list[Sample]:
        if isinstance(clip, Mapping) or not isinstance(clip, Sequence):
            raise UsageTypeError(f"Seq: expected a clip (a list of sample dicts) but got {type(clip).__name__}")
        generators = _generators(self.compose)
        start = torch.get_rng_state(), [g.get_state() for g in generators]
        out = []
        for frame in clip:
            torch.set_rng_state(start[0])
            for g, state in zip(generators, start[1], strict=True):
                g.set_state(state)
            out.append(self.compose(frame))
        return out

    def __repr__(self) -> str:
        return f"Seq({self.transforms!r})"


@TRANSFORMS.register
class RandomChoice:
    """Run one of `branches` (each a list of transforms or TRANSFORMS configs), drawn with
    probabilities `p` (default: equal)."""

    random = True

    def __init__(self, branches: Sequence[Sequence[Callable | Mapping]], p: Sequence[float] | None = None,
                 generator: torch.Generator | None = None) -> None:
        if not branches:
            raise UsageError("RandomChoice: give at least one branch (a list of transforms)")
        self.branches = [Compose(b) for b in branches]
        weights = [1.0] * len(branches) if p is None else [float(v) for v in p]
        if len(weights) != len(branches) or min(weights) < 0 or sum(weights) <= 0:
            raise UsageError(f"RandomChoice: p must hold {len(branches)} non-negative weights with a positive sum "
                             f"but got {p!r}")
        self.p = torch.tensor(weights, dtype=torch.float64) / sum(weights)
        self.generator = generator

    def __call__(self, sample: Sample) -> Sample:
        k = int(torch.multinomial(self.p, 1, generator=self.generator))
        return self.branches[k](sample)


@TRANSFORMS.register
class ResizeShortSide:
    """Resize keeping the ratio so that the shorter side becomes one of `short_sides` (drawn
    uniformly; one value: no draw), unless the longer side would then exceed `max_long`, in which
    case the longer side becomes `max_long`. Each side is rounded to a multiple of `divisor` (at
    least `divisor`). Labels move as in Resize, and `scale_factor` records the factors."""

    def __init__(self, short_sides: Sequence[int] | int, max_long: int | None = None, divisor: int = 1,
                 generator: torch.Generator | None = None) -> None:
        sides = [int(short_sides)] if isinstance(short_sides, int) else [int(s) for s in short_sides]
        if not sides or min(sides) <= 0:
            raise UsageError(f"ResizeShortSide: short_sides must be positive sizes but got {short_sides!r}")
        if max_long is not None and max_long < max(sides):
            raise UsageError(f"ResizeShortSide: max_long {max_long} is below the largest short side {max(sides)}")
        if divisor < 1:
            raise UsageError(f"ResizeShortSide: divisor must be >= 1 but got {divisor}")
        self.short_sides, self.max_long, self.divisor = sides, max_long, int(divisor)
        self.random = len(sides) > 1
        self.generator = generator

    def output_size(self, height: int, width: int, short: int) -> tuple[int, int]:
        scale = short / min(height, width)
        if self.max_long is not None and max(height, width) * scale > self.max_long:
            scale = self.max_long / max(height, width)
        d = self.divisor
        return max(d, int(height * scale / d + 0.5) * d), max(d, int(width * scale / d + 0.5) * d)

    def __call__(self, sample: Sample) -> Sample:
        img, _ = check_sample(sample, "ResizeShortSide")
        k = int(torch.randint(0, len(self.short_sides), (), generator=self.generator)) if self.random else 0
        return resize_sample(sample, "ResizeShortSide", *self.output_size(*img.shape[:2], self.short_sides[k]))


@TRANSFORMS.register
class RandomSizeCrop:
    """Crop a window whose height and width are drawn uniformly from [min_size, min(side, max_size)]
    (whole pixels), at a uniformly drawn offset. Boxes move with it, are clipped to the window and
    dropped, with their per-object fields, when nothing of them is left."""

    random = True

    def __init__(self, min_size: int, max_size: int, generator: torch.Generator | None = None) -> None:
        if not 0 < min_size <= max_size:
            raise UsageError(f"RandomSizeCrop: need 0 < min_size <= max_size but got {min_size}, {max_size}")
        self.min_size, self.max_size, self.generator = int(min_size), int(max_size), generator

    def __call__(self, sample: Sample) -> Sample:
        img, _ = check_sample(sample, "RandomSizeCrop")
        h, w = img.shape[:2]
        ch = int(torch.randint(min(self.min_size, h), min(h, self.max_size) + 1, (), generator=self.generator))
        cw = int(torch.randint(min(self.min_size, w), min(w, self.max_size) + 1, (), generator=self.generator))
        return crop_sample(sample, "RandomSizeCrop", ch, cw, self.generator)
