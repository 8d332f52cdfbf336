"""MOT17 data: seqinfo.ini read as INI, gt/det parsing and its one-line errors, the half split on a
hand-made tree (exact files, the tid counter's rules) and on the generator's output (against
independent statements of the rules), the generator (deterministic, visibility = the unoccluded
fraction of the box), its truth surviving split -> packer -> LmdbDataset, resuming an interrupted
pack, and the three tools' command lines."""

from __future__ import annotations

import itertools
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_interrupted_pack_resumes, assert_one_line_error, run_tool_here
from hbdk_sim.data.datasets import mot17
from hbdk_sim.data.datasets.clips import ClipDataset
from hbdk_sim.data.datasets.lmdb import LmdbDataset
from hbdk_sim.data.datasets.mot17 import (
    GtRow,
    SeqInfo,
    SplitSummary,
    pack_mot17,
    read_det,
    read_gt,
    read_seqinfo,
    read_split,
    seqinfo_text,
    split_mot17_half,
)
from hbdk_sim.data.datasets.synthetic_mot17 import make_synthetic_mot17, sequence_names
from hbdk_sim.data.packer import read_meta
from hbdk_sim.errors import DatasetError
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---- seqinfo.ini, gt.txt, det.txt ---------------------------------------------------------------------------

SEQINFO = {"name": "MOT17-02-SDP", "imDir": "img1", "frameRate": "30", "seqLength": "600", "imWidth": "1920",
           "imHeight": "1080", "imExt": ".jpg"}


@pytest.mark.parametrize("order_seed", [0, 1, 2])
def test_seqinfo_is_read_as_ini_whatever_the_key_order(tmp_path, order_seed):
    keys = list(SEQINFO)
    random.Random(order_seed).shuffle(keys)
    # Spaces around '=' and a comment: an INI reader takes them, HAT's str.find parsing would not.
    text = "; MOT17 sequence\n[Sequence]\n" + "".join(f"{k} = {SEQINFO[k]}\n" for k in keys)
    info = read_seqinfo(_write(tmp_path / "seqinfo.ini", text))
    assert info == SeqInfo("MOT17-02-SDP", "img1", 30, 600, 1920, 1080, ".jpg")
    assert seqinfo_text(info) == "[Sequence]\n" + "".join(f"{k}={v}\n" for k, v in SEQINFO.items())
    assert read_seqinfo(_write(tmp_path / "again.ini", seqinfo_text(info))) == info


@pytest.mark.parametrize("text,message", [
    ("[Sequence]\nname=a\nimDir=img1\nframeRate=30\nimWidth=64\nimHeight=48\nimExt=.jpg\n",
     r"\[Sequence\] lacks seqLength; add it \(e\.g\. seqLength=\.\.\.\)"),
    ("[Sequence]\nname=a\nimDir=img1\nframeRate=30\nseqLength=ten\nimWidth=64\nimHeight=48\nimExt=.jpg\n",
     r"seqLength=ten is not a positive integer"),
    ("[Seq]\nname=a\n", r"no \[Sequence\] section"),
    ("name=a\n", r"not an INI file"),
])
def test_a_bad_seqinfo_is_one_error_naming_the_file(tmp_path, text, message):
    path = _write(tmp_path / "seqinfo.ini", text)
    with pytest.raises(DatasetError, match=message) as err:
        read_seqinfo(path)
    assert str(err.value).startswith(f"{path}: ") and len(str(err.value).splitlines()) == 1


def test_gt_and_det_parse_in_file_order(tmp_path):
    gt = _write(tmp_path / "gt.txt", "1,1,912,484,97,109,0,7,1\n\n2,1,-3.5,480,97,109,1,1,0.86477\n"
                                     "1.0,2,10,20,30,40,1,1,0\n")
    assert read_gt(gt) == [GtRow(1, 1, 912, 484, 97, 109, 0, 7, 1.0), GtRow(2, 1, -3.5, 480, 97, 109, 1, 1, 0.86477),
                           GtRow(1, 2, 10, 20, 30, 40, 1, 1, 0.0)]
    det = _write(tmp_path / "det.txt", "1,-1,1359.1,413.27,120.26,362.77,2.3092,-1,-1,-1\n")
    np.testing.assert_array_equal(read_det(det), [[1, -1, 1359.1, 413.27, 120.26, 362.77, 2.3092, -1, -1, -1]])
    assert read_det(_write(tmp_path / "empty.txt", "")).shape == (0, 10)


