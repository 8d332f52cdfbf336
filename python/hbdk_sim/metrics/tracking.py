"""Multi-object tracking metrics (MOTA, IDF1 and the other MOTChallenge numbers) by py-motmetrics
1.4.0, the reference's version, over every sequence of a MOT-format ground-truth directory.

The ground truth of sequence SEQ is `<gt_dir>/SEQ/gt/gt.txt` (rows frame, id, x, y, w, h, conf,
class, visibility), loaded by `mm.io.loadtxt(fmt="mot15-2D", min_confidence=1)`: rows with conf 0
are dropped and there is no class filter. The predictions of a frame, (K, 6) rows (x1, y1, x2, y2,
score, track_id) in original pixels, become the MOT rows `frame, track_id + 1, x1, y1, x2 - x1,
y2 - y1, 1, -1, -1, -1`, held in memory at full precision exactly as loadtxt would read them from a
file (the score is not used). Each sequence is matched by `compare_to_groundtruth(gt, ts, "iou",
distth=0.5)` and `compute_many(motchallenge_metrics, generate_overall=True)` sums them; the results
come from its OVERALL row. A sequence without predictions counts all its objects as misses (and
makes the OVERALL MOTP NaN, as motmetrics weighs each sequence's MOTP by its matches). The
assignments use scipy's solver whatever other solver motmetrics could find installed.

Compatibility with numpy 2 and pandas 3 (motmetrics 1.4.0 predates both; checked equal to the same
evaluation under numpy 1.26 and pandas 1.5):
* `distances.iou_matrix` calls `np.asfarray`, removed in numpy 2 (py-motmetrics#199, fixed on its
  master by #200, not released), so `np.asfarray` is set to `np.asarray(a, dtype)` when numpy lacks
  it, before motmetrics is first imported.
* `io.load_motchallenge` subtracts a tuple from two columns, which pandas 3 deprecates with a
  Pandas4Warning (pandas 4 will read the tuple as a scalar); the result is unchanged under pandas 3,
  so that one warning is silenced while loading.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hbdk_sim.errors import DatasetError, UsageError
from hbdk_sim.registry import METRICS

GT_FILE = Path("gt") / "gt.txt"
# Columns of a loaded MOT file besides its (FrameId, Id) index, as mm.io.loadtxt names them.
_MOT_COLUMNS = ["X", "Y", "Width", "Height", "Confidence", "ClassId", "Visibility"]


def _motmetrics():
    """The motmetrics module, with numpy 2's missing `np.asfarray` put back first."""
    if not hasattr(np, "asfarray"):
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)
    import motmetrics

    return motmetrics


