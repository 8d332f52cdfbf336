"""CarFusion data: the raw-layout parsers on hand-written files, the crop arithmetic and keypoint
shift, the packed keypoints, the synthetic generator (deterministic, its truth surviving converter ->
packer -> LmdbDataset), resuming an interrupted pack, and the three tools' command lines."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_interrupted_pack_resumes
from hbdk_sim.data.datasets import carfusion
from hbdk_sim.data.datasets.carfusion import (
    FLIP_PAIRS,
    KEPT_ROWS,
    KEYPOINT_NAMES,
    SKELETON,
    convert_carfusion,
    crop_box,
    pack_carfusion,
    packed_keypoints,
    pixel_crop_box,
    read_bb_file,
    read_gt_file,
)
from hbdk_sim.data.datasets.lmdb import LmdbDataset
from hbdk_sim.data.datasets.synthetic_carfusion import make_synthetic_carfusion, sequence_names
from hbdk_sim.errors import DatasetError
from PIL import Image

REPO = Path(__file__).resolve().parents[2]


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# ---- definitions --------------------------------------------------------------------------------------------


def test_keypoint_definitions_are_consistent():
    assert len(KEYPOINT_NAMES) == 12 and KEPT_ROWS == (1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13)
    for right, left in FLIP_PAIRS:
        assert KEYPOINT_NAMES[right].replace("Right", "Left") == KEYPOINT_NAMES[left]
    assert all(0 <= a < 12 and 0 <= b < 12 and a != b for a, b in SKELETON)
    assert len(set(map(frozenset, SKELETON))) == len(SKELETON)
    assert sequence_names(("butler", "craig"), 6) == ["car_butler1", "car_butler2", "car_craig1", "car_craig2",
                                                      "car_butler3", "car_butler4"]


# ---- parsing ------------------------------------------------------------------------------------------------


def test_bb_lines_in_both_forms(tmp_path):
    bb = _write(tmp_path / "bb.txt", "[100, 50, 80, 200],car\n\n[10.5 20 30 40]\n[1 2 3 4],car\n")
    # Comma form: xmin, ymin, h, w; space form: x, y, w, h; blank lines do not count.
    assert read_bb_file(bb) == [(100, 50, 200, 80), (10.5, 20, 30, 40), (1, 2, 3, 4)]


def test_gt_lines_fill_the_14_row_array(tmp_path):
    gt = _write(tmp_path / "gt.txt", "120,60,1,0,2\n130.5,70,13,1,1\n1,2,5,0,3\n\n7,8,9,1,2\n")
    k = read_gt_file(gt, 2)
    expected = np.zeros((2, 14, 3))
    expected[0, 1] = (120, 60, 1)  # vis 2 (occluded) -> 1
    expected[1, 13] = (130.5, 70, 2)  # vis 1 -> 2
    expected[0, 5] = (1, 2, 2)  # vis 3 -> 2
    expected[1, 9] = (7, 8, 1)
    np.testing.assert_array_equal(k, expected)


@pytest.mark.parametrize("kind,line,message", [
    ("bb", "100, 50, 80, 200", "is not"),
    ("bb", "[1, 2, 3]", "holds 3 numbers"),
    ("bb", "[1 2 3 x]", "not a finite number"),
    ("bb", "[1, 2, 0, 5],car", "must be positive"),
    ("bb", "[1 2 3 4] car", "is not"),
    ("gt", "1,2,3,0", "has 4 fields"),
    ("gt", "1,2,14,0,1", "keypoint_idx 14 is outside 1..13"),
    ("gt", "1,2,0,0,1", "keypoint_idx 0 is outside"),
    ("gt", "1,2,3,2,1", "instance_id 2 has no box"),
    ("gt", "1,2,3,-1,1", "instance_id -1 has no box"),
    ("gt", "1,2,3,0,7", "vis 7"),
    ("gt", "a,2,3,0,1", "x 'a' is not a finite number"),
    ("gt", "1,2,3.5,0,1", "not an integer"),
])
def test_bad_lines_name_file_and_line(tmp_path, kind, line, message):
    good = {"bb": "[1, 2, 3, 4],car", "gt": "5,6,1,0,1"}[kind]
    path = _write(tmp_path / f"{kind}.txt", f"{good}\n{line}\n")
    with pytest.raises(DatasetError, match=message) as err:
        read_bb_file(path) if kind == "bb" else read_gt_file(path, 2)
    assert str(err.value).startswith(f"{path}:2: ")


# ---- crop arithmetic, shift and packed keypoints ------------------------------------------------------------


def test_crop_box_grows_and_clips():
    assert crop_box((100, 50, 200, 100), 1920, 1080) == pytest.approx((80, 30, 320, 170))
    # Near the top-left corner the origin clips to 0 and the size stays 1.2w x 1.4h from there.
    assert crop_box((10, 5, 100, 50), 100, 60) == pytest.approx((0, 0, 100, 60))
    assert crop_box((10, 5, 50, 50), 1920, 1080) == pytest.approx((5, 0, 65, 70))
    # At the bottom-right border the far edges clip to the image.
    assert crop_box((170, 70, 40, 30), 200, 100) == pytest.approx((166, 64, 200, 100))
    # The pixels actually cut: rounded, as Pillow rounds a crop box.
    assert crop_box((10.3, 20.6, 50, 30), 1920, 1080) == pytest.approx((5.3, 14.6, 65.3, 56.6))
    assert pixel_crop_box((10.3, 20.6, 50, 30), 1920, 1080) == (5, 15, 65, 57)


def test_packed_keypoints_keep_12_rows_and_zero_attr_outside_the_crop():
    rows = np.zeros((14, 3))
    rows[:, :2] = -7  # unlabelled, shifted
    rows[1] = (0, 0, 2)  # on the corner: inside
    rows[2] = (60, 56, 1)  # on the far corner: inside
    rows[3] = (60.01, 10, 2)  # just right of the crop
    rows[4] = (10, -0.01, 1)  # just above
    rows[9] = (5, 5, 2)  # the exhaust: dropped
    rows[13] = (30, 20, 1)
    k = packed_keypoints(rows, 60, 56)
    assert k.dtype == np.float32 and k.shape == (12, 3)
    np.testing.assert_array_equal(k[:4], np.float32([[0, 0, 2], [60, 56, 1], [60.01, 10, 0], [10, -0.01, 0]]))
    np.testing.assert_array_equal(k[11], [30, 20, 1])
    np.testing.assert_array_equal(k[4:11], np.tile(np.float32([-7, -7, 0]), (7, 1)))


def _hand_made_dataset(root: Path) -> None:
    """One 200x100 frame whose red channel is x and green channel is y; two boxes."""
    yy, xx = np.mgrid[0:100, 0:200]
    pixels = np.stack([xx, yy * 2, np.full_like(xx, 128)], -1).astype(np.uint8)
    seq = root / "train" / "car_test1"
    (seq / "images_jpg").mkdir(parents=True)
    Image.fromarray(pixels).save(seq / "images_jpg" / "01_00000.jpg", quality=98)
    _write(seq / "bb" / "01_00000.txt", "[60, 30, 40, 50],car\n[170 70 40 30]\n")
    _write(seq / "gt" / "01_00000.txt", "70,40,1,0,1\n150,90,5,0,2\n56,22,10,0,3\n80,50,9,0,1\n180,80,4,1,2\n")


def test_converter_crops_shifts_and_the_packer_resolves_paths_from_the_json(tmp_path, monkeypatch):
    _hand_made_dataset(tmp_path / "raw")
    assert convert_carfusion(tmp_path / "raw", tmp_path / "conv") == {"train": 2}
    anno = json.loads((tmp_path / "conv" / "simple_anno" / "keypoints_train.json").read_text())
    key0, key1 = "train/car_test1/crop_imgs/01_00000_0.jpg", "train/car_test1/crop_imgs/01_00000_1.jpg"
    assert list(anno) == [key0, key1]
    # Box 0: (60, 30, w 50, h 40) -> crop (55, 22)-(115, 78); box 1 (170, 70, 40, 30) -> (166, 64)-(200, 100).
    rows0, rows1 = np.array(anno[key0]), np.array(anno[key1])
    np.testing.assert_array_equal(rows0[[0, 1, 5, 9, 10]], [[-55, -22, 0], [15, 18, 2], [95, 68, 1], [25, 28, 2],
                                                            [1, 0, 2]])
    np.testing.assert_array_equal(rows1[[0, 4]], [[-166, -64, 0], [14, 16, 1]])
    with Image.open(tmp_path / "conv" / key0) as crop:
        assert crop.size == (60, 56)
        r, g, _ = crop.convert("RGB").getpixel((0, 0))
        assert abs(r - 55) <= 3 and abs(g - 44) <= 3  # the crop starts at image pixel (55, 22)
    with Image.open(tmp_path / "conv" / key1) as crop:
        assert crop.size == (34, 36)
    with pytest.raises(FileExistsError, match="--overwrite"):
        convert_carfusion(tmp_path / "raw", tmp_path / "conv")
    assert convert_carfusion(tmp_path / "raw", tmp_path / "conv", overwrite=True) == {"train": 2}

    # The JSON keys are relative to the converter's output: it can move, the packer runs from anywhere.
    shutil.move(tmp_path / "conv", tmp_path / "moved")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    result = pack_carfusion(tmp_path / "moved", tmp_path / "lmdb", "train")
    assert result.path == tmp_path / "lmdb" / "train_lmdb" and result.num_samples == 2
    ds = LmdbDataset(result.path)
    s0, s1 = ds[0], ds[1]
    assert (s0["name"], s0["sequence"], s0["img"].shape) == ("01_00000_0", "car_test1", (56, 60, 3))
    expected0 = np.tile(np.float32([-55, -22, 0]), (12, 1))
    expected0[0] = (15, 18, 2)
    expected0[4] = (95, 68, 0)  # outside the 60-wide crop
    expected0[8] = (1, 0, 2)  # row 10; row 9 (the exhaust) is gone
    np.testing.assert_array_equal(s0["gt_keypoints"], expected0)
    assert s0["gt_keypoints"].dtype == np.float32
    expected1 = np.tile(np.float32([-166, -64, 0]), (12, 1))
    expected1[3] = (14, 16, 1)
    np.testing.assert_array_equal(s1["gt_keypoints"], expected1)
    raw = pack_carfusion(tmp_path / "moved", tmp_path / "lmdb_raw", "train", image_codec="raw")
    r0 = LmdbDataset(raw.path)[0]
    np.testing.assert_array_equal(r0["img"], s0["img"])
    np.testing.assert_array_equal(r0["gt_keypoints"], s0["gt_keypoints"])


def test_converter_refuses_a_box_off_the_image_and_a_stray_folder(tmp_path):
    _hand_made_dataset(tmp_path / "raw")
    _write(tmp_path / "raw" / "train" / "car_test1" / "bb" / "01_00000.txt", "[60, 30, 40, 50],car\n[300 70 40 30]\n")
    with pytest.raises(DatasetError, match="box 1 .* lies outside the 200x100 image"):
        convert_carfusion(tmp_path / "raw", tmp_path / "conv")
    (tmp_path / "raw" / "test" / "notes").mkdir(parents=True)
    with pytest.raises(DatasetError, match="without gt/"):
        convert_carfusion(tmp_path / "raw", tmp_path / "conv2")


# ---- the synthetic generator --------------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generator_is_deterministic(tmp_path):
    kw = dict(train_sequences=1, test_sequences=1, frames=2, cars=3, width=256, height=144)
    make_synthetic_carfusion(tmp_path / "a", seed=3, **kw)
    make_synthetic_carfusion(tmp_path / "b", seed=3, **kw)
    make_synthetic_carfusion(tmp_path / "c", seed=4, **kw)
    a, b, c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    assert len(a) == 12 and a == b
    assert a.keys() == c.keys() and a != c
    with pytest.raises(FileExistsError, match="--overwrite"):
        make_synthetic_carfusion(tmp_path / "a", seed=3, **kw)


def test_generator_draws_lights_in_their_colours(tmp_path):
    """At full size, the pixels at visible headlights are yellow-white and at tail lights red."""
    truth = make_synthetic_carfusion(tmp_path, train_sequences=1, test_sequences=0, frames=1, cars=5, seed=2)
    frame = truth["train"][0]
    with Image.open(tmp_path / "train" / frame.sequence / "images_jpg" / f"{frame.image_id}.jpg") as im:
        pixels = np.asarray(im.convert("RGB"), np.float64)
    head, tail = [], []
    for car in frame.keypoints:
        for k, (x, y, vis) in enumerate(car[4:8], 5):
            if vis != 2:
                (head if k in (5, 6) else tail).append(pixels[int(y), int(x)])
    assert head and tail
    h, t = np.median(head, 0), np.median(tail, 0)
    assert h[0] > 200 and h[1] > 190 and h[2] < h[0] - 20, h
    assert t[0] > 140 and t[0] > t[1] + 80, t


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = tmp_path_factory.mktemp("carfusion")
    truth = make_synthetic_carfusion(root / "raw", train_sequences=2, test_sequences=1, frames=5, cars=7, seed=1,
                                     width=384, height=216)
    counts = convert_carfusion(root / "raw", root / "conv", num_workers=2)
    return root, truth, counts


def test_generator_truth_survives_converter_packer_and_reader(packed):
    root, truth, counts = packed
    assert counts == {"train": 70, "test": 35}
    forms = {f.sequence: (root / "raw" / f.split / f.sequence / "bb" / f"{f.image_id}.txt").read_text()
             for f in truth["train"]}
    assert forms["car_butler1"].startswith("[") and ", " in forms["car_butler1"]
    assert ", " not in forms["car_butler2"]  # the space form
    all_vis = np.concatenate([f.keypoints[..., 2].ravel() for split in truth.values() for f in split])
    assert set(all_vis) == {1, 2, 3} and 0.1 < np.mean(all_vis == 2) < 0.9
    for split in ("train", "test"):
        ds = LmdbDataset(pack_carfusion(root / "conv", root / "lmdb", split, num_workers=1 if split == "test" else 0)
                         .path)
        frames = {(f.sequence, f.image_id): f for f in truth[split]}
        assert len(ds) == counts[split]
        for index in range(len(ds)):
            sample = ds[index]
            image_id, box_index = sample["name"].rsplit("_", 1)
            frame = frames[sample["sequence"], image_id]
            box = frame.boxes[int(box_index)]
            kps = frame.keypoints[int(box_index)]
            # Every keypoint (visible ones included) lies in its car's box, the box in the image.
            x0, y0, w, h = box
            assert np.all((kps[:, 0] >= x0 - 0.01) & (kps[:, 0] <= x0 + w + 0.01))
            assert np.all((kps[:, 1] >= y0 - 0.01) & (kps[:, 1] <= y0 + h + 0.01))
            assert x0 >= 0 and y0 >= 0 and x0 + w <= 384 and y0 + h <= 216
            cx0, cy0, cx1, cy1 = pixel_crop_box(tuple(box), 384, 216)
            assert sample["img"].shape == (cy1 - cy0, cx1 - cx0, 3)
            expected = np.array([[kps[k - 1, 0] - cx0, kps[k - 1, 1] - cy0, 1 if kps[k - 1, 2] == 2 else 2]
                                 for k in KEPT_ROWS])
            np.testing.assert_allclose(sample["gt_keypoints"], expected, atol=1e-3)


def test_an_interrupted_pack_resumes_to_the_same_database(packed, monkeypatch, tmp_path):
    root, _, counts = packed
    assert_interrupted_pack_resumes(monkeypatch, carfusion, "encode_crop", pack_carfusion, root / "conv", tmp_path, counts["train"])


# ---- the tools ----------------------------------------------------------------------------------------------


def _tool(path: str, *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / path), *map(str, args)], capture_output=True, text=True,
                          timeout=120)


def test_tools_generate_convert_and_pack(tmp_path):
    gen = _tool("tools/datasets/make_synthetic_carfusion.py", "--out", tmp_path / "raw", "--train-sequences", "1",
                "--test-sequences", "1", "--frames", "1", "--cars", "2", "--width", "256", "--height", "144")
    assert gen.returncode == 0, gen.stderr
    assert gen.stdout.strip() == f"wrote 1 train and 1 test frames of 256x144 (2 cars each) to {tmp_path / 'raw'}"
    conv = _tool("tools/dataset_converters/gen_carfusion_data.py", "--src-data-path", tmp_path / "raw", "--out-dir",
                 tmp_path / "conv", "--num-workers", "0")
    assert conv.returncode == 0, conv.stderr
    assert conv.stdout.startswith(f"cropped 2 train, 2 test cars into {tmp_path / 'conv'}")
    pack = _tool("tools/datasets/carfusion_packer.py", "--src-data-dir", tmp_path / "conv", "--target-data-dir",
                 tmp_path / "lmdb", "--split-name", "test", "--pack-type", "lmdb", "--num-workers", "0")
    assert pack.returncode == 0, pack.stderr
    assert pack.stdout.startswith(f"packed 2 samples into {tmp_path / 'lmdb' / 'test_lmdb'} (2 written")
    assert len(LmdbDataset(tmp_path / "lmdb" / "test_lmdb")) == 2


def test_tools_report_bad_input_in_one_line(tmp_path):
    _hand_made_dataset(tmp_path / "raw")
    gt = _write(tmp_path / "raw" / "train" / "car_test1" / "gt" / "01_00000.txt", "70,40,1,0,1\n70,40,1,5,1\n")
    conv = _tool("tools/dataset_converters/gen_carfusion_data.py", "--src-data-path", tmp_path / "raw", "--out-dir",
                 tmp_path / "conv", "--num-workers", "0")
    assert conv.returncode == 2 and conv.stdout == ""
    assert conv.stderr.strip().splitlines() == [
        f"gen_carfusion_data: error: {gt}:2: instance_id 5 has no box: the frame's bb file has 2 box line(s), "
        f"instance ids are their 0-based line numbers; fix the gt or bb file"]
    pack = _tool("tools/datasets/carfusion_packer.py", "--src-data-dir", tmp_path / "nowhere", "--target-data-dir",
                 tmp_path / "lmdb", "--split-name", "train")
    assert pack.returncode == 2
    assert pack.stderr.strip().splitlines() == [
        f"carfusion_packer: error: {tmp_path / 'nowhere' / 'simple_anno' / 'keypoints_train.json'}: no such file; "
        f"--src-data-dir must be the output of tools/dataset_converters/gen_carfusion_data.py"]
    gen = _tool("tools/datasets/make_synthetic_carfusion.py", "--out", tmp_path / "raw", "--frames", "0")
    assert gen.returncode == 2
    assert len(gen.stderr.strip().splitlines()) == 1 and "--frames" in gen.stderr