@pytest.mark.parametrize("line,message", [
    ("1,2,3,4,5,6,1,1", r"has 8 fields, expected 9 \(frame,id,bb_left,bb_top,bb_width,bb_height,consider,class,"
                        r"visibility\); fix the line"),
    ("1,x,3,4,5,6,1,1,1", r"id 'x' is not a finite number"),
    ("1,2.5,3,4,5,6,1,1,1", r"id '2\.5' is not an integer"),
    ("0,2,3,4,5,6,1,1,1", r"frame 0 is not a frame number"),
    ("1,2,3,4,0,6,1,1,1", r"bb_width and bb_height must be positive"),
    ("1,2,3,nan,5,6,1,1,1", r"bb_top 'nan' is not a finite number"),
    ("1,2,3,4,5,6,2,1,1", r"consider flag 2 is not 0 or 1"),
    ("1,2,3,4,5,6,1,13,1", r"class 13 is not one of MOT17's classes 1\.\.12"),
    ("1,2,3,4,5,6,1,1,1.5", r"visibility 1\.5 is outside \[0, 1\]"),
])
def test_a_malformed_gt_line_is_one_error_naming_file_and_line(tmp_path, line, message):
    path = _write(tmp_path / "gt.txt", f"1,1,912,484,97,109,0,7,1\n{line}\n")
    with pytest.raises(DatasetError, match=message) as err:
        read_gt(path)
    assert str(err.value).startswith(f"{path}:2: ") and len(str(err.value).splitlines()) == 1


def test_a_malformed_det_line_names_file_and_line(tmp_path):
    path = _write(tmp_path / "det.txt", "1,-1,1,2,3,4,0.9,-1,-1,-1\n1,-1,1,2,3,4,0.9\n")
    with pytest.raises(DatasetError, match=r"det\.txt:2: det line .* has 7 fields, expected 10"):
        read_det(path)


# ---- the half split on a hand-made tree ---------------------------------------------------------------------


def _sequence(root: Path, name: str, length: int, gt: str, width: int = 100, height: int = 50) -> Path:
    seq = root / "train" / name
    _write(seq / "seqinfo.ini", seqinfo_text(SeqInfo(name, "img1", 30, length, width, height, ".jpg")))
    _write(seq / "gt" / "gt.txt", gt)
    for frame in range(1, length + 1):
        (seq / "img1").mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (width, height), (10 * frame, 80, 120)).save(seq / "img1" / f"{frame:06d}.jpg")
    return seq


# Sequence A (5 frames, half 2): its train rows kept for labels have ids 3, 3, 6, 3 -> tids 1, 1, 2, 3
# (id 3 returning after 6 is a new tid); its test rows ids 3, 6 -> 1, 2. Sequence B (4 frames, half 2)
# starts with id 3, the id A's train rows ended with: the train counter does not move (3), then id 1 -> 4.
GT_A = ("1,3,10,10,10,20,1,1,1\n2,3,12,10,10,20,1,1,0.5\n4,3,14,10,10,20,1,1,1\n1,4,50,5,20,40,0,1,1\n"
        "2,5,60,5,20,40,1,7,1\n2,6,70,5,10,10,1,1,1\n1,3,20,20,10,20,1,1,1\n5,6,1,1,10,10,1,1,0.2\n")
GT_B = "1,3,0,0,50,25,1,1,1\n2,1,25,0,50,25,1,1,1\n3,2,5,5,10,10,1,1,1\n4,2,5,5,10,10,1,2,1\n"


