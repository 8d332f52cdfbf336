"""The MOT metric against py-motmetrics called directly on the same files, on a hand-made ground
truth of two sequences whose counts (switches, false positives, misses) are known."""

from __future__ import annotations

import math
import random

import pytest
import torch
from hbdk_sim.errors import DatasetError, UsageError
from hbdk_sim.metrics.tracking import MotMetric, _motmetrics

pytest.importorskip("motmetrics")
# motmetrics 1.4.0's own loader subtracts a tuple from two columns, deprecated by pandas 3; the
# direct calls below keep it as it is.
pytestmark = pytest.mark.filterwarnings("ignore:Operation with tuple is deprecated")


def _box(x, y, w=30, h=60):
    return (x, y, w, h)


# Ground truth, MOT rows (frame, id, x, y, w, h, conf, class, visibility), written sorted by id as
# MOT17's gt.txt is.
GT = {
    "SEQ-A": (
        [(f, 1, *_box(10 + 5 * f, 20), 1, 1, 1.0) for f in range(1, 9)]  # A1: frames 1-8
        + [(f, 2, *_box(200 + 4 * f, 30), 1, 1, 0.8) for f in range(1, 9)]  # A2: frames 1-8
        + [(3, 3, *_box(400, 40), 0, 1, 0.5)]  # conf 0: ignored (else one more object and a miss)
    ),
    "SEQ-B": (
        [(f, 1, *_box(50, 10 + 6 * f), 1, 1, 1.0) for f in range(1, 7)]  # B1: frames 1-6
        + [(2, 2, *_box(300, 100, 40, 40), 1, 7, 1.0)]  # class 7, conf 1: kept (no class filter)
    ),
}


def _near(row, dx=0.75, dy=-0.5):
    """A predicted (x1, y1, x2, y2) close to a gt row (IoU well above 0.5), in float32-exact values."""
    _, _, x, y, w, h = row[:6]
    return (x - dx, y + dy, x - dx + w - 1.25, y + dy + h + 0.5)


def _gt_row(seq, frame, oid):
    return next(r for r in GT[seq] if r[0] == frame and r[1] == oid)


# Tracker output per (sequence, frame): (x1, y1, x2, y2, score, track_id) with 0-based track ids.
# SEQ-A: track 0 follows A1 throughout; A2 is track 1 in frames 1-4 and track 5 in frames 5-8 (one
# identity switch). SEQ-B: track 0 follows B1 but loses it in frame 4 (one miss), track 3 finds the
# class-7 object, and track 7 is a false positive in frame 6.
TRACKS = {}
for _f in range(1, 9):
    TRACKS["SEQ-A", _f] = [(*_near(_gt_row("SEQ-A", _f, 1)), 0.9, 0),
                           (*_near(_gt_row("SEQ-A", _f, 2), 0.25, 1.5), 0.8, 1 if _f <= 4 else 5)]
for _f in range(1, 7):
    TRACKS["SEQ-B", _f] = [] if _f == 4 else [(*_near(_gt_row("SEQ-B", _f, 1)), 0.7, 0)]
TRACKS["SEQ-B", 2].append((*_near(_gt_row("SEQ-B", 2, 2), 1.0, 0.0), 0.6, 3))
TRACKS["SEQ-B", 6].append((600.0, 400.0, 640.5, 470.25, 0.5, 7))

# The counts the tracks above were built to give. Objects with conf 1: A 8 + 8, B 6 + 1 = 23;
# misses 1 (B1 frame 4), false positives 1 (track 7), switches 1 (A2 frame 5).
NUM_OBJECTS, MISSES, FPS, SWITCHES = 23, 1, 1, 1
MOTA = 1 - (MISSES + FPS + SWITCHES) / NUM_OBJECTS  # = 20/23
# IDF1 = 2 IDTP / (gt boxes + predicted boxes). The best one-to-one identity match: A1-track 0 (8
# frames), A2-track 1 or 5 (4), B1-track 0 (5), B2-track 3 (1): IDTP = 18; predicted boxes A 16,
# B 5 + 1 + 1 = 7, so 23 of each and IDF1 = 36/46 = 18/23.
IDF1 = 2 * 18 / (NUM_OBJECTS + 23)


@pytest.fixture
def gt_dir(tmp_path):
    root = tmp_path / "mot_val"
    for seq, rows in GT.items():
        (root / seq / "gt").mkdir(parents=True)
        (root / seq / "gt" / "gt.txt").write_text("".join(",".join(str(v) for v in r) + "\n" for r in rows))
    return root


