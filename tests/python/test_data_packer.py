"""The LMDB packer and datasets: packed records equal the source files, counts are verified, an
existing database is refused, an interrupted pack is refused by readers and finished by --resume to
the same content as an uninterrupted pack; the synthetic Cityscapes is deterministic by seed."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from conftest import REPO
from hbdk_sim.data import CityscapesFromFolder, LmdbDataset, pack_cityscapes, pack_lmdb, read_meta, verify_lmdb
from hbdk_sim.data.datasets.cityscapes import find_pairs, lmdb_path
from hbdk_sim.data.datasets.synthetic_cityscapes import make_synthetic_cityscapes
from hbdk_sim.data.packer import COMMIT_EVERY, META_KEY, sample_key, unpack_record
from hbdk_sim.data.transforms import LabelRemap, ToTensor
from PIL import Image
from torch.utils.data import DataLoader


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cityscapes")
    make_synthetic_cityscapes(root, train=10, val=4, height=48, width=96, seed=3)
    return root


def _dump(path: Path) -> dict[bytes, bytes]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = dict(txn.cursor())
    env.close()
    return items


def test_packed_records_equal_the_source_files(src, tmp_path):
    result = pack_cityscapes(src, tmp_path, "train", num_workers=2)
    assert (result.num_samples, result.written, result.skipped) == (10, 10, 0)
    pairs = find_pairs(src, "train")
    meta = verify_lmdb(result.path)
    assert meta["num_samples"] == 10 and meta["split"] == "train" and meta["key_format"] == "{:08d}"
    items = _dump(result.path)
    assert len(items) == 11 and META_KEY in items
    for i, pair in enumerate(pairs):
        rec = unpack_record(items[sample_key(i)])
        assert rec["img"] == Path(pair.image).read_bytes()
        assert rec["gt_seg"] == Path(pair.label).read_bytes()
        assert (rec["name"], rec["city"], rec["shape"]) == (pair.name, pair.city, [48, 96])
    packed, folder = LmdbDataset(result.path), CityscapesFromFolder(src, "train")
    assert len(packed) == len(folder) == 10
    for i in range(10):
        a, b = packed[i], folder[i]
        assert a["img"].shape == (48, 96, 3) and a["gt_seg"].shape == (48, 96)
        np.testing.assert_array_equal(a["img"], b["img"])
        np.testing.assert_array_equal(a["gt_seg"], b["gt_seg"])
        np.testing.assert_array_equal(a["gt_seg"], np.asarray(Image.open(pairs[i].label)))
        assert a["name"] == b["name"] == pairs[i].name


def test_raw_codec_gives_the_same_samples(src, tmp_path):
    png = LmdbDataset(pack_cityscapes(src, tmp_path / "png", "val").path)
    raw_result = pack_cityscapes(src, tmp_path / "raw", "val", image_codec="raw")
    raw = LmdbDataset(raw_result.path)
    assert raw.meta["image_codec"] == "raw" and raw.read_record(0)["img_format"] == "raw"
    for i in range(len(png)):
        np.testing.assert_array_equal(png[i]["img"], raw[i]["img"])
        np.testing.assert_array_equal(png[i]["gt_seg"], raw[i]["gt_seg"])


def test_refuses_an_existing_database_unless_asked(src, tmp_path):
    pack_cityscapes(src, tmp_path, "val")
    before = _dump(lmdb_path(tmp_path, "val"))
    with pytest.raises(FileExistsError, match="--overwrite"):
        pack_cityscapes(src, tmp_path, "val")
    assert _dump(lmdb_path(tmp_path, "val")) == before
    again = pack_cityscapes(src, tmp_path, "val", overwrite=True)
    assert again.written == 4 and _dump(again.path) == before


def _encode_int(i: int) -> dict:
    return {"value": i, "payload": bytes([i % 251]) * (2000 + i)}


class _Interrupt(Exception):
    pass


def _encode_int_until(limit: int):
    def encode(i: int) -> dict:
        if i >= limit:
            raise _Interrupt(f"interrupted at {i}")
        return _encode_int(i)
    return encode


def test_resume_after_an_interruption_matches_an_uninterrupted_pack(tmp_path):
    n = 3 * COMMIT_EVERY + 5
    whole = pack_lmdb(list(range(n)), _encode_int, tmp_path / "whole", name="ints", split="train")
    cut = 2 * COMMIT_EVERY + 10
    with pytest.raises(_Interrupt):
        pack_lmdb(list(range(n)), _encode_int_until(cut), tmp_path / "cut", name="ints", split="train")
    with pytest.raises(ValueError, match="interrupted pack.*--resume"):
        LmdbDataset(tmp_path / "cut")
    with pytest.raises(FileExistsError, match="--resume"):
        pack_lmdb(list(range(n)), _encode_int, tmp_path / "cut", name="ints", split="train")
    with pytest.raises(ValueError, match="different pack"):
        pack_lmdb(list(range(n + 1)), _encode_int, tmp_path / "cut", name="ints", split="train", resume=True)
    resumed = pack_lmdb(list(range(n)), _encode_int, tmp_path / "cut", name="ints", split="train", resume=True,
                        num_workers=2)
    # Whole transactions survive the interruption: the two full batches, not the partial third.
    assert (resumed.skipped, resumed.written) == (2 * COMMIT_EVERY, n - 2 * COMMIT_EVERY)
    assert _dump(tmp_path / "cut") == _dump(whole.path)
    assert len(_dump(whole.path)) == n + 1


def test_resume_after_killing_the_packer_process(tmp_path):
    """A real interruption: the packer CLI killed by SIGKILL once it has started writing."""
    big = tmp_path / "src"
    make_synthetic_cityscapes(big, train=60, val=0, height=48, width=96, seed=5)
    cmd = [sys.executable, str(REPO / "tools/datasets/cityscapes_packer.py"), "--src-data-dir", str(big),
           "--target-data-dir", str(tmp_path / "out"), "--split-name", "train", "--num-workers", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    db = tmp_path / "out" / "train_lmdb" / "data.mdb"
    deadline = time.monotonic() + 60
    while proc.poll() is None and not db.exists() and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.kill()
    proc.wait()
    resumed = pack_cityscapes(big, tmp_path / "out", "train", resume=True)
    assert resumed.skipped + resumed.written == 60
    reference = pack_cityscapes(big, tmp_path / "ref", "train")
    assert _dump(tmp_path / "out" / "train_lmdb") == _dump(reference.path)


def test_map_size_grows_when_full(tmp_path):
    n = 200  # about 0.6 MB of records into a 64 KiB map
    result = pack_lmdb(list(range(n)), _encode_int, tmp_path / "db", name="ints", split="x", map_size=1 << 16)
    assert verify_lmdb(result.path)["num_samples"] == n
    assert unpack_record(_dump(result.path)[sample_key(n - 1)]) == _encode_int(n - 1)


def test_readers_refuse_what_is_not_a_finished_pack(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the packer"):
        read_meta(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not an LMDB database"):
        LmdbDataset(tmp_path / "empty")
    env = lmdb.open(str(tmp_path / "foreign"))
    with env.begin(write=True) as txn:
        txn.put(b"0", b"x")
    env.close()
    with pytest.raises(ValueError, match="not a database written by the hbdk-sim packer"):
        LmdbDataset(tmp_path / "foreign")
    with pytest.raises(ValueError, match="not written by this packer"):
        pack_lmdb([1], _encode_int, tmp_path / "foreign", name="ints", split="x", resume=True)


def test_dataloader_with_worker_processes(src, tmp_path):
    path = pack_cityscapes(src, tmp_path, "train").path
    ds = LmdbDataset(path, transforms=[LabelRemap(), ToTensor(to_yuv=True)])
    ds[0]  # the parent's environment is open before the workers fork
    serial = list(DataLoader(ds, batch_size=4, num_workers=0))
    parallel = list(DataLoader(ds, batch_size=4, num_workers=2))
    assert len(parallel) == 3
    for a, b in zip(serial, parallel, strict=True):
        assert a["img"].shape[1:] == (3, 48, 96) and a["gt_seg"].dtype == torch.int64
        assert torch.equal(a["img"], b["img"]) and torch.equal(a["gt_seg"], b["gt_seg"]) and a["name"] == b["name"]
    assert int(serial[0]["gt_seg"].max()) == 255 and int(serial[0]["gt_seg"][serial[0]["gt_seg"] != 255].max()) < 19


def test_several_readers_of_one_database_in_one_process(src, tmp_path):
    """LMDB opens a database once per process: the datasets over it (a train and a val loader on
    one database, a calibration loader beside them) and read_meta share that environment, and the
    last reader to go closes it."""
    path = pack_cityscapes(src, tmp_path, "train").path
    a, b = LmdbDataset(path), LmdbDataset(path)
    first = a[0]
    assert np.array_equal(b[0]["img"], first["img"]) and read_meta(path)["num_samples"] == len(b)
    del a
    assert np.array_equal(b[1]["img"], LmdbDataset(path)[1]["img"])  # b's environment outlives a
    worker_views = list(DataLoader(b, batch_size=None, num_workers=2))  # forked workers open their own
    assert len(worker_views) == len(b)


def _tool(name: str, *args, capsys) -> tuple[int, str, str]:
    """Run a tools/datasets CLI in this process (a subprocess would spend seconds importing torch)."""
    spec = importlib.util.spec_from_file_location(name[:-3], REPO / "tools/datasets" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rc = module.main([str(a) for a in args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_packer_cli_errors_are_one_line(src, tmp_path, capsys):
    bad = tmp_path / "bad"
    make_synthetic_cityscapes(bad, train=2, val=0, height=32, width=64, seed=1)
    label = next((bad / "gtFine" / "train").rglob("*_gtFine_labelIds.png"))
    label.unlink()
    rc, _, err = _tool("cityscapes_packer.py", "--src-data-dir", bad, "--target-data-dir", tmp_path / "o",
                       "--split-name", "train", "--pack-type", "lmdb", capsys=capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and str(label) in err
    rc, _, err = _tool("cityscapes_packer.py", "--src-data-dir", bad, "--target-data-dir", tmp_path / "o",
                       "--split-name", "val", capsys=capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "leftImg8bit/val" in err
    rc, out, _ = _tool("cityscapes_packer.py", "--src-data-dir", src, "--target-data-dir", tmp_path / "o",
                       "--split-name", "val", "--num-workers", "2", capsys=capsys)
    assert rc == 0 and "packed 4 samples" in out
    rc, _, err = _tool("cityscapes_packer.py", "--src-data-dir", src, "--target-data-dir", tmp_path / "o",
                       "--split-name", "val", capsys=capsys)
    assert rc == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1


def test_synthetic_dataset_is_deterministic_by_seed(tmp_path, capsys):
    rc, _, err = _tool("make_synthetic_cityscapes.py", "--out", tmp_path / "a", "--train", 6, "--val", 3,
                       "--height", 64, "--width", 128, "--seed", 7, capsys=capsys)
    assert rc == 0, err
    make_synthetic_cityscapes(tmp_path / "b", train=6, val=3, height=64, width=128, seed=7)
    make_synthetic_cityscapes(tmp_path / "c", train=6, val=3, height=64, width=128, seed=8)
    files_a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.png"))
    assert len(files_a) == 18 and {p.parts[2] for p in files_a if p.parts[1] == "val"} == {"frankfurt", "lindau",
                                                                                           "munster"}
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
    assert any((tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes() for rel in files_a)
    rc, _, err = _tool("make_synthetic_cityscapes.py", "--out", tmp_path / "a", capsys=capsys)
    assert rc == 2 and "--overwrite" in err and len(err.strip().splitlines()) == 1


def test_synthetic_scenes_hold_all_19_classes_and_ignored_ids(tmp_path):
    make_synthetic_cityscapes(tmp_path, train=24, val=0, height=64, width=128, seed=0)
    remap = LabelRemap()
    seen_train, seen_ids = np.zeros(256, bool), np.zeros(256, bool)
    for pair in find_pairs(tmp_path, "train"):
        ids = np.asarray(Image.open(pair.label))
        seen_ids[np.unique(ids)] = True
        seen_train[np.unique(remap({"gt_seg": ids})["gt_seg"])] = True
    assert np.flatnonzero(seen_train).tolist() == [*range(19), 255]
    assert seen_ids[[0, 1, 4]].all()  # unlabeled, ego vehicle, static: ignored ids LabelRemap must drop


# ---- records of other tasks: the sample schema's array fields ----------------------------------------


def _detection_record(i: int) -> dict:
    from hbdk_sim.data.sample import encode_array

    rng = np.random.default_rng(i)
    img = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    n = i % 3  # 0 boxes too
    boxes = rng.uniform(0, 6, (n, 4)).astype(np.float32)
    return {"img": img.tobytes(), "img_format": "raw", "shape": [6, 8], "name": f"frame{i}", "sequence": "seq-a",
            "frame": i, "gt_boxes": encode_array("gt_boxes", boxes),
            "gt_classes": encode_array("gt_classes", np.arange(n)),
            "gt_track_ids": encode_array("gt_track_ids", np.arange(n) + 100),
            "gt_keypoints": encode_array("gt_keypoints", rng.uniform(0, 6, (n, 2, 3)))}


def test_schema_fields_round_trip_through_a_packed_database(tmp_path):
    from hbdk_sim.data.sample import decode_array

    pack_lmdb(list(range(4)), _detection_record, tmp_path / "det_lmdb", name="det", split="train")
    ds = LmdbDataset(tmp_path / "det_lmdb")
    for i in range(4):
        want = _detection_record(i)
        got = ds[i]
        assert "gt_seg" not in got and got["img"].shape == (6, 8, 3)
        assert got["name"] == f"frame{i}" and got["sequence"] == "seq-a" and got["frame"] == i
        for key in ("gt_boxes", "gt_classes", "gt_track_ids", "gt_keypoints"):
            expected = decode_array(key, want[key], "want")
            assert got[key].dtype == expected.dtype and np.array_equal(got[key], expected), key
        assert got["gt_boxes"].shape == (i % 3, 4) and got["gt_keypoints"].shape == (i % 3, 2, 3)


def test_a_damaged_array_field_is_one_dataset_error(tmp_path):
    from hbdk_sim.data.sample import decode_array, encode_array
    from hbdk_sim.errors import DatasetError

    good = encode_array("gt_boxes", np.zeros((2, 4)))
    with pytest.raises(DatasetError, match=r"rec\[0\]: field 'gt_boxes' holds 31 bytes, expected 32"):
        decode_array("gt_boxes", {**good, "data": good["data"][:-1]}, "rec[0]")
    with pytest.raises(DatasetError, match="expected float32 of rank 2 with last dim 4"):
        decode_array("gt_boxes", {**good, "shape": [4, 2]}, "rec[0]")
    with pytest.raises(DatasetError, match="not an encoded array"):
        decode_array("gt_classes", [1, 2], "rec[0]")
    with pytest.raises(ValueError, match="last dim 3"):
        encode_array("gt_keypoints", np.zeros((4, 2)))