@pytest.fixture()
def hand_made(tmp_path):
    a = _sequence(tmp_path / "raw", "MOT17-02-SDP", 5, GT_A)
    b = _sequence(tmp_path / "raw", "MOT17-04-SDP", 4, GT_B)
    _sequence(tmp_path / "raw", "MOT17-02-DPM", 5, GT_A)  # another detector's copy: not split
    return tmp_path, a, b


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_bytes().decode() if p.suffix in (".txt", ".ini") else "<image>"
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_half_split_of_a_hand_made_tree(hand_made):
    root, a, b = hand_made
    summary = split_mot17_half(root / "raw", root / "split")
    assert summary == {"train": SplitSummary(2, 4, 6, 4), "test": SplitSummary(2, 5, 3, 3)}
    info = seqinfo_text(SeqInfo("MOT17-02-SDP", "img1", 30, 2, 100, 50, ".jpg"))
    assert _tree(root / "split") == {
        "test/MOT17-02-SDP/gt/gt.txt": "2,3,14,10,10,20,1,1,1\n3,6,1,1,10,10,1,1,0.2\n",
        "test/MOT17-02-SDP/img1/000003.jpg": "<image>", "test/MOT17-02-SDP/img1/000004.jpg": "<image>",
        "test/MOT17-02-SDP/img1/000005.jpg": "<image>",
        "test/MOT17-02-SDP/labels_with_ids/000004.txt": "0 1 0.190000 0.400000 0.100000 0.400000\n",
        "test/MOT17-02-SDP/labels_with_ids/000005.txt": "0 2 0.060000 0.120000 0.100000 0.200000\n",
        "test/MOT17-02-SDP/seqinfo.ini": info.replace("seqLength=2", "seqLength=3"),
        "test/MOT17-04-SDP/gt/gt.txt": "1,2,5,5,10,10,1,1,1\n2,2,5,5,10,10,1,2,1\n",
        "test/MOT17-04-SDP/img1/000003.jpg": "<image>", "test/MOT17-04-SDP/img1/000004.jpg": "<image>",
        "test/MOT17-04-SDP/labels_with_ids/000003.txt": "0 3 0.100000 0.200000 0.100000 0.200000\n",
        "test/MOT17-04-SDP/seqinfo.ini": info.replace("02", "04"),
        "train/MOT17-02-SDP/gt/gt.txt": "1,3,10,10,10,20,1,1,1\n2,3,12,10,10,20,1,1,0.5\n1,4,50,5,20,40,0,1,1\n"
                                        "2,5,60,5,20,40,1,7,1\n2,6,70,5,10,10,1,1,1\n1,3,20,20,10,20,1,1,1\n",
        "train/MOT17-02-SDP/img1/000001.jpg": "<image>", "train/MOT17-02-SDP/img1/000002.jpg": "<image>",
        "train/MOT17-02-SDP/labels_with_ids/000001.txt": "0 1 0.150000 0.400000 0.100000 0.400000\n"
                                                         "0 3 0.250000 0.600000 0.100000 0.400000\n",
        "train/MOT17-02-SDP/labels_with_ids/000002.txt": "0 1 0.170000 0.400000 0.100000 0.400000\n"
                                                         "0 2 0.750000 0.200000 0.100000 0.200000\n",
        "train/MOT17-02-SDP/seqinfo.ini": info,
        "train/MOT17-04-SDP/gt/gt.txt": "1,3,0,0,50,25,1,1,1\n2,1,25,0,50,25,1,1,1\n",
        "train/MOT17-04-SDP/img1/000001.jpg": "<image>", "train/MOT17-04-SDP/img1/000002.jpg": "<image>",
        "train/MOT17-04-SDP/labels_with_ids/000001.txt": "0 3 0.250000 0.250000 0.500000 0.500000\n",
        "train/MOT17-04-SDP/labels_with_ids/000002.txt": "0 4 0.500000 0.250000 0.500000 0.500000\n",
        "train/MOT17-04-SDP/seqinfo.ini": info.replace("02", "04"),
    }
    assert (root / "split" / "test" / "MOT17-02-SDP" / "img1" / "000005.jpg").read_bytes() == \
        (a / "img1" / "000005.jpg").read_bytes()
    with pytest.raises(FileExistsError, match="--overwrite"):
        split_mot17_half(root / "raw", root / "split")
    assert split_mot17_half(root / "raw", root / "split", overwrite=True) == summary

    frames = read_split(root / "split" / "test")
    assert [(f.file_name, f.sequence, f.frame, f.image_id) for f in frames] == [
        ("MOT17-02-SDP/img1/000003.jpg", "MOT17-02-SDP", 1, 0), ("MOT17-02-SDP/img1/000004.jpg", "MOT17-02-SDP", 2, 1),
        ("MOT17-02-SDP/img1/000005.jpg", "MOT17-02-SDP", 3, 2), ("MOT17-04-SDP/img1/000003.jpg", "MOT17-04-SDP", 1, 3),
        ("MOT17-04-SDP/img1/000004.jpg", "MOT17-04-SDP", 2, 4)]
    np.testing.assert_allclose(frames[1].boxes, [[14, 10, 24, 30]], atol=1e-4)
    np.testing.assert_array_equal(frames[1].track_ids, [1])
    np.testing.assert_array_equal(frames[3].track_ids, [1_000_003])
    assert frames[0].boxes.shape == (0, 4) and frames[0].track_ids.dtype == np.int64