def _direct(gt_dir, tracks, tmp_path):
    """motmetrics on the ground-truth files and the tracks written as a MOT results file per
    sequence (a sequence without tracks: its loaded results with no rows)."""
    mm = _motmetrics()
    accs, names = [], sorted(GT)
    for seq in names:
        lines = [f"{f},{int(t[5]) + 1},{t[0]!r},{t[1]!r},{t[2] - t[0]!r},{t[3] - t[1]!r},1,-1,-1,-1\n"
                 for (s, f), rows in sorted(tracks.items()) if s == seq for t in rows]
        path = tmp_path / f"{seq}.txt"
        path.write_text("".join(lines) or "1,1,0,0,1,1,1,-1,-1,-1\n")
        ts = mm.io.loadtxt(str(path), fmt="mot15-2D")
        gt = mm.io.loadtxt(str(gt_dir / seq / "gt" / "gt.txt"), fmt="mot15-2D", min_confidence=1)
        accs.append(mm.utils.compare_to_groundtruth(gt, ts if lines else ts.iloc[:0], "iou", distth=0.5))
    summary = mm.metrics.create().compute_many(accs, names=names, metrics=mm.metrics.motchallenge_metrics,
                                               generate_overall=True)
    return {name: summary.at["OVERALL", name].item() for name in mm.metrics.motchallenge_metrics}


def _feed(metric, tracks, keys, batch_size):
    for start in range(0, len(keys), batch_size):
        chunk = keys[start:start + batch_size]
        metric.update({"tracks": [torch.tensor(tracks[k], dtype=torch.float32).reshape(-1, 6) for k in chunk]},
                      {"sequence": [s for s, _ in chunk], "frame": torch.tensor([f for _, f in chunk])})


def _run(metric, tracks, batch_size=1, shuffle=False):
    keys = sorted(tracks)
    if shuffle:
        random.Random(0).shuffle(keys)
    _feed(metric, tracks, keys, batch_size)
    return metric.compute()


def _same(got, direct):
    """`got` is `direct` under the metric's names, value for value (NaN as NaN: motmetrics' OVERALL
    MOTP is NaN once a sequence has no match)."""
    got = {("mota" if k == "MOTA" else "idf1" if k == "IDF1" else k): v for k, v in got.items()}
    return got.keys() == direct.keys() and all(got[k] == v or (math.isnan(got[k]) and math.isnan(v))
                                               for k, v in direct.items())


def test_known_counts_and_equal_to_motmetrics(gt_dir, tmp_path):
    got = _run(MotMetric(gt_dir), TRACKS)
    assert (got["num_misses"], got["num_false_positives"], got["num_switches"]) == (MISSES, FPS, SWITCHES)
    assert got["num_unique_objects"] == 4 and got["mostly_tracked"] == 4 and got["num_fragmentations"] == 1
    assert got["MOTA"] == pytest.approx(MOTA, abs=1e-12) and got["IDF1"] == pytest.approx(IDF1, abs=1e-12)
    assert 0.1 < got["motp"] < 0.3  # the boxes are near, not on, the ground truth
    assert _same(got, _direct(gt_dir, TRACKS, tmp_path))  # exactly
    assert all(type(v) in (int, float) for v in got.values())


def test_results_files_read_back_by_motmetrics_give_the_same_numbers(gt_dir, tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "SEQ-A.txt").write_text("stale")  # replaced
    got = _run(MotMetric(gt_dir, results_dir=out), TRACKS)
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{seq}.txt" for seq in GT] + ["notes.txt"])
    assert (out / "notes.txt").read_text() == "mine"  # nothing but the sequences' files is touched
    mm = _motmetrics()
    accs, names = [], sorted(GT)
    for seq in names:
        ts = mm.io.loadtxt(str(out / f"{seq}.txt"), fmt="mot15-2D")
        gt = mm.io.loadtxt(str(gt_dir / seq / "gt" / "gt.txt"), fmt="mot15-2D", min_confidence=1)
        accs.append(mm.utils.compare_to_groundtruth(gt, ts, "iou", distth=0.5))
    summary = mm.metrics.create().compute_many(accs, names=names, metrics=mm.metrics.motchallenge_metrics,
                                               generate_overall=True)
    assert _same(got, {name: summary.at["OVERALL", name].item() for name in mm.metrics.motchallenge_metrics})
    # one row per track and frame: frame, 1-based id, x, y, w, h, the score
    first_seq = sorted(GT)[0]
    frame, rows = min((f, r) for (s, f), r in TRACKS.items() if s == first_seq and len(r))
    x1, y1, x2, y2, score, track = torch.tensor(rows[0], dtype=torch.float32).double().tolist()
    line = (out / f"{first_seq}.txt").read_text().splitlines()[0]
    assert line == f"{frame},{int(track) + 1},{x1!r},{y1!r},{x2 - x1!r},{y2 - y1!r},{score!r},-1,-1,-1"


