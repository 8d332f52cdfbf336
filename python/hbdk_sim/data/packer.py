"""Packing a dataset into LMDB: one msgpack record per sample, written by a pool of worker processes,
committed by a metadata record that is written last.

Database layout (an LMDB directory holding data.mdb and lock.mdb):

    b"00000000", b"00000001", ...  one record per sample; the key is the zero-padded sample index
                                   (`KEY_FORMAT`), the value a msgpack map made by the caller's encoder
    b"__plan__"                    written first: what is being packed (name, split, count, a digest of
                                   the source names); lets `resume=True` check it continues the same pack
    b"__meta__"                    written last, in the same transaction that drops `__plan__`: the
                                   commit marker (`FORMAT`, version, name, split, num_samples, key_format,
                                   created_by). A database without it is an interrupted pack.

Nothing is pickled: the worker encodes a sample to msgpack bytes and the parent only stores them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lmdb
import msgpack
import numpy as np
from PIL import Image

from hbdk_sim.errors import DatasetError, UsageError

FORMAT = "hbdk-sim-lmdb"
FORMAT_VERSION = 1
META_KEY = b"__meta__"
PLAN_KEY = b"__plan__"
KEY_FORMAT = "{:08d}"
# Records per write transaction: an interruption loses at most this many encoded samples.
COMMIT_EVERY = 64
_DEFAULT_MAP_SIZE = 1 << 28
_LMDB_FILES = ("data.mdb", "lock.mdb")


def lmdb_path(target_dir: str | os.PathLike, split: str) -> Path:
    """Where a packer puts `split` under `target_dir`: `<target_dir>/<split>_lmdb`."""
    return Path(target_dir) / f"{split}_lmdb"


# How a packer stores images: the files' bytes ("source") or decoded HxWx3 uint8 pixels ("raw").
IMAGE_CODECS = ("source", "raw")


def check_image_codec(image_codec: str) -> str:
    if image_codec not in IMAGE_CODECS:
        raise UsageError(f"unknown image_codec {image_codec!r}; expected one of {', '.join(IMAGE_CODECS)}")
    return image_codec


def image_map_size(paths: Sequence[str | os.PathLike], image_codec: str, per_record: int = 1024) -> int:
    """An initial LMDB map size for records holding the images at `paths` as `image_codec` stores
    them (file sizes, or decoded pixels from the headers for "raw") plus `per_record` bytes of
    fields each, with room to spare; pack_lmdb grows it if it is still short."""
    if check_image_codec(image_codec) == "raw":
        data = 0
        for path in paths:
            with Image.open(path) as im:  # the header only
                w, h = im.size
            data += 3 * w * h
    else:
        data = sum(os.path.getsize(path) for path in paths)
    return max(1 << 24, int(data * 1.25) + len(paths) * per_record + (1 << 22))


def pack_image_records(samples: Sequence[Any], encode: Callable[..., dict], target_dir: str | os.PathLike,
                       split: str, *, name: str, image_codec: str, image_paths: Sequence[str | os.PathLike],
                       source_names: Sequence[str], per_record: int = 1024, extra_meta: dict[str, Any] | None = None,
                       num_workers: int = 0, overwrite: bool = False, resume: bool = False,
                       progress: bool = False) -> PackResult:
    """pack_lmdb of records that each hold one image file (`image_paths`, one per sample) and
    `per_record` bytes of other fields, into `<target_dir>/<split>_lmdb`: `encode(sample,
    image_codec=...)` makes a record, and the metadata records the codec beside `extra_meta`."""
    return pack_lmdb(samples, functools.partial(encode, image_codec=image_codec), lmdb_path(target_dir, split),
                     name=name, split=split, extra_meta={"image_codec": image_codec, **(extra_meta or {})},
                     source_names=source_names, num_workers=num_workers, overwrite=overwrite, resume=resume,
                     map_size=image_map_size(image_paths, image_codec, per_record), progress=progress)


def image_record(path: str | os.PathLike, image_codec: str) -> dict[str, Any]:
    """The image fields of a packed record from an image file: `img` (the file's bytes, or with
    image_codec "raw" its HxWx3 uint8 RGB pixels), `img_format` ("jpg", "png" or "raw") and `shape`
    [h, w]. An unreadable file is a DatasetError naming it."""
    data = Path(path).read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as im:
            width, height = im.size
            fmt = "png" if im.format == "PNG" else "jpg"
            if image_codec == "raw":
                data = np.asarray(im.convert("RGB")).tobytes()
                fmt = "raw"
    except OSError as e:
        raise DatasetError(f"{path}: not a readable image ({e}); restore the file") from None
    return {"img": data, "img_format": fmt, "shape": [height, width]}


def sample_key(index: int) -> bytes:
    return KEY_FORMAT.format(index).encode()


def pack_record(record: dict[str, Any]) -> bytes:
    return msgpack.packb(record, use_bin_type=True)


def unpack_record(data: bytes) -> dict[str, Any]:
    return msgpack.unpackb(data, raw=False)


@dataclass(frozen=True)
class PackResult:
    path: Path
    num_samples: int
    written: int  # records encoded in this run (fewer than num_samples after a resume)
    skipped: int  # records already present from an interrupted run
    seconds: float
    bytes_written: int

    @property
    def samples_per_second(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else float("inf")


def _sources_digest(names: Sequence[str]) -> str:
    h = hashlib.sha256()
    for n in names:
        h.update(n.encode())
        h.update(b"\0")
    return h.hexdigest()


# Read-only environments open in this process, by real path: LMDB allows one environment per database
# and process, so the datasets (and read_meta) over one database share it. Entry: [pid, env, users].
_READERS: dict[str, list] = {}


def acquire_reader(path: str | os.PathLike) -> lmdb.Environment:
    """This process's read-only environment of the database at `path` (opened on first use, shared
    by every reader of it; give it back with release_reader). One inherited across fork is left to
    the parent and opened afresh."""
    key = os.path.realpath(path)
    entry = _READERS.get(key)
    if entry is not None and entry[0] != os.getpid():
        # Inherited through fork: this process's copy of the mapping is closed (read only, no lock
        # file, so the parent's is unaffected) and the database opened afresh.
        entry[1].close()
        entry = None
    if entry is None:
        env = lmdb.open(str(path), readonly=True, lock=False, subdir=True, readahead=False, meminit=False,
                        max_readers=256)
        entry = _READERS[key] = [os.getpid(), env, 0]
    entry[2] += 1
    return entry[1]


def release_reader(path: str | os.PathLike, env: lmdb.Environment) -> None:
    """Give back an environment of acquire_reader; the last user of this process closes it."""
    entry = _READERS.get(os.path.realpath(path))
    if entry is None or entry[1] is not env or entry[0] != os.getpid():
        return
    entry[2] -= 1
    if entry[2] <= 0:
        del _READERS[os.path.realpath(path)]
        env.close()


def _open_env(path: Path, map_size: int) -> lmdb.Environment:
    # One writer (this process); workers never touch the database.
    return lmdb.open(str(path), map_size=map_size, subdir=True, readonly=False, lock=True, max_dbs=0,
                     meminit=False, map_async=False)


def _is_lmdb_dir(path: Path) -> bool:
    return (path / "data.mdb").exists()


def _encode_task(args: tuple[Callable[[Any], dict], int, Any]) -> tuple[int, bytes]:
    encode, index, source = args
    return index, pack_record(encode(source))


class _Writer:
    """Writes key/value batches, doubling the map size whenever LMDB reports it full."""

    def __init__(self, env: lmdb.Environment) -> None:
        self.env = env
        self.bytes_written = 0

    def put_many(self, items: list[tuple[bytes, bytes]], delete: Sequence[bytes] = ()) -> None:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for k, v in items:
                        txn.put(k, v)
                    for k in delete:
                        txn.delete(k)
                break
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)
        self.bytes_written += sum(len(v) for _, v in items)


def pack_lmdb(sources: Sequence[Any], encode: Callable[[Any], dict], path: str | os.PathLike, *,
              name: str, split: str, source_names: Sequence[str] | None = None, num_workers: int = 0,
              overwrite: bool = False, resume: bool = False, map_size: int | None = None,
              extra_meta: dict[str, Any] | None = None, progress: bool = False) -> PackResult:
    """Pack `sources` into the LMDB directory `path`, record i = msgpack(encode(sources[i])).

    `encode` must be a module-level function (it runs in worker processes when `num_workers` > 0) and
    return a dict of msgpack-able values (bytes, str, ints, lists). `source_names` (default: str of
    each source) identify the sources for `resume`. `extra_meta` (msgpack-able) joins the metadata
    record and must match on resume (e.g. how images are stored). `map_size` is the initial LMDB map size in bytes;
    it doubles whenever the database fills up.

    Refuses an existing database unless `overwrite` (start again) or `resume` (finish an interrupted
    pack of the same sources: records already written are kept and not encoded again)."""
    if overwrite and resume:
        raise UsageError("pack_lmdb: overwrite=True and resume=True contradict each other; pass one")
    path = Path(path)
    names = [str(s) for s in sources] if source_names is None else list(source_names)
    if len(names) != len(sources):
        raise UsageError(f"pack_lmdb: {len(sources)} sources but {len(names)} source_names")
    if not sources:
        raise UsageError(f"pack_lmdb: nothing to pack into {path} (no sources)")
    plan = {"format": FORMAT, "version": FORMAT_VERSION, "name": name, "split": split,
            "num_samples": len(sources), "sources_sha256": _sources_digest(names), **(extra_meta or {})}

    if path.exists() and not path.is_dir():
        raise UsageError(f"pack_lmdb: {path} is a file, not a database directory; choose another target")
    if _is_lmdb_dir(path):
        if overwrite:
            for f in _LMDB_FILES:
                (path / f).unlink(missing_ok=True)
        elif not resume:
            raise FileExistsError(f"{path} already holds an LMDB database; pass overwrite=True (--overwrite) to "
                                  f"replace it or resume=True (--resume) to finish an interrupted pack")
    path.mkdir(parents=True, exist_ok=True)

    start = time.perf_counter()
    env = _open_env(path, map_size or _DEFAULT_MAP_SIZE)
    try:
        writer = _Writer(env)
        with env.begin() as txn:
            meta_raw, plan_raw = txn.get(META_KEY), txn.get(PLAN_KEY)
        if meta_raw is not None:
            # resume=True on a finished pack: nothing to do but check it is the same one.
            meta = unpack_record(meta_raw)
            _check_same_pack(path, meta, plan)
            verify_lmdb(path, env=env)
            return PackResult(path, len(sources), 0, len(sources), time.perf_counter() - start, 0)
        if plan_raw is not None:
            _check_same_pack(path, unpack_record(plan_raw), plan)
        else:
            with env.begin() as txn:
                if txn.stat()["entries"]:
                    raise DatasetError(f"{path} holds records but no packing plan: it was not written by this packer; "
                                       f"pass overwrite=True (--overwrite) or choose another target")
            writer.put_many([(PLAN_KEY, pack_record(plan))])

        with env.begin() as txn:
            todo = [i for i in range(len(sources)) if txn.get(sample_key(i)) is None]
        skipped = len(sources) - len(todo)
        for batch in _chunks(_encoded(todo, sources, encode, num_workers, progress), COMMIT_EVERY):
            writer.put_many([(sample_key(i), data) for i, data in batch])

        meta = dict(plan, key_format=KEY_FORMAT, record_encoding="msgpack", created_by="hbdk_sim.data.packer")
        _verify_keys(env, path, len(sources))
        writer.put_many([(META_KEY, pack_record(meta))], delete=[PLAN_KEY])
        env.sync(True)
        verify_lmdb(path, env=env)
        return PackResult(path, len(sources), len(todo), skipped, time.perf_counter() - start, writer.bytes_written)
    finally:
        env.close()


def _check_same_pack(path: Path, found: dict, plan: dict) -> None:
    for key in plan:
        if found.get(key) != plan[key]:
            raise DatasetError(f"{path} holds a different pack ({key}: {found.get(key)!r}, this run: {plan[key]!r}); "
                               f"pass overwrite=True (--overwrite) to replace it or choose another target")


def _encoded(todo: list[int], sources: Sequence[Any], encode: Callable, num_workers: int,
             progress: bool) -> Iterator[tuple[int, bytes]]:
    tasks = ((encode, i, sources[i]) for i in todo)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo), unit="sample", desc="packing")
    try:
        if num_workers <= 0:
            for t in tasks:
                yield _encode_task(t)
                if bar:
                    bar.update()
            return
        with multiprocessing.get_context().Pool(num_workers) as pool:
            # Ordered results keep the written keys contiguous, so an interruption leaves a prefix.
            for item in pool.imap(_encode_task, tasks, chunksize=4):
                yield item
                if bar:
                    bar.update()
    finally:
        if bar:
            bar.close()


def _chunks(items: Iterator, n: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch


def _verify_keys(env: lmdb.Environment, path: Path, num_samples: int) -> None:
    with env.begin() as txn:
        missing = [i for i in range(num_samples) if txn.get(sample_key(i)) is None]
    if missing:
        raise DatasetError(f"{path}: {len(missing)} of {num_samples} records missing after packing "
                           f"(first: {sample_key(missing[0])!r}); re-run the packer with --resume")


def read_meta(path: str | os.PathLike, env: lmdb.Environment | None = None) -> dict[str, Any]:
    """The metadata record of the packed database at `path`, checked: a clear error for a missing
    directory, a directory that is no LMDB database, an interrupted pack, or a foreign database."""
    path = Path(path)
    if env is None:
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no such LMDB database directory; run the packer "
                                    f"(tools/datasets/cityscapes_packer.py) to create it")
        if not _is_lmdb_dir(path):
            raise DatasetError(f"{path} is not an LMDB database (no data.mdb); point the dataset at the packer's "
                               f"output directory")
        try:
            env = acquire_reader(path)
        except lmdb.Error as e:
            raise DatasetError(f"{path}: not a readable LMDB database ({type(e).__name__}: {e}); re-pack it") from None
        try:
            return read_meta(path, env)
        finally:
            release_reader(path, env)
    try:
        with env.begin() as txn:
            raw, plan, entries = txn.get(META_KEY), txn.get(PLAN_KEY), txn.stat()["entries"]
    except lmdb.Error as e:
        raise DatasetError(f"{path}: the database is damaged ({type(e).__name__}: {e}); re-pack it") from None
    if raw is None:
        if plan is not None:
            raise DatasetError(f"{path} is an interrupted pack (no {META_KEY.decode()} record); re-run the packer "
                               f"with --resume to finish it")
        raise DatasetError(f"{path} is not a database written by the hbdk-sim packer ({entries} records, no "
                           f"{META_KEY.decode()} record); re-pack the dataset with the packer")
    try:
        meta = unpack_record(raw)
    except (msgpack.UnpackException, ValueError) as e:
        raise DatasetError(f"{path}: the {META_KEY.decode()} record is not msgpack ({e}); "
                           "re-pack the dataset") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DatasetError(f"{path}: the {META_KEY.decode()} record is not an hbdk-sim pack (format "
                           f"{meta.get('format') if isinstance(meta, dict) else type(meta).__name__!r}); re-pack it")
    if meta.get("version") != FORMAT_VERSION:
        raise DatasetError(f"{path}: pack format version {meta.get('version')} but this reader reads version "
                           f"{FORMAT_VERSION}; re-pack the dataset with this version's packer")
    return meta


def verify_lmdb(path: str | os.PathLike, env: lmdb.Environment | None = None) -> dict[str, Any]:
    """Check a packed database is complete: the metadata record is there, every sample key
    0..num_samples-1 is present and nothing else is. Returns the metadata."""
    path = Path(path)
    own = env is None
    if own:
        read_meta(path)
        env = lmdb.open(str(path), readonly=True, lock=False, subdir=True, readahead=False)
    try:
        meta = read_meta(path, env)
        n = meta["num_samples"]
        _verify_keys(env, path, n)
        with env.begin() as txn:
            entries = txn.stat()["entries"]
        if entries != n + 1:
            raise DatasetError(f"{path}: {entries} records but the metadata says {n} samples + 1 metadata record; "
                               f"re-pack with --overwrite")
        return meta
    finally:
        if own:
            env.close()