def test_split_errors_name_the_file_and_line(hand_made):
    root, a, b = hand_made
    gt = _write(b / "gt" / "gt.txt", "1,3,0,0,50,25,1,1,1\n5,1,25,0,50,25,1,1,1\n")
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(gt))}:2: frame 5 is beyond seqLength 4 of .*seqinfo.ini; fix the line"):
        split_mot17_half(root / "raw", root / "split")
    _write(b / "gt" / "gt.txt", "1,3,0,0,50,25,1,1\n")
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(gt))}:1: gt line .* has 8 fields"):
        split_mot17_half(root / "raw", root / "split")
    _write(b / "gt" / "gt.txt", GT_B)
    (a / "img1" / "000004.jpg").unlink()
    with pytest.raises(DatasetError, match=r"000004\.jpg: missing, frame 4 of 5 \(seqLength in .*\); restore"):
        split_mot17_half(root / "raw", root / "split")
    _write(a / "seqinfo.ini", "[Sequence]\nname=x\nimDir=img1\n")
    with pytest.raises(DatasetError, match=r"seqinfo\.ini: \[Sequence\] lacks frameRate, seqLength, imWidth"):
        split_mot17_half(root / "raw", root / "split")
    assert not (root / "split").exists()  # nothing is written before every input is checked
    with pytest.raises(FileNotFoundError, match="MOT17 root holding train/MOT17-XX-SDP/"):
        split_mot17_half(root / "nowhere", root / "split")


def test_packer_errors_name_the_file_and_line(hand_made):
    root, _, _ = hand_made
    split_mot17_half(root / "raw", root / "split")
    label = _write(root / "split" / "train" / "MOT17-04-SDP" / "labels_with_ids" / "000002.txt",
                   "0 4 0.5 0.25 0.5 0.5\n0 4 0.5 0.25 0.5\n")
    with pytest.raises(DatasetError, match=rf"^{re.escape(str(label))}:2: label line .* has 5 fields, expected 6"):
        pack_mot17(root / "split" / "train", root / "lmdb", "train")
    label.unlink()
    _write(label.with_name("000009.txt"), "0 4 0.5 0.25 0.5 0.5\n")
    with pytest.raises(DatasetError, match=r"000009\.txt: no image 000009\.jpg in"):
        pack_mot17(root / "split" / "train", root / "lmdb", "train")
    with pytest.raises(DatasetError, match=r"labels_with_ids: missing; .*split folder written by gen_mot_data"):
        pack_mot17(root / "raw" / "train", root / "lmdb", "train")
    with pytest.raises(DatasetError, match=r"split/test: not a sequence folder \(no seqinfo\.ini\); .*holds sequence "
                                           r"folders itself: pass it\)"):
        pack_mot17(root / "split", root / "lmdb", "train")
    info = root / "split" / "test" / "MOT17-02-SDP" / "seqinfo.ini"
    _write(info, info.read_text().replace("imWidth=100", "imWidth=101"))
    with pytest.raises(DatasetError, match=r"000003\.jpg: the image is 100x50 but its seqinfo\.ini says imWidth 101"):
        pack_mot17(root / "split" / "test", root / "lmdb", "test")


