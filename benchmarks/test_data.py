"""Training-input throughput: samples/s of LmdbDataset against reading the Cityscapes PNG tree
directly (CityscapesFromFolder), through the same DataLoader (2 worker processes, batch 16), measured
in one run on a synthetic Cityscapes split (192 images of 128x256).

Three pairings, each reported as a ratio in extra_info:
(a) same bytes, same decode: the pack holds the PNG files' bytes, both sides decode the same PNGs with
    Pillow. The only difference is one LMDB read instead of two file opens/reads per sample.
(b) same raw pixels: the pack (image_codec="raw") against a tree of raw pixel files, no decoding on
    either side: again only the storage access differs.
(c) the training configuration: the raw pack against the PNG tree, the same output arrays.
Target (the issue's): (c) >= 2x. With warm page caches and local files, (a) and (b) are near 1x:
opening a file costs tens of microseconds against milliseconds of PNG decompression, so LMDB's gain
here comes from storing pixels that need no decoding; on network or cold storage the per-file cost,
and (a), grow. Run with `make bench`.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hbdk_sim.data import CityscapesFromFolder, LmdbDataset, pack_cityscapes
from hbdk_sim.data.datasets.cityscapes import find_pairs
from hbdk_sim.data.datasets.synthetic_cityscapes import make_synthetic_cityscapes
from torch.utils.data import DataLoader, Dataset

WORKERS = 2
BATCH = 16
IMAGES = 192
TARGET = 2.0


class RawFolder(Dataset):
    """The PNG tree's samples stored as raw pixel files (<stem>.rgb, <stem>.ids) in the same folders."""

    def __init__(self, root: Path, split: str, shape: tuple[int, int]) -> None:
        self.pairs, self.shape = find_pairs(root, split), shape

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict:
        p, (h, w) = self.pairs[index], self.shape
        img = np.fromfile(p.image[: -len(".png")] + ".rgb", np.uint8).reshape(h, w, 3)
        gt = np.fromfile(p.label[: -len(".png")] + ".ids", np.uint8).reshape(h, w)
        return {"img": img, "gt_seg": gt, "color_space": "rgb", "name": p.name, "city": p.city}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Dataset]:
    root = tmp_path_factory.mktemp("bench_data")
    make_synthetic_cityscapes(root / "src", train=IMAGES, val=0, height=128, width=256, seed=0)
    png = pack_cityscapes(root / "src", root / "png", "train", num_workers=WORKERS)
    raw = pack_cityscapes(root / "src", root / "raw", "train", num_workers=WORKERS, image_codec="raw")
    folder = CityscapesFromFolder(root / "src", "train")
    for i, p in enumerate(folder.pairs):
        s = folder[i]
        s["img"].tofile(p.image[: -len(".png")] + ".rgb")
        s["gt_seg"].tofile(p.label[: -len(".png")] + ".ids")
    return {"lmdb_png": LmdbDataset(png.path), "lmdb_raw": LmdbDataset(raw.path), "png_tree": folder,
            "raw_tree": RawFolder(root / "src", "train", (128, 256)),
            "pack_samples_per_s": png.samples_per_second}


def _loader(ds: Dataset) -> DataLoader:
    return DataLoader(ds, batch_size=BATCH, num_workers=WORKERS, persistent_workers=True)


def _epoch_seconds(loader: DataLoader) -> float:
    start = time.perf_counter()
    for _ in loader:
        pass
    return time.perf_counter() - start


def _compare(ours: Dataset, peer: Dataset, rounds: int = 3) -> tuple[float, float]:
    """Best samples/s of each over `rounds` interleaved epochs (workers started and warmed first)."""
    a, b = _loader(ours), _loader(peer)
    first_a, first_b = next(iter(a)), next(iter(b))
    assert torch.equal(first_a["img"], first_b["img"]) and torch.equal(first_a["gt_seg"], first_b["gt_seg"])
    _epoch_seconds(a), _epoch_seconds(b)
    best_a = best_b = float("inf")
    for _ in range(rounds):
        best_a = min(best_a, _epoch_seconds(a))
        best_b = min(best_b, _epoch_seconds(b))
    return len(ours) / best_a, len(peer) / best_b


def _report(benchmark, ours: float, peer: float, peer_name: str) -> float:
    ratio = ours / peer
    benchmark.extra_info.update(lmdb_samples_per_s=round(ours, 1), **{f"{peer_name}_samples_per_s": round(peer, 1)},
                                lmdb_over_peer=round(ratio, 3), workers=WORKERS, batch=BATCH)
    benchmark.pedantic(lambda: None, rounds=1)
    return ratio


def test_same_png_decode(datasets, benchmark):
    ours, peer = _compare(datasets["lmdb_png"], datasets["png_tree"])
    benchmark.extra_info["pack_samples_per_s"] = round(datasets["pack_samples_per_s"], 1)
    # Reported, not targeted: identical decode work leaves only the file opens to win (see the docstring).
    # _compare asserts both sides deliver the same arrays.
    _report(benchmark, ours, peer, "png_tree")


def test_same_raw_pixels(datasets, benchmark):
    ours, peer = _compare(datasets["lmdb_raw"], datasets["raw_tree"])
    _report(benchmark, ours, peer, "raw_tree")


def test_raw_pack_against_png_tree(datasets, benchmark):
    ours, peer = _compare(datasets["lmdb_raw"], datasets["png_tree"])
    ratio = _report(benchmark, ours, peer, "png_tree")
    assert ratio >= TARGET, f"LMDB {ours:.0f} samples/s is {ratio:.2f}x the PNG tree's {peer:.0f} (target >= {TARGET}x)"
