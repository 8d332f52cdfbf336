"""MS COCO data: the 91 -> 80 category mapping, the instances reader on a hand-written JSON (what it
keeps and drops, exact arrays), its one-line errors, the synthetic generator (deterministic, valid for
pycocotools, its truth surviving packer -> LmdbDataset), resuming an interrupted pack, and the two
tools' command lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_interrupted_pack_resumes, assert_one_line_error, run_tool_here
from hbdk_sim.data.datasets import mscoco
from hbdk_sim.data.datasets.lmdb import LmdbDataset
from hbdk_sim.data.datasets.mscoco import (
    COCO_CATEGORIES,
    COCO_CATEGORY_IDS,
    COCO_CLASS_NAMES,
    COCO_ID_TO_LABEL,
    LABEL_TO_COCO_ID,
    pack_coco,
    parse_instances,
    read_coco,
)
from hbdk_sim.data.datasets.synthetic_coco import CATEGORY_IDS, make_synthetic_coco
from hbdk_sim.errors import DatasetError
from PIL import Image

REPO = Path(__file__).resolve().parents[2]

# ---- categories ---------------------------------------------------------------------------------------------


def test_the_80_categories_and_their_official_ids():
    gaps = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}
    assert COCO_CATEGORY_IDS == tuple(i for i in range(1, 91) if i not in gaps)
    assert len(COCO_CATEGORIES) == 80 and len(set(COCO_CLASS_NAMES)) == 80
    assert COCO_CLASS_NAMES[:3] == ("person", "bicycle", "car") and COCO_CLASS_NAMES[-1] == "toothbrush"
    assert (COCO_ID_TO_LABEL[13], COCO_ID_TO_LABEL[90], COCO_CLASS_NAMES[COCO_ID_TO_LABEL[72]]) == (11, 79, "tv")
    assert all(LABEL_TO_COCO_ID[COCO_ID_TO_LABEL[i]] == i for i in COCO_CATEGORY_IDS)
    assert sorted(LABEL_TO_COCO_ID) == list(range(80))
    assert not gaps & set(COCO_ID_TO_LABEL)


# ---- the reader ---------------------------------------------------------------------------------------------


def _jpeg(path: Path, width: int = 40, height: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 150)).save(path, format="JPEG")


def _hand_made(root: Path, **changes) -> Path:
    doc = {
        "images": [{"id": 9, "file_name": "b.jpg", "height": 30, "width": 40},
                   {"id": 3, "file_name": "a.jpg", "height": 30, "width": 40},
                   {"id": 5, "file_name": "empty.jpg", "height": 30, "width": 40}],
        "annotations": [
            {"id": 1, "image_id": 9, "category_id": 90, "bbox": [1.5, 2, 10, 20.25], "iscrowd": 0},
            {"id": 2, "image_id": 3, "category_id": 1, "bbox": [0, 0, 5, 6], "iscrowd": 0},
            {"id": 3, "image_id": 9, "category_id": 1, "bbox": [3, 4, 30, 20], "iscrowd": 1},  # crowd: dropped
            {"id": 4, "image_id": 9, "category_id": 13, "bbox": [7, 8, 0.5, 10], "iscrowd": 0},  # w < 1: dropped
            {"id": 5, "image_id": 9, "category_id": 13, "bbox": [7, 8, 4, 0.9], "iscrowd": 0},  # h < 1: dropped
            {"id": 6, "image_id": 9, "category_id": 13, "bbox": [7, 8, 1, 1]},  # no iscrowd: kept
        ],
        "categories": [{"id": i, "name": n, "supercategory": s} for i, n, s in COCO_CATEGORIES],
    }
    doc.update(changes)
    for name in ("a.jpg", "b.jpg", "empty.jpg"):
        _jpeg(root / "val2017" / name)
    path = root / "annotations" / "instances_val2017.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def test_reader_sorts_keeps_empty_images_and_drops_crowd_and_tiny_boxes(tmp_path):
    _hand_made(tmp_path)
    images = read_coco(tmp_path, "val")
    assert [(i.image_id, i.file_name) for i in images] == [(3, "a.jpg"), (5, "empty.jpg"), (9, "b.jpg")]
    assert images[0].path == str(tmp_path / "val2017" / "a.jpg")
    np.testing.assert_array_equal(images[0].boxes, np.array([[0, 0, 5, 6]], np.float32))
    np.testing.assert_array_equal(images[0].classes, np.array([0]))
    assert images[1].boxes.shape == (0, 4) and images[1].boxes.dtype == np.float32
    assert images[1].classes.shape == (0,) and images[1].classes.dtype == np.int64
    np.testing.assert_array_equal(images[2].boxes, np.array([[1.5, 2, 11.5, 22.25], [7, 8, 8, 9]], np.float32))
    np.testing.assert_array_equal(images[2].classes, np.array([79, 11]))


@pytest.mark.parametrize("changes,message", [
    ({"images": {"id": 1}}, r"'images' is dict, expected a list"),
    ({"annotations": None}, r"'annotations' is missing"),
    ({"images": [{"id": 1, "file_name": "a.jpg"}, {"id": "2", "file_name": "b.jpg"}]},
     r"images\[1\] needs an integer 'id'"),
    ({"images": [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}]},
     r"images\[1\]: image id 1 appears twice"),
    ({"annotations": [{"id": 7, "image_id": 4, "category_id": 1, "bbox": [0, 0, 2, 2]}]},
     r"annotations\[0\] \(id 7\): image_id 4 is not an image of the file"),
    ({"annotations": [{"id": 7, "image_id": 3, "category_id": 12, "bbox": [0, 0, 2, 2]}]},
     r"annotations\[0\] \(id 7\): category_id 12 is not one of the 80 COCO category ids"),
    ({"annotations": [{"id": 7, "image_id": [3], "category_id": 1, "bbox": [0, 0, 2, 2]}]},
     r"annotations\[0\] \(id 7\): image_id \[3\] is not an image"),
    ({"annotations": [{"id": 8, "image_id": 3, "category_id": 1, "bbox": [0, 0, 2]}]},
     r"annotations\[0\] \(id 8\): bbox \[0, 0, 2\] is not \[x, y, w, h\]"),
])
def test_bad_entries_name_the_file_and_the_entry(tmp_path, changes, message):
    path = _hand_made(tmp_path, **changes)
    with pytest.raises(DatasetError, match=message) as err:
        read_coco(tmp_path, "val")
    assert str(err.value).startswith(f"{path}: ") and len(str(err.value).splitlines()) == 1


def test_malformed_json_and_missing_image_are_one_line_errors(tmp_path):
    path = _hand_made(tmp_path)
    (tmp_path / "val2017" / "empty.jpg").unlink()
    with pytest.raises(DatasetError, match=r"empty\.jpg: missing, the file of image id 5 in .*instances_val2017"):
        read_coco(tmp_path, "val")
    path.write_text('{"images": [')
    with pytest.raises(DatasetError, match=r"instances_val2017\.json: not JSON \(") as err:
        read_coco(tmp_path, "val")
    assert len(str(err.value).splitlines()) == 1
    with pytest.raises(FileNotFoundError, match="instances_train2017.json: no such file"):
        read_coco(tmp_path, "train")
    empty = path.with_name("empty.json")
    empty.write_text('{"images": [], "annotations": []}')
    assert parse_instances(empty, tmp_path) == []


# ---- the generator ------------------------------------------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_generator_is_deterministic(tmp_path):
    make_synthetic_coco(tmp_path / "a", train=3, val=2, height=96, width=128, seed=4)
    make_synthetic_coco(tmp_path / "b", train=3, val=2, height=96, width=128, seed=4)
    make_synthetic_coco(tmp_path / "c", train=3, val=2, height=96, width=128, seed=5)
    a = _files(tmp_path / "a")
    assert len(a) == 7 and a == _files(tmp_path / "b") and a != _files(tmp_path / "c")
    with pytest.raises(FileExistsError):
        make_synthetic_coco(tmp_path / "a", train=3, val=2, height=96, width=128, seed=4)
    make_synthetic_coco(tmp_path / "a", train=3, val=2, height=96, width=128, seed=4, overwrite=True)
    assert _files(tmp_path / "a") == a


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    docs = make_synthetic_coco(root / "raw", train=70, val=12, height=160, width=224, seed=2)
    return root, docs


def test_generator_annotations_are_consistent(coco):
    root, docs = coco
    doc = docs["train"]
    assert set(doc) == {"info", "licenses", "images", "annotations", "categories"}
    assert json.loads((root / "raw" / "annotations" / "instances_train2017.json").read_text()) == doc
    anns = doc["annotations"]
    counts = {i["id"]: 0 for i in doc["images"]}
    for a in anns:
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 224.01 and y + h <= 160.01 and w >= 8 and h >= 8
        if not a["iscrowd"]:
            poly = np.array(a["segmentation"][0]).reshape(-1, 2)
            assert poly[:, 0].min() == pytest.approx(x, abs=0.01) and poly[:, 1].max() == pytest.approx(y + h, abs=0.02)
            assert 0 < a["area"] <= (w + 0.02) * (h + 0.02)  # the box is rounded to 0.01 px
            counts[a["image_id"]] += 1
    assert sum(a["iscrowd"] for a in anns) == 14  # index 1, 6, 11, ...
    assert sorted(counts.values()).count(0) == 12  # index 2, 8, 14, ...
    assert {a["category_id"] for a in anns} == set(CATEGORY_IDS)
    assert [a["id"] for a in anns] == list(range(1, len(anns) + 1))
    small = [a for a in anns if min(a["bbox"][2:]) < 24]
    border = [a for a in anns if a["bbox"][0] == 0 or a["bbox"][1] == 0 or
              a["bbox"][0] + a["bbox"][2] >= 223.99 or a["bbox"][1] + a["bbox"][3] >= 159.99]
    assert small and border


def test_generator_json_loads_in_pycocotools(coco):
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO

    root, docs = coco
    gt = COCO(str(root / "raw" / "annotations" / "instances_val2017.json"))
    assert gt.getCatIds() == list(COCO_CATEGORY_IDS)
    assert sorted(gt.getImgIds()) == [i["id"] for i in docs["val"]["images"]]
    assert sorted(gt.getAnnIds()) == [a["id"] for a in docs["val"]["annotations"]]
    assert gt.getAnnIds(iscrowd=False) == [a["id"] for a in docs["val"]["annotations"] if not a["iscrowd"]]


def test_generator_truth_survives_the_packer_and_the_reader(coco):
    root, docs = coco
    for split, codec in (("train", "source"), ("val", "raw")):
        doc = docs[split]
        result = pack_coco(root / "raw", root / "lmdb", split, num_workers=1 if split == "val" else 0,
                           image_codec=codec)
        ds = LmdbDataset(result.path)
        images = sorted(doc["images"], key=lambda i: i["id"])
        assert len(ds) == len(images)
        for index, image in enumerate(images):
            sample, record = ds[index], ds.read_record(index)
            anns = [a for a in doc["annotations"] if a["image_id"] == image["id"] and not a["iscrowd"]]
            assert (sample["image_id"], sample["file_name"]) == (image["id"], image["file_name"])
            assert record["img_format"] == ("jpg" if codec == "source" else "raw") and record["shape"] == [160, 224]
            if codec == "source":
                assert record["img"] == (root / "raw" / f"{split}2017" / image["file_name"]).read_bytes()
            assert sample["img"].shape == (160, 224, 3) and sample["img"].dtype == np.uint8
            expected = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)],
                                np.float32).reshape(-1, 4)
            np.testing.assert_array_equal(sample["gt_boxes"], expected)
            np.testing.assert_array_equal(sample["gt_classes"],
                                          np.array([COCO_ID_TO_LABEL[a["category_id"]] for a in anns], np.int64))
            assert sample["gt_classes"].dtype == np.int64


def test_an_interrupted_pack_resumes_to_the_same_database(coco, monkeypatch, tmp_path):
    root, _ = coco
    assert_interrupted_pack_resumes(monkeypatch, mscoco, "encode_image", pack_coco, root / "raw", tmp_path, 70)


# ---- the tools ----------------------------------------------------------------------------------------------


def test_tools_generate_and_pack(tmp_path):
    code, out, err = run_tool_here("make_synthetic_coco", ["--out", tmp_path / "raw", "--train", "2", "--val", "3",
                                                           "--height", "64", "--width", "96", "--seed", "1"])
    assert code == 0, err
    objects = sum(not a["iscrowd"] for s in ("train", "val") for a in json.loads(
        (tmp_path / "raw" / "annotations" / f"instances_{s}2017.json").read_text())["annotations"])
    assert out.strip() == f"wrote 2 train and 3 val images of 96x64 ({objects} objects) to {tmp_path / 'raw'}"
    code, out, err = run_tool_here("mscoco_packer", ["--src-data-dir", tmp_path / "raw", "--target-data-dir",
                                                     tmp_path / "lmdb", "--split-name", "val", "--pack-type", "lmdb",
                                                     "--num-workers", "0"])
    assert code == 0, err
    assert out.startswith(f"packed 3 samples into {tmp_path / 'lmdb' / 'val_lmdb'} (3 written")
    assert len(LmdbDataset(tmp_path / "lmdb" / "val_lmdb")) == 3


def test_tools_report_bad_input_in_one_line(tmp_path):
    code, _, err = run_tool_here("mscoco_packer", ["--src-data-dir", tmp_path / "nowhere", "--target-data-dir",
                                                   tmp_path / "lmdb", "--split-name", "train"])
    assert_one_line_error(code, err, "mscoco_packer", "instances_train2017.json: no such file")
    path = _hand_made(tmp_path / "bad", annotations=[{"id": 7, "image_id": 3, "category_id": 91, "bbox": [0, 0, 2, 2]}])
    code, _, err = run_tool_here("mscoco_packer", ["--src-data-dir", tmp_path / "bad", "--target-data-dir",
                                                   tmp_path / "lmdb", "--split-name", "val", "--num-workers", "0"])
    assert_one_line_error(code, err, "mscoco_packer", str(path), "annotations[0] (id 7): category_id 91")
    code, _, err = run_tool_here("mscoco_packer", ["--src-data-dir", tmp_path / "bad", "--target-data-dir",
                                                   tmp_path / "lmdb", "--split-name", "test"])
    assert_one_line_error(code, err, "mscoco_packer", "--split-name")
    code, _, err = run_tool_here("make_synthetic_coco", ["--out", tmp_path / "raw", "--height", "10"])
    assert_one_line_error(code, err, "make_synthetic_coco", "--height")
    make_synthetic_coco(tmp_path / "raw", train=1, val=0, height=64, width=64)
    code, _, err = run_tool_here("make_synthetic_coco", ["--out", tmp_path / "raw", "--train", "1", "--val", "0",
                                                         "--height", "64", "--width", "64"])
    assert_one_line_error(code, err, "make_synthetic_coco", "exists")


def test_tool_help_runs_as_a_script():
    # The installed package may predate these modules; the script must at least parse its arguments.
    gen = subprocess.run([sys.executable, str(REPO / "tools" / "datasets" / "make_synthetic_coco.py"), "--help"],
                         capture_output=True, text=True, timeout=60)
    if gen.returncode != 0 and "synthetic_coco" in gen.stderr and "ModuleNotFoundError" in gen.stderr:
        pytest.skip("the installed hbdk_sim predates hbdk_sim.data.datasets.synthetic_coco")
    assert gen.returncode == 0, gen.stderr
    assert "--out" in gen.stdout and "--seed" in gen.stdout