# ---- the generator ------------------------------------------------------------------------------------------

W, H, FRAMES, SEQUENCES = 192, 108, 51, 3
HALF = FRAMES // 2


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generator_is_deterministic(tmp_path):
    args = {"sequences": 2, "frames": 4, "width": 96, "height": 64, "pedestrians": 3}
    make_synthetic_mot17(tmp_path / "a", seed=4, **args)
    make_synthetic_mot17(tmp_path / "b", seed=4, **args)
    make_synthetic_mot17(tmp_path / "c", seed=5, **args)
    a = _files(tmp_path / "a")
    assert len(a) == 2 * (4 + 3) and a == _files(tmp_path / "b") and a != _files(tmp_path / "c")
    with pytest.raises(FileExistsError):
        make_synthetic_mot17(tmp_path / "a", seed=4, **args)
    make_synthetic_mot17(tmp_path / "a", seed=4, overwrite=True, **args)
    assert _files(tmp_path / "a") == a


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    root = tmp_path_factory.mktemp("mot17")
    truth = make_synthetic_mot17(root / "raw", sequences=SEQUENCES, frames=FRAMES, width=W, height=H, pedestrians=7,
                                 seed=3)
    summary = split_mot17_half(root / "raw", root / "split")
    return root, truth, summary


def test_generator_gt_follows_the_scene_rules(generated):
    root, truth, _ = generated
    assert list(truth) == sequence_names(SEQUENCES) == ["MOT17-02-SDP", "MOT17-04-SDP", "MOT17-05-SDP"]
    entering = leaving = outside = 0
    for name, gt in truth.items():
        seq = root / "raw" / "train" / name
        assert read_seqinfo(seq / "seqinfo.ini") == SeqInfo(name, "img1", 30, FRAMES, W, H, ".jpg")
        assert len(list((seq / "img1").glob("*.jpg"))) == FRAMES
        np.testing.assert_array_equal(np.array([[getattr(r, f) for f in GtRow.__dataclass_fields__]
                                                for r in read_gt(seq / "gt" / "gt.txt")]), gt)
        frame, ids, left, top, w, h, consider, cls = (gt[:, k] for k in range(8))
        assert (np.lexsort((frame, ids)) == np.arange(len(gt))).all()  # by id, then frame
        first = {i: frame[ids == i].min() for i in set(ids.tolist())}
        assert sorted(first) == list(range(1, len(first) + 1))
        assert [first[i] for i in sorted(first)] == sorted(first.values())  # ids in order of first appearance
        assert set(cls.tolist()) == {1, 2, 7} and not consider[cls != 1].any()
        inside = ((np.minimum(left + w, W) - np.maximum(left, 0)) * (np.minimum(top + h, H) - np.maximum(top, 0)))
        assert (inside > 0).all()  # a row only while part of the box is in the image
        np.testing.assert_array_equal(consider[cls == 1], (inside / (w * h) >= 0.25)[cls == 1])
        for i in first:  # a track's frames are contiguous (nobody comes back)
            f = frame[ids == i]
            assert (np.diff(f) == 1).all()
            entering += f[0] > 1
            leaving += f[-1] < FRAMES
        outside += ((left < 0) | (left + w > W) | (top + h > H)).sum()
        still = gt[cls == 7]
        assert len(still) == FRAMES and len(np.unique(still[:, 2:6], axis=0)) == 1  # the static person
        det = read_det(seq / "det" / "det.txt")
        assert (det[:, 1] == -1).all() and (det[:, 7:] == -1).all() and set(det[:, 0].tolist()) <= set(range(1, FRAMES + 1))
        assert ((det[:, 6] >= 0.05) & (det[:, 6] <= 1)).all() and (np.diff(det[:, 0]) >= 0).all()
        assert 0.5 * len(gt[gt[:, 8] >= 0.25]) < len(det) < 1.5 * len(gt)
    assert entering and leaving and outside