def load_gt(path: str | os.PathLike):
    """The ground truth of one sequence as mm.io.loadtxt gives it (conf-0 rows dropped)."""
    mm = _motmetrics()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: MOT ground-truth file not found (each sequence directory of gt_dir "
                                f"needs {GT_FILE})")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Operation with tuple is deprecated")
            gt = mm.io.loadtxt(str(path), fmt="mot15-2D", min_confidence=1)
    except (ValueError, TypeError) as e:  # pandas' EmptyDataError and ParserError are ValueErrors
        raise DatasetError(f"{path}: not a MOT gt.txt of rows frame,id,x,y,w,h,conf,class,visibility "
                           f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if gt.empty:
        raise DatasetError(f"{path}: no ground-truth row with conf 1 (rows are frame,id,x,y,w,h,conf,class,visibility)")
    return gt


@METRICS.register
class MotMetric:
    """`update(predictions, batch)`: `predictions["tracks"]` a list (one per frame) of (K, 6)
    tensors (x1, y1, x2, y2, score, track_id), the batch's `sequence` (names) and `frame` (1-based
    frame numbers within the sequence); `compute()`: {"MOTA", "IDF1"} (fractions) and the other
    motchallenge numbers under motmetrics' names ("num_switches", "num_false_positives",
    "num_misses", "mostly_tracked", ..., "motp" the mean 1 - IoU of the matches), over every
    sequence of `gt_dir`.

    With `results_dir`, `compute()` also writes the tracks as MOTChallenge results, one
    `<results_dir>/<SEQ>.txt` per sequence of `gt_dir` (the files of those names are replaced, nothing
    else there is touched): rows `frame,id,x,y,w,h,score,-1,-1,-1` with 1-based ids and the boxes'
    top-left corner and size in original pixels, frames in order; motmetrics reading them back
    (`mm.io.loadtxt(fmt="mot15-2D")`) gives the numbers `compute()` returns."""

    gather_states = ("frames",)

    def __init__(self, gt_dir: str | os.PathLike, pred_key: str = "tracks", sequence_key: str = "sequence",
                 frame_key: str = "frame", results_dir: str | os.PathLike | None = None) -> None:
        self.results_dir = None if results_dir is None else Path(results_dir)
        self.gt_dir = Path(gt_dir)
        if not self.gt_dir.is_dir():
            raise FileNotFoundError(f"{self.gt_dir}: MOT ground-truth directory not found (give gt_dir as the split's "
                                    f"directory holding <SEQ>/{GT_FILE} for each sequence)")
        names = sorted(p.name for p in self.gt_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not names:
            raise DatasetError(f"{self.gt_dir}: no sequence directories (expected <SEQ>/{GT_FILE} for each sequence)")
        self.gt = {name: load_gt(self.gt_dir / name / GT_FILE) for name in names}
        self.pred_key, self.sequence_key, self.frame_key = pred_key, sequence_key, frame_key
        self.frames: list[tuple[str, int, np.ndarray]] = []  # (sequence, frame, (K, 6) float64 rows)

    def reset(self) -> None:
        self.frames = []

    def update(self, preds: Mapping | Sequence[torch.Tensor], batch: Mapping) -> None:
        tracks = preds[self.pred_key] if isinstance(preds, Mapping) else preds
        sequences, frames = batch[self.sequence_key], batch[self.frame_key]
        sequences = [sequences] if isinstance(sequences, str) else list(sequences)
        frames = torch.as_tensor(frames).reshape(-1).tolist()
        if not len(tracks) == len(sequences) == len(frames):
            raise UsageError(f"MotMetric: {len(tracks)} frames of tracks but {len(sequences)} sequence names and "
                             f"{len(frames)} frame numbers")
        for seq, frame, rows in zip(sequences, frames, tracks, strict=True):
            if seq not in self.gt:
                raise UsageError(f"MotMetric: sequence {seq!r} is not in the ground truth {self.gt_dir} "
                                 f"(its sequences: {', '.join(self.gt)})")
            if frame != int(frame) or frame < 1:
                raise UsageError(f"MotMetric: frame numbers are 1-based integers but {seq} got {frame}")
            rows = torch.as_tensor(rows).detach().to("cpu", torch.float64)
            rows = rows.reshape(0, 6) if rows.numel() == 0 else rows
            if rows.dim() != 2 or rows.shape[1] != 6:
                raise UsageError(f"MotMetric: tracks of a frame are (K, 6) rows (x1, y1, x2, y2, score, track_id) "
                                 f"but {seq} frame {int(frame)} got {tuple(rows.shape)}")
            ids = rows[:, 5]
            if not bool(((ids == ids.round()) & (ids >= 0)).all()):
                raise UsageError(f"MotMetric: track ids are integers >= 0 but {seq} frame {int(frame)} got "
                                 f"{ids.tolist()}")
            if len(ids.unique()) != len(ids):
                raise UsageError(f"MotMetric: a track id appears twice in {seq} frame {int(frame)}: {ids.tolist()}")
            self.frames.append((seq, int(frame), rows.numpy()))

    def _predictions(self, seq: str, entries: list[tuple[int, np.ndarray]]):
        """The rows `frame, id + 1, x1, y1, w, h, 1, -1, -1, -1` of one sequence as mm.io.loadtxt
        would load them from a file (X and Y minus 1, indexed by (FrameId, Id)), frames in order."""
        import pandas as pd

        entries = sorted(entries, key=lambda e: e[0])  # stable: a frame keeps the tracker's row order
        for (a, _), (b, _) in zip(entries, entries[1:], strict=False):
            if a == b:
                raise UsageError(f"MotMetric: frame {a} of sequence {seq} was given twice")
        rows = np.concatenate([r for _, r in entries]) if entries else np.zeros((0, 6))
        frame_ids = np.concatenate([np.full(len(r), f, dtype=np.int64) for f, r in entries]) if entries else []
        x1, y1, x2, y2, ids = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3], rows[:, 5]
        ones = np.ones(len(rows))
        data = np.stack([x1 - 1, y1 - 1, x2 - x1, y2 - y1, ones, -ones, -ones], axis=1)
        index = pd.MultiIndex.from_arrays([np.asarray(frame_ids, dtype=np.int64), ids.astype(np.int64) + 1],
                                          names=["FrameId", "Id"])
        return pd.DataFrame(data, index=index, columns=_MOT_COLUMNS)

    def write_results(self, by_sequence: Mapping[str, list[tuple[int, np.ndarray]]]) -> None:
        """The MOTChallenge results files of every sequence of gt_dir under results_dir (see the class)."""
        from hbdk_sim.files import write_file

        self.results_dir.mkdir(parents=True, exist_ok=True)
        for name in self.gt:
            lines = []
            for frame, rows in sorted(by_sequence.get(name, []), key=lambda e: e[0]):
                for x1, y1, x2, y2, score, track_id in rows.tolist():
                    box = f"{x1!r},{y1!r},{x2 - x1!r},{y2 - y1!r}"
                    lines.append(f"{frame},{int(track_id) + 1},{box},{score!r},-1,-1,-1")
            write_file(self.results_dir / f"{name}.txt", "".join(f"{ln}\n" for ln in lines).encode(), overwrite=True)

    def compute(self) -> dict[str, Any]:
        mm = _motmetrics()
        by_sequence: dict[str, list[tuple[int, np.ndarray]]] = defaultdict(list)
        for seq, frame, rows in self.frames:
            by_sequence[seq].append((frame, rows))
        from hbdk_sim.engine.distributed import is_main_process

        if self.results_dir is not None and is_main_process():  # the frames are gathered: one writer
            self.write_results(by_sequence)
        names = list(self.gt)
        # motmetrics takes the first assignment solver installed (lapsolver, lap, scipy, ...); ties may
        # go another way in another one, so the result does not depend on what else is installed.
        with mm.lap.set_default_solver("scipy"):
            accs = [mm.utils.compare_to_groundtruth(self.gt[name], self._predictions(name, by_sequence.get(name, [])),
                                                    "iou", distth=0.5) for name in names]
            summary = mm.metrics.create().compute_many(accs, names=names, metrics=mm.metrics.motchallenge_metrics,
                                                       generate_overall=True)
        out: dict[str, Any] = {"MOTA": float(summary.at["OVERALL", "mota"]),
                               "IDF1": float(summary.at["OVERALL", "idf1"])}
        for name in mm.metrics.motchallenge_metrics:
            if name not in ("mota", "idf1"):
                value = summary.at["OVERALL", name]
                out[name] = int(value) if np.issubdtype(summary[name].dtype, np.integer) else float(value)
        return out
