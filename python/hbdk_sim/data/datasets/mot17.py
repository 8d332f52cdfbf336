"""MOT17 pedestrian tracking: a reader of the raw MOT17 layout, the half split the MOTR task trains and
validates on (the reference toolkit's gen_mot_data) and packing one split into LMDB, one record per frame.

Raw layout (`<root>/train/<sequence>/...`, sequences MOT17-XX-{DPM,FRCNN,SDP}):
    seqinfo.ini     an INI file, section [Sequence]: name, imDir, frameRate, seqLength, imWidth, imHeight,
                    imExt (read with configparser, so the key order does not matter)
    <imDir>/<frame:06d><imExt>   frames 1..seqLength
    gt/gt.txt       one box per line: frame, id, bb_left, bb_top, bb_width, bb_height, consider flag
                    (1 / 0), class (1 = pedestrian, 2 person on vehicle, 7 static person, ... 12),
                    visibility (0..1); MOT17 lists a track's rows together, sorted by id then frame
    det/det.txt     public detections: frame, -1, x, y, w, h, score, -1, -1, -1 (not used by the split)

Half split (`split_mot17_half(src, out)`), of the *SDP sequences of <src>/train only, in sorted order;
with half = int(seqLength / 2), a sequence's frames <= half go to <out>/train, the rest to <out>/test:
    <out>/<split>/<sequence>/<imDir>/<name>   the split's images, copied with their original names
    <out>/<split>/<sequence>/gt/gt.txt        the rows of the split's frames as they are, in file order;
                                              test rows renumbered frame - half
    <out>/<split>/<sequence>/seqinfo.ini      the source's keys, seqLength the split's frame count
    <out>/<split>/<sequence>/labels_with_ids/<frame:06d>.txt
        named by the original frame number; one line `0 tid cx/W cy/H w/W h/H` (6 decimals) per gt row
        with consider flag != 0 and class == 1, in gt.txt's order; a frame without such rows has no file.
        tid is a running counter per split, neither reset per sequence: it starts at 0 and is
        incremented before a kept row whose id differs from the previous kept row's id of the split
        (that row possibly of an earlier sequence), so the first track is 1, a track whose rows are
        not contiguous in gt.txt gets a new tid each time it returns, and a sequence starting with the
        id the previous one ended with continues that tid (the packer's video offset tells them apart).

A packed record (msgpack map, see `hbdk_sim.data.packer` and `hbdk_sim.data.sample`), one per frame of
the split's sequences, sequences sorted by name, frames by image name, in one flat list (the metadata's
`sequence_lengths`, [[sequence, frame count], ...] in that order, tells where each sequence starts):
    img: bytes          the image file's bytes (image_codec "source") or HxWx3 uint8 RGB pixels ("raw")
    img_format: str     "jpg" (or "png" for a PNG file) or "raw"
    shape: [h, w]       the image's size (must equal seqinfo.ini's imHeight, imWidth)
    gt_boxes            N x 4 float32 (x1, y1, x2, y2) in pixels, denormalised from labels_with_ids
                        with the seqinfo size: x1 = (cx - w / 2) W, ...
    gt_classes          N int64, all 0 (pedestrian)
    gt_track_ids        N int64, tid + video_index * 1_000_000 (video_index: the sequence's place, from 0)
    image_id: int       the record's index in the flat list (0, 1, ...)
    file_name: str      "<sequence>/<imDir>/<image name>", e.g. "MOT17-02-SDP/img1/000123.jpg"
    sequence: str       the sequence's folder name
    frame: int          the frame number within the split's sequence (1-based: test frame 1 is the
                        image named half + 1)
"""

from __future__ import annotations

import configparser
import itertools
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from hbdk_sim.data.datasets.text_fields import parse_integer, parse_number
from hbdk_sim.data.packer import PackResult, image_record, pack_image_records
from hbdk_sim.data.sample import encode_array
from hbdk_sim.errors import DatasetError, UsageError

SPLITS = ("train", "test")
SEQINFO_SECTION = "Sequence"
SEQINFO_KEYS = ("name", "imDir", "frameRate", "seqLength", "imWidth", "imHeight", "imExt")
GT_COLUMNS = ("frame", "id", "bb_left", "bb_top", "bb_width", "bb_height", "consider", "class", "visibility")
DET_COLUMNS = 10
NUM_MOT_CLASSES = 12  # MOT17's classes 1..12; 1 is pedestrian, the only one kept
PEDESTRIAN = 1
LABEL_DIR = "labels_with_ids"
VIDEO_ID_STRIDE = 1_000_000  # packed track id = tid + video index * this
CLASS_NAMES = ("pedestrian",)