def test_visibility_is_the_unoccluded_fraction_of_the_box(generated):
    _, truth, _ = generated
    ys, xs = np.mgrid[0:H, 0:W]
    occluded = whole = 0
    for gt in truth.values():
        for f in range(1, FRAMES + 1):
            rows = sorted(gt[gt[:, 0] == f].tolist(), key=lambda r: (r[3] + r[5], r[1]))  # drawn far to near
            boxes, people = [], []
            for _, _, left, top, w, h, *_ in rows:
                left, top, w, h = int(left), int(top), int(w), int(h)
                boxes.append((xs >= left) & (xs < left + w) & (ys >= top) & (ys < top + h))
                # A body rectangle below a head disc of radius h / 10 touching the box top: the pixel centre
                # (x + 1/2, y + 1/2) within h / 10 of (left + w / 2, top + h / 10), scaled by 20 to stay in integers.
                head = (20 * (xs - left) + 10 - 10 * w) ** 2 + (20 * (ys - top) + 10 - 2 * h) ** 2 <= 4 * h * h
                people.append(head | (boxes[-1] & (ys >= top + h // 5)))
            for k, row in enumerate(rows):
                nearer = np.logical_or.reduce(people[k + 1:]) if k + 1 < len(rows) else np.zeros((H, W), bool)
                expected = (boxes[k] & ~nearer).sum() / (row[4] * row[5])
                assert 0 <= row[8] <= 1 and row[8] == pytest.approx(expected, abs=6e-6)
                fully_in = row[2] >= 0 and row[3] >= 0 and row[2] + row[4] <= W and row[3] + row[5] <= H
                occluded += fully_in and row[8] < 1
                whole += fully_in and not (boxes[k] & nearer).any()
                if fully_in and not (boxes[k] & nearer).any():
                    assert row[8] == 1
    assert occluded > 20 and whole > 20


def _kept_rows(root: Path, truth: dict[str, np.ndarray], split: str) -> list[tuple[str, list[float]]]:
    """The rows the labels hold, in scan order: sequences sorted, gt order, the split's frames,
    consider != 0 and class 1."""
    frames = range(1, HALF + 1) if split == "train" else range(HALF + 1, FRAMES + 1)
    return [(name, row) for name in sorted(truth) for row in truth[name].tolist()
            if int(row[0]) in frames and row[6] != 0 and row[7] == 1]


def _tids(kept: list[tuple[str, list[float]]]) -> list[int]:
    """The spec's counter restated: tid k+1 for the k-th run of consecutive equal ids in the scan."""
    runs = [len(list(g)) for _, g in itertools.groupby(r[1] for _, r in kept)]
    return [k + 1 for k, n in enumerate(runs) for _ in range(n)]


def test_half_split_of_the_generated_data(generated):
    root, truth, summary = generated
    assert not (root / "split" / "train" / "MOT17-02-DPM").exists()
    for name in truth:
        src = root / "raw" / "train" / name
        src_lines = (src / "gt" / "gt.txt").read_text().splitlines()
        for split, frames, offset in (("train", range(1, HALF + 1), 0), ("test", range(HALF + 1, FRAMES + 1), HALF)):
            dst = root / "split" / split / name
            assert sorted(p.name for p in (dst / "img1").iterdir()) == [f"{f:06d}.jpg" for f in frames]
            assert all((dst / "img1" / f"{f:06d}.jpg").read_bytes() == (src / "img1" / f"{f:06d}.jpg").read_bytes()
                       for f in frames)
            lines = [line.split(",") for line in src_lines if int(line.split(",")[0]) in frames]
            assert (dst / "gt" / "gt.txt").read_text().splitlines() == \
                [",".join([str(int(f[0]) - offset), *f[1:]]) for f in lines]
            assert read_seqinfo(dst / "seqinfo.ini") == SeqInfo(name, "img1", 30, len(frames), W, H, ".jpg")
    for split in ("train", "test"):
        kept = _kept_rows(root, truth, split)
        expected: dict[tuple[str, int], list[list[float]]] = {}
        for (name, row), tid in zip(kept, _tids(kept), strict=True):
            _, _, left, top, w, h = row[:6]
            expected.setdefault((name, int(row[0])), []).append([0, tid, (left + w / 2) / W, (top + h / 2) / H,
                                                                 w / W, h / H])
        found = {(p.parent.parent.name, int(p.stem)): [[float(v) for v in line.split()]
                                                      for line in p.read_text().splitlines()]
                 for p in (root / "split" / split).glob("*/labels_with_ids/*.txt")}
        assert found.keys() == expected.keys()
        for key, rows in expected.items():
            np.testing.assert_allclose(found[key], rows, rtol=0, atol=6e-7)  # 6 decimals, half-way cases either way
        frames = HALF if split == "train" else FRAMES - HALF
        assert summary[split] == SplitSummary(SEQUENCES, SEQUENCES * frames, len(kept), _tids(kept)[-1])


def test_generator_truth_survives_split_packer_and_reader(generated):
    root, truth, _ = generated
    for split, codec in (("train", "source"), ("test", "raw")):
        result = pack_mot17(root / "split" / split, root / "lmdb", split, num_workers=1 if split == "test" else 0,
                            image_codec=codec)
        ds = LmdbDataset(result.path)
        meta = read_meta(result.path)
        assert (meta["name"], meta["split"], meta["class_names"], meta["video_id_stride"]) == \
            ("mot17", split, ["pedestrian"], 1_000_000)
        first = 1 if split == "train" else HALF + 1
        frames = HALF if split == "train" else FRAMES - HALF
        assert len(ds) == SEQUENCES * frames
        assert meta["sequence_lengths"] == [[name, frames] for name in sorted(truth)]
        kept = _kept_rows(root, truth, split)
        tids = _tids(kept)
        ids_seen: dict[tuple[str, int], set[int]] = {}
        for index in range(len(ds)):
            video, k = divmod(index, frames)
            name, original = sorted(truth)[video], first + k
            sample, record = ds[index], ds.read_record(index)
            file_name = f"{name}/img1/{original:06d}.jpg"
            assert (sample["image_id"], sample["file_name"], sample["sequence"], sample["frame"]) == \
                (index, file_name, name, k + 1)
            assert record["shape"] == [H, W] and sample["img"].shape == (H, W, 3) and sample["img"].dtype == np.uint8
            if codec == "source":
                assert record["img_format"] == "jpg"
                assert record["img"] == (root / "raw" / "train" / file_name).read_bytes()
            else:
                assert record["img_format"] == "raw"
                np.testing.assert_array_equal(sample["img"], np.asarray(Image.open(root / "raw" / "train" / file_name)))
            here = [(row, tid) for (n, row), tid in zip(kept, tids, strict=True) if n == name and row[0] == original]
            boxes = np.array([[r[2], r[3], r[2] + r[4], r[3] + r[5]] for r, _ in here], np.float32).reshape(-1, 4)
            np.testing.assert_allclose(sample["gt_boxes"], boxes, rtol=0, atol=1e-3)
            np.testing.assert_array_equal(sample["gt_track_ids"], [tid + video * 1_000_000 for _, tid in here])
            np.testing.assert_array_equal(sample["gt_classes"], np.zeros(len(here), np.int64))
            assert sample["gt_boxes"].dtype == np.float32 and sample["gt_track_ids"].dtype == np.int64
            for (r, _), track in zip(here, sample["gt_track_ids"].tolist(), strict=True):
                ids_seen.setdefault((name, int(r[1])), set()).add(track)
        # A generated track's rows are contiguous, so one gt id is one packed track id throughout.
        assert all(len(v) == 1 for v in ids_seen.values())
        assert len({t for v in ids_seen.values() for t in v}) == len(ids_seen)
        # The metadata lets ClipDataset keep a clip inside its sequence: the last frame's clip ends there.
        del ds  # LMDB opens a database once per process: close this reader's first
        clip = ClipDataset(result.path, lengths=(3,), length_epochs=(), interval=10, random_interval=False)
        assert [f["frame"] for f in clip[frames - 1]] == [frames - 20, frames - 10, frames]
        assert {f["sequence"] for f in clip[frames - 1]} == {sorted(truth)[0]}


def test_an_interrupted_pack_resumes_to_the_same_database(generated, monkeypatch, tmp_path):
    root, _, _ = generated
    assert_interrupted_pack_resumes(monkeypatch, mot17, "encode_frame", pack_mot17, root / "split" / "train", tmp_path,
                                    SEQUENCES * HALF)


# ---- the tools ----------------------------------------------------------------------------------------------


def test_tools_generate_split_and_pack(tmp_path):
    code, out, err = run_tool_here("make_synthetic_mot17", ["--out", tmp_path / "raw", "--sequences", "2", "--frames",
                                                            "5", "--width", "96", "--height", "64", "--seed", "1"])
    assert code == 0, err
    gt = [read_gt(tmp_path / "raw" / "train" / n / "gt" / "gt.txt") for n in sequence_names(2)]
    tracks = sum(len({r.track_id for r in rows}) for rows in gt)
    assert out.strip() == (f"wrote 2 sequences of 5 frames of 96x64 ({tracks} tracks, {sum(map(len, gt))} gt rows) "
                           f"to {tmp_path / 'raw'}")
    code, out, err = run_tool_here("gen_mot_data", ["--src-data-path", tmp_path / "raw", "--out-dir", tmp_path / "split"])
    assert code == 0, err
    assert out.startswith(f"split 2 SDP sequences into {tmp_path / 'split'} (train 4 frames, ")
    assert "; test 6 frames, " in out
    code, out, err = run_tool_here("mot17_packer", ["--src-data-dir", tmp_path / "split" / "test", "--target-data-dir",
                                                    tmp_path / "lmdb", "--split-name", "test", "--pack-type", "lmdb",
                                                    "--num-workers", "0"])
    assert code == 0, err
    assert out.startswith(f"packed 6 samples into {tmp_path / 'lmdb' / 'test_lmdb'} (6 written")
    assert len(LmdbDataset(tmp_path / "lmdb" / "test_lmdb")) == 6


def test_tools_report_bad_input_in_one_line(hand_made):
    root, a, _ = hand_made
    gt = _write(a / "gt" / "gt.txt", "1,3,10,10,10,20,1,1,1\n2,3,12,10,-10,20,1,1,0.5\n")
    code, out, err = run_tool_here("gen_mot_data", ["--src-data-path", root / "raw", "--out-dir", root / "split"])
    assert_one_line_error(code, err, "gen_mot_data", f"{gt}:2: box -10x20: bb_width and bb_height must be positive")
    assert out == ""
    code, _, err = run_tool_here("mot17_packer", ["--src-data-dir", root / "nowhere", "--target-data-dir",
                                                  root / "lmdb", "--split-name", "train"])
    assert_one_line_error(code, err, "mot17_packer", f"{root / 'nowhere'}: no such directory")
    code, _, err = run_tool_here("mot17_packer", ["--src-data-dir", root / "raw" / "train", "--target-data-dir",
                                                  root / "lmdb", "--split-name", "val"])
    assert_one_line_error(code, err, "mot17_packer", "--split-name")
    code, _, err = run_tool_here("make_synthetic_mot17", ["--out", root / "gen", "--frames", "1"])
    assert_one_line_error(code, err, "make_synthetic_mot17", "--frames")
    code, _, err = run_tool_here("make_synthetic_mot17", ["--out", root / "raw", "--sequences", "1", "--frames", "2",
                                                          "--width", "64", "--height", "48"])
    assert_one_line_error(code, err, "make_synthetic_mot17", f"{a} exists; pass overwrite=True (--overwrite)")


def test_converter_help_runs_as_a_script():
    run = subprocess.run([sys.executable, str(REPO / "tools" / "dataset_converters" / "gen_mot_data.py"), "--help"],
                         capture_output=True, text=True, timeout=60)
    if run.returncode != 0 and "ModuleNotFoundError" in run.stderr and "mot17" in run.stderr:
        pytest.skip("the installed hbdk_sim predates hbdk_sim.data.datasets.mot17")
    assert run.returncode == 0, run.stderr
    assert "--src-data-path" in run.stdout and "--out-dir" in run.stdout
