"""The analysis copy of a sweep store: the same dataset in a few large chunks, fast to open and load.

The live store (:mod:`diffmem.pipeline.store`) keeps every cell in its own chunks: each chunk has
exactly one writer, so blocks write concurrently and a SIGKILL can only ever damage the cell being
written (detected and recomputed). The price is one file per cell and variable, about 30 per cell:
25,000 files for the 900-cell paper sweep, slow to load and a burden on parallel file systems.

Packing reads the live store once and writes ``analysis.zarr`` beside it: every variable in as few
chunks as fit :data:`CHUNK_BYTES` (one chunk per variable up to paper size), metadata consolidated.
The copy is written into a temporary directory and renamed into place, so it appears complete or not
at all; it is never written cell by cell, so the single-writer rules of the live store do not apply
to it, and it is marked ``diffmem_store = "sweep-analysis"`` so that no block can ever write into it.
Values are copied bit for bit (floats, NaN of cells not done, flags, text, datetimes).

Command line (the workflow's ``pack_store`` rule)::

    diffmem sweep pack --store results/<sweep>/sweep.zarr --out results/<sweep>/analysis.zarr
"""

import json
import os
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from diffmem.errors import ParameterError

__all__ = ["ANALYSIS_KIND", "CHUNK_BYTES", "analysis_chunks", "pack"]

ANALYSIS_KIND = "sweep-analysis"
# Largest uncompressed chunk of the analysis copy: large enough that a paper-size variable
# (900 cells x 48 times x 14 radii x 8 bytes = 4.8 MB) is one chunk, small enough to stay a
# comfortable read for a much larger sweep.
CHUNK_BYTES = 64 * 2**20

# Encoding keys that describe values (kept); the chunking and codecs of the live store are not kept.
_VALUE_ENCODING = ("units", "calendar", "dtype", "_FillValue")


def analysis_chunks(shape, itemsize, chunk_bytes=CHUNK_BYTES):
    """Chunk shape: whole trailing dims, the leading dims split only as far as ``chunk_bytes`` needs."""
    chunks = list(shape)
    for axis in range(len(shape)):
        size = int(np.prod(chunks, dtype=np.int64)) * itemsize
        if size <= chunk_bytes:
            break
        rest = size // max(chunks[axis], 1)
        chunks[axis] = max(1, chunk_bytes // max(rest, 1))
    return tuple(max(1, c) for c in chunks)


def _encoding(var):
    encoding = {k: var.encoding[k] for k in _VALUE_ENCODING if k in var.encoding}
    if var.ndim:
        itemsize = 16 if var.dtype.kind == "O" else var.dtype.itemsize
        encoding["chunks"] = analysis_chunks(var.shape, itemsize)
    return encoding


def pack(store, out):
    """Write the analysis copy of the sweep store ``store`` to ``out`` (replacing an older copy).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ParameterError
        ``store`` when it is not a diffmem sweep store.
    """
    import xarray as xr

    from diffmem.pipeline import lock
    from diffmem.pipeline.store import STORE_KIND, _remove_stale_temporaries, _temporary_owner, read_attrs

    store, out = Path(store), Path(out)
    attrs = read_attrs(store)
    if not attrs or attrs.get("diffmem_store") != STORE_KIND:
        raise ParameterError("store", f"{store} is not a diffmem sweep store")
    ds = xr.open_zarr(store, chunks=None).load()
    for var in ds.variables.values():
        var.encoding = _encoding(var)
    ds.attrs.update(
        diffmem_store=ANALYSIS_KIND,
        packed_from=str(store.name),
        packed_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    # What killed packs left: temporaries of dead processes (judged by their owner records, as for
    # the store) and previous copies renamed away just before a kill.
    _remove_stale_temporaries(out)
    for old in out.parent.glob(f".{out.name}.old-*"):
        shutil.rmtree(old, ignore_errors=True)
    owner = lock.this_process()
    tmp = out.parent / f".{out.name}.tmp-{owner['token']}"
    owner_file = _temporary_owner(tmp)
    owner_file.write_text(json.dumps(owner, sort_keys=True))
    try:
        with warnings.catch_warnings():
            # zarr warns that consolidated metadata is not in the v3 spec yet; xarray reads it fine.
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            ds.to_zarr(tmp, mode="w-", consolidated=True)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.old-{owner['token']}"
            os.rename(out, old)
        os.rename(tmp, out)  # atomic: the copy appears complete or not at all
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        owner_file.unlink(missing_ok=True)
    return out