@dataclass(frozen=True)
class SeqInfo:
    """A sequence's seqinfo.ini."""
    name: str
    im_dir: str
    frame_rate: int
    seq_length: int
    im_width: int
    im_height: int
    im_ext: str


@dataclass(frozen=True)
class GtRow:
    """One gt.txt line."""
    frame: int
    track_id: int
    left: float
    top: float
    width: float
    height: float
    consider: int
    cls: int
    visibility: float


def read_seqinfo(path: str | os.PathLike) -> SeqInfo:
    """seqinfo.ini as an INI file: section [Sequence] with the SEQINFO_KEYS in any order."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: missing; every sequence folder needs a seqinfo.ini ([Sequence] with "
                           f"{', '.join(SEQINFO_KEYS)})")
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # keys are camelCase
    try:
        parser.read_string(path.read_text(), source=str(path))
    except (configparser.Error, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: not an INI file ({' '.join(str(e).split())}); fix or restore it") from None
    if not parser.has_section(SEQINFO_SECTION):
        raise DatasetError(f"{path}: no [{SEQINFO_SECTION}] section; add it above the keys "
                           f"{', '.join(SEQINFO_KEYS)}")
    sec = parser[SEQINFO_SECTION]
    missing = [k for k in SEQINFO_KEYS if not sec.get(k, "").strip()]
    if missing:
        raise DatasetError(f"{path}: [{SEQINFO_SECTION}] lacks {', '.join(missing)}; add "
                           f"{'them' if len(missing) > 1 else 'it'} (e.g. {missing[0]}=...)")

    def positive(key: str) -> int:
        text = sec[key].strip()
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value <= 0:
            raise DatasetError(f"{path}: {key}={text} is not a positive integer; fix the key")
        return value

    ext = sec["imExt"].strip()
    return SeqInfo(sec["name"].strip(), sec["imDir"].strip(), positive("frameRate"), positive("seqLength"),
                   positive("imWidth"), positive("imHeight"), ext if ext.startswith(".") else "." + ext)


def seqinfo_text(info: SeqInfo) -> str:
    """seqinfo.ini as MOT17 writes it (key=value, no spaces, MOT's key order)."""
    values = (info.name, info.im_dir, info.frame_rate, info.seq_length, info.im_width, info.im_height, info.im_ext)
    return f"[{SEQINFO_SECTION}]\n" + "".join(f"{k}={v}\n" for k, v in zip(SEQINFO_KEYS, values, strict=True))


def parse_gt_line(line: str, where: str) -> GtRow:
    """One gt.txt line (the 9 GT_COLUMNS, comma separated)."""
    fields = line.strip().split(",")
    if len(fields) != len(GT_COLUMNS):
        raise DatasetError(f"{where}: gt line {line.strip()!r} has {len(fields)} fields, expected "
                           f"{len(GT_COLUMNS)} ({','.join(GT_COLUMNS)}); fix the line")
    frame, track_id = parse_integer(fields[0], where, "frame"), parse_integer(fields[1], where, "id")
    left, top, width, height = (parse_number(f, where, w) for f, w in zip(fields[2:6], GT_COLUMNS[2:6], strict=True))
    consider, cls = parse_integer(fields[6], where, "consider flag"), parse_integer(fields[7], where, "class")
    visibility = parse_number(fields[8], where, "visibility")
    if frame < 1:
        raise DatasetError(f"{where}: frame {frame} is not a frame number (frames count from 1); fix the line")
    if width <= 0 or height <= 0:
        raise DatasetError(f"{where}: box {width:g}x{height:g}: bb_width and bb_height must be positive; fix the line")
    if consider not in (0, 1):
        raise DatasetError(f"{where}: consider flag {consider} is not 0 or 1; fix the line")
    if not 1 <= cls <= NUM_MOT_CLASSES:
        raise DatasetError(f"{where}: class {cls} is not one of MOT17's classes 1..{NUM_MOT_CLASSES}; fix the line")
    if not 0 <= visibility <= 1:
        raise DatasetError(f"{where}: visibility {visibility:g} is outside [0, 1]; fix the line")
    return GtRow(frame, track_id, left, top, width, height, consider, cls, visibility)


def iter_gt(path: str | os.PathLike) -> Iterator[tuple[int, str, GtRow]]:
    """(line number, the line without its newline, the parsed row) of each non-blank gt.txt line."""
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            yield lineno, line.strip(), parse_gt_line(line, f"{path}:{lineno}")


def read_gt(path: str | os.PathLike) -> list[GtRow]:
    """The rows of a gt.txt file, in file order."""
    return [row for _, _, row in iter_gt(path)]


def read_det(path: str | os.PathLike) -> np.ndarray:
    """A det.txt file as an (N, 10) float64 array, in file order."""
    rows = []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        fields = line.strip().split(",")
        if len(fields) != DET_COLUMNS:
            raise DatasetError(f"{where}: det line {line.strip()!r} has {len(fields)} fields, expected {DET_COLUMNS} "
                               f"(frame,-1,x,y,w,h,score,-1,-1,-1); fix the line")
        row = [parse_number(f, where, "value") for f in fields]
        if row[0] < 1 or row[0] != int(row[0]):
            raise DatasetError(f"{where}: frame {fields[0]!r} is not a frame number (frames count from 1); fix the "
                               f"line")
        rows.append(row)
    return np.array(rows, np.float64).reshape(-1, DET_COLUMNS)


def image_path(seq_dir: str | os.PathLike, info: SeqInfo, frame: int) -> Path:
    """Frame `frame`'s image in the raw layout: <seq>/<imDir>/<frame:06d><imExt>."""
    return Path(seq_dir) / info.im_dir / f"{frame:06d}{info.im_ext}"


# ---- the half split -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitSummary:
    """What the half split wrote into one split."""
    sequences: int
    frames: int
    boxes: int  # label lines (kept pedestrian rows)
    tracks: int  # the split's last tid


@dataclass
class _Sequence:
    path: Path
    info: SeqInfo
    gt: list[tuple[int, str, GtRow]]


def _read_sequence(seq: Path) -> _Sequence:
    info = read_seqinfo(seq / "seqinfo.ini")
    if info.seq_length < 2:
        raise DatasetError(f"{seq / 'seqinfo.ini'}: seqLength {info.seq_length} is too short to split in halves "
                           f"(at least 2 frames); fix seqLength or move the sequence out of {seq.parent}")
    gt_path = seq / "gt" / "gt.txt"
    if not gt_path.is_file():
        raise DatasetError(f"{gt_path}: missing; the half split needs every *SDP sequence's gt/gt.txt")
    gt = list(iter_gt(gt_path))
    for lineno, _, row in gt:
        if row.frame > info.seq_length:
            raise DatasetError(f"{gt_path}:{lineno}: frame {row.frame} is beyond seqLength {info.seq_length} of "
                               f"{seq / 'seqinfo.ini'}; fix the line or seqLength")
    for frame in range(1, info.seq_length + 1):
        if not image_path(seq, info, frame).is_file():
            raise DatasetError(f"{image_path(seq, info, frame)}: missing, frame {frame} of {info.seq_length} "
                               f"(seqLength in {seq / 'seqinfo.ini'}); restore the image or fix seqLength")
    return _Sequence(seq, info, gt)


def _label_line(row: GtRow, tid: int, info: SeqInfo) -> str:
    cx, cy = row.left + row.width / 2, row.top + row.height / 2
    return (f"0 {tid:d} {cx / info.im_width:.6f} {cy / info.im_height:.6f} {row.width / info.im_width:.6f} "
            f"{row.height / info.im_height:.6f}\n")


def split_mot17_half(src: str | os.PathLike, out: str | os.PathLike, *, overwrite: bool = False
                     ) -> dict[str, SplitSummary]:
    """Split the *SDP sequences of `<src>/train` into `<out>/train` (frames <= half) and `<out>/test`
    (the rest), as the module docstring states. Every input is read and checked before anything is
    written; existing sequence folders in `out` are refused unless `overwrite` (then replaced)."""
    train_dir = Path(src) / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"{train_dir}: no such directory; --src-data-path must be the MOT17 root holding "
                                f"train/MOT17-XX-SDP/")
    seq_dirs = sorted(p for p in train_dir.iterdir() if p.is_dir() and p.name.endswith("SDP"))
    if not seq_dirs:
        raise DatasetError(f"{train_dir}: no *SDP sequence folder (MOT17-02-SDP, ...); the half split takes the "
                           f"SDP copy of each sequence")
    sequences = [_read_sequence(seq) for seq in seq_dirs]
    targets = [Path(out) / split / s.path.name for split in SPLITS for s in sequences]
    for target in targets:
        if target.exists():
            if not overwrite:
                raise FileExistsError(f"{target} exists; pass overwrite=True (--overwrite) or choose another --out-dir")
            shutil.rmtree(target)
    tid_state = {split: [0, None] for split in SPLITS}  # (tid, previous kept row's id), per split
    counts = {split: [0, 0] for split in SPLITS}  # frames, label lines
    for seq in sequences:
        info = seq.info
        half = int(info.seq_length / 2)
        for split, first, last in (("train", 1, half), ("test", half + 1, info.seq_length)):
            target = Path(out) / split / seq.path.name
            (target / info.im_dir).mkdir(parents=True)
            (target / "gt").mkdir()
            (target / LABEL_DIR).mkdir()
            for frame in range(first, last + 1):
                src_image = image_path(seq.path, info, frame)
                shutil.copyfile(src_image, target / info.im_dir / src_image.name)
            offset = half if split == "test" else 0
            gt_lines, labels = [], {}
            state = tid_state[split]
            for _, text, row in seq.gt:
                if not first <= row.frame <= last:
                    continue
                fields = text.split(",")
                gt_lines.append(",".join([str(row.frame - offset), *fields[1:]]) + "\n")
                if row.consider == 0 or row.cls != PEDESTRIAN:
                    continue
                if row.track_id != state[1]:
                    state[0] += 1
                    state[1] = row.track_id
                labels.setdefault(row.frame, []).append(_label_line(row, state[0], info))
            (target / "gt" / "gt.txt").write_text("".join(gt_lines))
            for frame, lines in labels.items():
                (target / LABEL_DIR / f"{frame:06d}.txt").write_text("".join(lines))
            (target / "seqinfo.ini").write_text(seqinfo_text(replace(info, seq_length=last - first + 1)))
            counts[split][0] += last - first + 1
            counts[split][1] += sum(len(v) for v in labels.values())
    return {split: SplitSummary(len(sequences), counts[split][0], counts[split][1], tid_state[split][0])
            for split in SPLITS}


