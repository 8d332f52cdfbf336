"""Datasets of packed records: `LmdbDataset` reads a database packed by `hbdk_sim.data.packer` (any
task: the record's fields follow the sample schema of hbdk_sim.data.sample), `CityscapesFromFolder`
reads the Cityscapes PNG tree directly. A Cityscapes sample is

    img: HxWx3 uint8, RGB       gt_seg: HxW uint8, official Cityscapes label ids (LabelRemap makes train ids)
    color_space: "rgb"          name: str, city: str

and a detection, keypoint or tracking record adds its boxes, classes, keypoints or track ids;

then apply `transforms` (a callable, or a list of transforms / TRANSFORMS config dicts run in order).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from hbdk_sim.data.datasets.cityscapes import find_pairs
from hbdk_sim.data.packer import acquire_reader, read_meta, release_reader, sample_key, unpack_record
from hbdk_sim.data.sample import decode_fields
from hbdk_sim.data.transforms.base import Compose
from hbdk_sim.errors import DatasetError
from hbdk_sim.registry import DATASETS


def _as_transform(transforms: Callable | Sequence | None) -> Callable | None:
    if transforms is None or callable(transforms):
        return transforms
    return Compose(transforms)


def _decode_image(src: Any) -> np.ndarray:
    with Image.open(src) as im:
        return np.array(im.convert("RGB"))


def _decode_label(src: Any, where: str) -> np.ndarray:
    with Image.open(src) as im:
        if im.mode not in ("L", "P"):
            raise DatasetError(f"{where}: label image mode {im.mode!r}, expected 8-bit label ids (mode 'L')")
        # A palette ("P") label's pixel values are the indices, which are the ids.
        return np.array(im)


@DATASETS.register
class LmdbDataset(Dataset):
    """Samples of an LMDB database written by the packer. The environment is opened on first
    access in each process (read only, no lock file), so a DataLoader with worker processes gets
    one environment per worker rather than a handle inherited across fork."""

    def __init__(self, path: str | os.PathLike, transforms: Callable | Sequence | None = None) -> None:
        self.path = Path(path)
        self.meta = read_meta(self.path)
        self.num_samples = int(self.meta["num_samples"])
        self.transforms = _as_transform(transforms)
        self._env: lmdb.Environment | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.num_samples

    def _txn_env(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            # First use in this process (a DataLoader worker gets its own): the process's shared
            # read-only environment of the database.
            self._env = acquire_reader(self.path)
            self._pid = os.getpid()
        return self._env

    def read_record(self, index: int) -> dict[str, Any]:
        """The raw record of sample `index` (encoded image and label bytes, names, shape)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f"{self.path}: sample {index} out of range [0, {self.num_samples})")
        try:
            with self._txn_env().begin(buffers=False) as txn:
                raw = txn.get(sample_key(index))
        except lmdb.Error as e:
            raise DatasetError(f"{self.path}: the database is damaged (reading sample {index}: {type(e).__name__}: "
                               f"{e}); re-pack it with --overwrite") from None
        if raw is None:
            raise DatasetError(f"{self.path}: record {sample_key(index)!r} missing; re-pack with --overwrite")
        try:
            record = unpack_record(raw)
        except (msgpack.UnpackException, ValueError) as e:
            raise DatasetError(f"{self.path}[{index}]: the record is not msgpack ({e}); re-pack with --overwrite") \
                from None
        if not isinstance(record, dict):
            raise DatasetError(f"{self.path}[{index}]: the record is a {type(record).__name__}, not a sample; re-pack "
                               "with --overwrite")
        return record

    def __getitem__(self, index: int) -> dict[str, Any]:
        rec = self.read_record(index)
        where = f"{self.path}[{index}]"
        try:
            gt = None
            if rec["img_format"] == "raw":
                h, w = rec["shape"]
                img = np.frombuffer(rec["img"], np.uint8).reshape(h, w, 3).copy()
                if "gt_seg" in rec:
                    gt = np.frombuffer(rec["gt_seg"], np.uint8).reshape(h, w).copy()
            else:
                img = _decode_image(io.BytesIO(rec["img"]))
                if "gt_seg" in rec:
                    gt = _decode_label(io.BytesIO(rec["gt_seg"]), where)
            fields = decode_fields(rec, where)
        except DatasetError:  # the decoders' own messages, naming the record
            raise
        except (KeyError, TypeError, ValueError, OSError) as e:  # a damaged or foreign record
            raise DatasetError(f"{where}: the record does not decode ({type(e).__name__}: {e}); re-pack with "
                               "--overwrite") from None
        sample = {"img": img, **({"gt_seg": gt} if gt is not None else {}), "color_space": "rgb", **fields}
        return self.transforms(sample) if self.transforms else sample

    def __getstate__(self) -> dict[str, Any]:
        # An open environment must not travel to worker processes.
        state = dict(self.__dict__)
        state["_env"], state["_pid"] = None, None
        return state

    def __del__(self) -> None:
        if getattr(self, "_env", None) is not None and self._pid == os.getpid():
            release_reader(self.path, self._env)


@DATASETS.register
class CityscapesFromFolder(Dataset):
    """Samples read straight from the Cityscapes PNG tree (`root`/leftImg8bit/`split`/..., gtFine/...),
    decoded as LmdbDataset decodes them."""

    def __init__(self, root: str | os.PathLike, split: str, transforms: Callable | Sequence | None = None) -> None:
        self.pairs = find_pairs(root, split)
        self.transforms = _as_transform(transforms)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, Any]:
        p = self.pairs[index]
        sample = {"img": _decode_image(p.image), "gt_seg": _decode_label(p.label, p.label), "color_space": "rgb",
                  "name": p.name, "city": p.city}
        return self.transforms(sample) if self.transforms else sample