def test_batching_order_and_ranks_do_not_matter(gt_dir):
    want = _run(MotMetric(gt_dir), TRACKS)
    assert _run(MotMetric(gt_dir), TRACKS, batch_size=3, shuffle=True) == want
    # Two ranks, each with part of the frames: the gathered list (gather_states) gives the same.
    keys = sorted(TRACKS)
    random.Random(1).shuffle(keys)
    ranks = [MotMetric(gt_dir), MotMetric(gt_dir)]
    _feed(ranks[0], TRACKS, keys[:7], 2)
    _feed(ranks[1], TRACKS, keys[7:], 4)
    assert MotMetric.gather_states == ("frames",)
    ranks[0].frames = ranks[0].frames + ranks[1].frames
    assert ranks[0].compute() == want


def test_sequence_without_tracks_is_all_misses_and_reset(gt_dir, tmp_path):
    metric = MotMetric(gt_dir)
    only_a = {k: v for k, v in TRACKS.items() if k[0] == "SEQ-A"}
    got = _run(metric, only_a, batch_size=4)
    assert got["num_misses"] == 7 and got["num_false_positives"] == 0 and got["num_switches"] == 1
    assert got["MOTA"] == pytest.approx(1 - (7 + 1) / NUM_OBJECTS, abs=1e-12)
    assert _same(got, _direct(gt_dir, only_a, tmp_path)) and math.isnan(got["motp"])
    metric.reset()
    empty = metric.compute()
    assert empty["num_misses"] == NUM_OBJECTS and empty["MOTA"] == 0.0 and empty["IDF1"] == 0.0
    assert _run(metric, TRACKS) == _run(MotMetric(gt_dir), TRACKS)


def _one_line(excinfo):
    return "\n" not in str(excinfo.value)


def test_errors(gt_dir, tmp_path):
    metric = MotMetric(gt_dir)
    box = [[1.0, 2.0, 3.0, 4.0, 0.5, 0.0]]
    with pytest.raises(UsageError, match="sequence 'MOT17-02-SDP' is not in the ground truth") as e:
        metric.update({"tracks": [torch.tensor(box)]}, {"sequence": ["MOT17-02-SDP"], "frame": [1]})
    assert _one_line(e)
    with pytest.raises(UsageError, match=r"\(K, 6\) rows .* got \(1, 5\)") as e:
        metric.update({"tracks": [torch.tensor(box)[:, :5]]}, {"sequence": ["SEQ-A"], "frame": [1]})
    assert _one_line(e)
    with pytest.raises(UsageError, match="1-based") as e:
        metric.update({"tracks": [torch.tensor(box)]}, {"sequence": ["SEQ-A"], "frame": [0]})
    with pytest.raises(UsageError, match="track ids are integers >= 0") as e:
        metric.update({"tracks": [torch.tensor([[1.0, 2.0, 3.0, 4.0, 0.5, -1.0]])]}, {"sequence": ["SEQ-A"],
                                                                                     "frame": [1]})
    with pytest.raises(UsageError, match="2 frames of tracks but 1 sequence names") as e:
        metric.update({"tracks": [torch.tensor(box)] * 2}, {"sequence": ["SEQ-A"], "frame": [1]})
    metric.update({"tracks": [torch.tensor(box)] * 2}, {"sequence": ["SEQ-A", "SEQ-A"], "frame": [2, 2]})
    with pytest.raises(UsageError, match="frame 2 of sequence SEQ-A was given twice") as e:
        metric.compute()
    assert _one_line(e)

    with pytest.raises(FileNotFoundError, match="mot_missing: MOT ground-truth directory not found") as e:
        MotMetric(tmp_path / "mot_missing")
    assert _one_line(e)
    (gt_dir / "SEQ-C").mkdir()
    with pytest.raises(FileNotFoundError, match=r"SEQ-C/gt/gt.txt: MOT ground-truth file not found") as e:
        MotMetric(gt_dir)
    assert _one_line(e)
    (gt_dir / "SEQ-C" / "gt").mkdir()
    (gt_dir / "SEQ-C" / "gt" / "gt.txt").write_text("1,1,10,10,20,20,1,1,1\n2,1,x,10,20,20,1,1,1\n")
    with pytest.raises(DatasetError, match="SEQ-C/gt/gt.txt: not a MOT gt.txt") as e:
        MotMetric(gt_dir)
    assert _one_line(e)
    (gt_dir / "SEQ-C" / "gt" / "gt.txt").write_text("1,1,10,10,20,20,0,1,1\n2,1,10,10,20,20\n")  # conf 0 or none
    with pytest.raises(DatasetError, match="no ground-truth row with conf 1") as e:
        MotMetric(gt_dir)
    assert _one_line(e)