# ---- packing ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotFrame:
    """One frame of a split, its boxes already denormalised to pixel xyxy."""
    path: str
    file_name: str
    sequence: str
    frame: int
    image_id: int
    width: int
    height: int
    boxes: np.ndarray  # N x 4 float32
    track_ids: np.ndarray  # N int64, video offset included


def read_labels(path: str | os.PathLike, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """A labels_with_ids file as (N x 4 float32 pixel xyxy boxes, N int64 tids), in line order."""
    boxes, tids = [], []
    for lineno, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        fields = line.split()
        if len(fields) != 6:
            raise DatasetError(f"{where}: label line {line.strip()!r} has {len(fields)} fields, expected 6 "
                               f"(0 tid cx/W cy/H w/W h/H); re-run gen_mot_data.py")
        if parse_integer(fields[0], where, "class") != 0:
            raise DatasetError(f"{where}: class {fields[0]} is not 0 (pedestrian); re-run gen_mot_data.py")
        tid = parse_integer(fields[1], where, "tid")
        cx, cy, w, h = (parse_number(f, where, "box value") for f in fields[2:])
        if tid < 0 or w <= 0 or h <= 0:
            raise DatasetError(f"{where}: label line {line.strip()!r} needs tid >= 0 and a positive w and h; re-run "
                               f"gen_mot_data.py")
        boxes.append(((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height))
        tids.append(tid)
    return np.array(boxes, np.float64).astype(np.float32).reshape(-1, 4), np.array(tids, np.int64)


def read_split(src_split_dir: str | os.PathLike) -> list[MotFrame]:
    """Every frame of a split folder written by `split_mot17_half` (<out>/train or <out>/test):
    sequences sorted, frames sorted, one flat list (see the module docstring)."""
    root = Path(src_split_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such directory; --src-data-dir must be a split folder written by "
                                f"tools/dataset_converters/gen_mot_data.py (<out-dir>/train or <out-dir>/test)")
    seq_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    if not seq_dirs:
        raise DatasetError(f"{root}: no sequence folders; --src-data-dir must be a split folder written by "
                           f"gen_mot_data.py, <out-dir>/train or <out-dir>/test")
    for seq in seq_dirs:
        if not (seq / "seqinfo.ini").is_file():
            inner = any(seq.glob("*/seqinfo.ini"))
            hint = f" ({seq} holds sequence folders itself: pass it)" if inner else ""
            raise DatasetError(f"{seq}: not a sequence folder (no seqinfo.ini); --src-data-dir must be a split folder "
                               f"written by gen_mot_data.py, <out-dir>/train or <out-dir>/test{hint}")
    frames: list[MotFrame] = []
    for video, seq in enumerate(seq_dirs):
        info = read_seqinfo(seq / "seqinfo.ini")
        label_dir = seq / LABEL_DIR
        if not label_dir.is_dir():
            raise DatasetError(f"{label_dir}: missing; --src-data-dir must be a split folder written by "
                               f"gen_mot_data.py (a raw MOT17 sequence has no labels)")
        images = sorted(p for p in (seq / info.im_dir).glob(f"*{info.im_ext}") if p.is_file())
        if len(images) != info.seq_length:
            raise DatasetError(f"{seq / info.im_dir}: {len(images)} {info.im_ext} images but seqLength "
                               f"{info.seq_length} in {seq / 'seqinfo.ini'}; restore the images or re-run "
                               f"gen_mot_data.py")
        stems = {p.stem for p in images}
        for label in sorted(label_dir.glob("*.txt")):
            if label.stem not in stems:
                raise DatasetError(f"{label}: no image {label.stem}{info.im_ext} in {seq / info.im_dir}; restore "
                                   f"the image or re-run gen_mot_data.py")
        for k, image in enumerate(images, 1):
            label = label_dir / f"{image.stem}.txt"
            if label.is_file():
                boxes, tids = read_labels(label, info.im_width, info.im_height)
            else:
                boxes, tids = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
            frames.append(MotFrame(str(image), f"{seq.name}/{info.im_dir}/{image.name}", seq.name, k, len(frames),
                                   info.im_width, info.im_height, boxes, tids + video * VIDEO_ID_STRIDE))
    return frames


def sequence_lengths(frames: list[MotFrame]) -> list[list]:
    """[[sequence, frame count], ...] in storage order: the packed database's `sequence_lengths`
    metadata, which ClipDataset cuts clips by."""
    return [[name, len(list(group))] for name, group in itertools.groupby(f.sequence for f in frames)]


def encode_frame(sample: MotFrame, image_codec: str = "source") -> dict:
    """The packed record of one frame (runs in the packer's worker processes)."""
    image = image_record(sample.path, image_codec)
    height, width = image["shape"]
    if (width, height) != (sample.width, sample.height):
        raise DatasetError(f"{sample.path}: the image is {width}x{height} but its seqinfo.ini says imWidth "
                           f"{sample.width}, imHeight {sample.height}; fix seqinfo.ini")
    return {**image,
            "gt_boxes": encode_array("gt_boxes", sample.boxes),
            "gt_classes": encode_array("gt_classes", np.zeros(len(sample.boxes), np.int64)),
            "gt_track_ids": encode_array("gt_track_ids", sample.track_ids),
            "image_id": sample.image_id, "file_name": sample.file_name, "sequence": sample.sequence,
            "frame": sample.frame}


def pack_mot17(src_split_dir: str | os.PathLike, target_data_dir: str | os.PathLike, split: str, *,
               num_workers: int = 0, overwrite: bool = False, resume: bool = False, image_codec: str = "source",
               progress: bool = False) -> PackResult:
    """Pack the frames of the split folder `src_split_dir` (gen_mot_data.py's <out>/<split>) into
    `<target_data_dir>/<split>_lmdb`, images as the files' bytes (`image_codec="source"`) or decoded
    pixels ("raw")."""
    if split not in SPLITS:
        raise UsageError(f"unknown MOT17 split {split!r}; expected one of {', '.join(SPLITS)}")
    samples = read_split(src_split_dir)
    return pack_image_records(samples, encode_frame, target_data_dir, split, name="mot17", image_codec=image_codec,
                              image_paths=[s.path for s in samples], per_record=4096,
                              source_names=[s.file_name for s in samples],
                              extra_meta={"class_names": list(CLASS_NAMES), "video_id_stride": VIDEO_ID_STRIDE,
                                          "sequence_lengths": sequence_lengths(samples)},
                              num_workers=num_workers, overwrite=overwrite, resume=resume, progress=progress)
