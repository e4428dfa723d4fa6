"""The sweep store ``results/<sweep>/sweep.zarr``: created once, filled cell by cell, resumable.

Layout (opens with plain ``xarray.open_zarr``, no diffmem needed):

- cell dims ``nonlinearity, alpha_D, N, alpha, seed`` (``P`` instead of ``alpha`` when the grid
  is given in P, ``D`` instead of ``alpha_D`` when it is given in D; :mod:`diffmem.pipeline.grid`), then the extra
  dims ``t`` and ``rho`` of :data:`diffmem.engine.variables.VARIABLES`;
- coordinates: every dim, plus ``P`` (or ``alpha``) over ``(N, alpha)`` (or ``(N, P)``), the
  realized ``alpha_realized = log(P)/N``, ``D`` (or ``alpha_D``) and ``alpha_D_realized = D/N`` over
  ``(alpha_D, N)`` (or ``(D, N)``), all read off the cells' specs;
- one data variable per engine variable, with ``long_name`` and ``units``; per-cell provenance
  ``wall_time``, ``finished_at``, ``backend``, ``device``, ``sampling``, ``version``; and ``done`` (bool), written
  after the cell's data, so a cell is complete exactly when ``done`` is True;
- per cell also its identity key ``cell_key`` (:func:`diffmem.pipeline.grid.cell_key`), the
  ``digest`` of its values (JSON ``{variable: blake2b-64 hex}`` of every data variable and the text
  provenance, written with the data, before ``done``) and its ``origin`` (``computed`` or
  ``imported:<store>``). A done cell is trusted only when its chunks decode and match its digest
  (:meth:`SweepStore.verify_cells`): a corrupt one counts as not done and is recomputed;
- chunks of size 1 along every cell dim and full along ``t``/``rho``: each cell is its own set of
  chunks, written by exactly one process, so concurrent writers never touch the same chunk;
- dataset attrs: ``diffmem_store`` (= "sweep", marks a diffmem store), ``config`` (JSON),
  ``config_hash`` (:func:`diffmem.pipeline.grid.config_hash`), ``git_revision``, ``package_versions``,
  ``family``, ``mode``, ``sweep``, ``cell_dims``, ``created``, ``Conventions`` (CF). Attributes are
  written only at creation (rewriting root metadata concurrently is unsafe);
- metadata consolidated once, at creation (every array exists then, and cell writes never change
  array metadata), so the store opens without warnings at any moment of the sweep.

The store is created from a lazy dask template with ``to_zarr(compute=False)`` (metadata and
coordinates only) into a temporary directory renamed into place, so a creation killed part-way
leaves no half-made store behind.

Growing (:func:`grow`): a store whose config's grid holds every value of every axis of the store's
(and whose cells' identity is otherwise unchanged, :func:`diffmem.pipeline.grid.grow_plan`) is
rebuilt as a store of the new grid in a temporary directory, the chunk files of its finished cells
copied byte for byte to their new places, then swapped in by two renames; a kill at any moment leaves
the old store or the grown one (:func:`_recover_swap` puts the old one back when the kill fell
between the renames). Importing (:func:`import_cells`) copies the chunk files of another store's done
cells whose identity key matches a cell not done here, then sets ``done``. Both hold the sweep lock
(:func:`sweep_lock`): they are refused while a runner holds the sweep.
"""

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from diffmem.engine.variables import VARIABLES, standard_error_of
from diffmem.errors import ParameterError
from diffmem.pipeline import lock
from diffmem.pipeline.grid import (
    Grid,
    config_hash,
    describe_cell,
    grow_plan,
    identity_difference,
    science_config,
    sweep_identity,
)
from diffmem.spec import PHYSICS_VERSION
from diffmem.version import __version__

__all__ = [
    "STORE_KIND",
    "FORMAT_VERSION",
    "PROVENANCE",
    "template",
    "create",
    "SweepStore",
    "is_sweep_store",
    "read_attrs",
    "cell_chunk_path",
    "CONVENTIONS",
    "DATETIME_ENCODING",
    "DIGESTED",
    "LOCK_TOKEN_ENV",
    "value_digest",
    "sweep_lock",
    "grow",
    "import_cells",
    "resolve_source",
    "cells_to_redo",
]

STORE_KIND = "sweep"
# 2: per-cell cell_key, digest and origin; root attrs cell_identity and physics_version.
FORMAT_VERSION = 2

# CF conventions version the stores follow (units parseable by UDUNITS-2, ancillary_variables
# linking each standard error to its quantity, times as datetimes).
CONVENTIONS = "CF-1.10"

# Per-cell provenance: name -> (dtype, long_name, units); text and datetimes have no ``units``
# attribute (a datetime's units are its CF encoding, :data:`DATETIME_ENCODING`).
PROVENANCE = {
    "wall_time": ("float64", "wall-clock time of the cell in the engine", "s"),
    "finished_at": ("datetime64[ns]", "time the cell finished (UTC)", ""),
    "backend": ("str", "array backend of the cell", ""),
    "device": ("str", "device the cell ran on", ""),
    "sampling": ("str", "marginal-mode sampling scheme: shared (same draws at every t) or independent", ""),
    "version": ("str", "diffmem version that computed the cell", ""),
    "kernel": ("str", "pass that made the marginal observables: fused (numba), device (array-API) or per-time", ""),
    "exponential": (
        "str",
        "exponential of the fused pass (minimax11-fma or mixed-f32; library: the array namespace's own exp)",
        "",
    ),
    "platform": (
        "str",
        "what outside diffmem decides the cell's last bits on a CPU: machine, numpy's SIMD "
        "dispatch, the BLAS and its kernel (diffmem.engine.backend.platform_fingerprint)",
        "",
    ),
    "cell_key": ("str", "identity key of the cell (diffmem.pipeline.grid.cell_key): equal keys, equal numbers", ""),
    "digest": (
        "str",
        "digest of the cell's values as written (JSON {variable: blake2b-64 hex}), checked "
        "before a done cell is trusted",
        "",
    ),
    "origin": (
        "str",
        "how the cell got its values: computed (here or in the store it was grown from) or imported:<store>",
        "",
    ),
}

# What a cell's digest covers: its numbers and the provenance that is the same on every run (timing
# stamps differ between runs of the same config, the platform between machines; ``origin`` is
# rewritten by an import). The timing provenance is checked for decoding only.
DIGESTED = (*VARIABLES, "backend", "device", "sampling", "kernel", "exponential", "version", "cell_key")

# The token of the sweep lock of the runner a process works for (set by the holder for its own
# steps and child processes: the workflow's jobs, ``diffmem sweep run``): such a process may grow or
# import into the store; any other is refused while the lock is held.
LOCK_TOKEN_ENV = "DIFFMEM_SWEEP_LOCK_TOKEN"

# Test-only hook: when this environment variable names a stage of a grow or an import ("copy": half
# of the finished cells copied into the grown temporary; "swap": the old store renamed away, the grown
# one not yet in place; "import": half of the matching cells imported) or of a run ("write": before
# the first cell's write), the process says so on stderr and sleeps there, so that a test can SIGKILL
# it at exactly that moment. "STAGE:SECONDS" sleeps that long, then goes on; each stage pauses once
# per process.
PAUSE_ENV = "DIFFMEM_INJECT_PAUSE"
_PAUSED: set[str] = set()


def _pause_for_tests(stage):
    name, _, seconds = os.environ.get(PAUSE_ENV, "").partition(":")
    if name == stage and stage not in _PAUSED:
        _PAUSED.add(stage)
        print(f"store: paused at {stage} (test hook {PAUSE_ENV})", file=sys.stderr, flush=True)
        time.sleep(float(seconds) if seconds else 3600)


def value_digest(values):
    """blake2b-64 (hex) of one variable of one cell: dtype and little-endian bytes, NaN made canonical
    (an all-NaN chunk is not written and reads back as the fill value's NaN), text as UTF-8."""
    arr = np.asarray(values)
    h = hashlib.blake2b(digest_size=8)
    if arr.dtype.kind in "OUST":
        h.update(b"str:")
        h.update("\x1f".join(str(v) for v in arr.ravel()).encode("utf-8"))
        return h.hexdigest()
    if arr.dtype.kind == "f":
        arr = np.where(np.isnan(arr), np.asarray(np.nan, dtype=arr.dtype), arr)
    arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    h.update(arr.dtype.str.encode())
    h.update(arr.tobytes())
    return h.hexdigest()


# Stored as float seconds since the epoch, so a never-finished cell is NaN (read as NaT) and the raw
# numbers stay readable without a CF decoder.
DATETIME_ENCODING = {
    "units": "seconds since 1970-01-01T00:00:00",
    "calendar": "proleptic_gregorian",
    "dtype": "float64",
}

COORD_ATTRS = {
    "nonlinearity": ("elementwise nonlinearity sigma of the hidden manifold", None),
    "alpha_D": ("latent dimension ratio D/N (nominal)", "1"),
    "N": ("ambient dimension", "1"),
    "alpha": ("log(P)/N, in nats per dimension", "1"),
    "P": ("number of training points", "1"),
    "seed": ("data seed of the cell (its simulation seed)", "1"),
    "t": ("diffusion time, in Ornstein-Uhlenbeck time units", "1"),
    "rho": ("squared basin perturbation radius per dimension, in units of Delta_t", "1"),
    "D": ("latent dimension floor(alpha_D N + 1/2)", "1"),
    "alpha_D_realized": ("realized latent ratio D/N", "1"),
    "alpha_realized": ("realized log(P)/N, in nats per dimension", "1"),
}


# ---------------------------------------------------------------------------------------------
# provenance of the store


def git_revision():
    """``git rev-parse HEAD`` of the diffmem source tree (``-dirty`` if modified), or 'unknown'."""
    root = Path(__file__).resolve().parents[3]
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions():
    """Versions of Python and of the packages that shape the numbers and the store."""
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for name in ("diffmem", "numpy", "scipy", "xarray", "zarr", "dask", "distributed", "snakemake", "cupy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


# ---------------------------------------------------------------------------------------------
# creation


def _attrs(long_name, units):
    """``long_name`` and, where it has one, ``units`` (text and datetimes have none)."""
    return {"long_name": long_name, **({"units": units} if units else {})}


def _coords(grid):
    """Dimension coordinates (cell dims, t, rho) and the derived size coordinates of ``grid``."""
    coords = {dim: grid.axes[dim] for dim in (*grid.dims, "t", "rho")}
    return coords, grid.size_coords()


def template(grid):
    """The lazy (dask-backed) dataset of a sweep :class:`Grid`: coordinates in memory, data variables lazy."""
    import dask.array as da
    import xarray as xr

    config = grid.config
    dims = grid.dims
    coords, extra = _coords(grid)
    shape = tuple(len(coords[d]) for d in dims)
    chunks = (1,) * len(dims)
    ds = xr.Dataset(coords={**coords, **extra})
    for name, (long_name, units) in COORD_ATTRS.items():
        if name in ds.coords:
            ds[name].attrs.update(_attrs(long_name, units))

    def lazy(dtype, extra_dims=()):
        full_shape = shape + tuple(len(coords[d]) for d in extra_dims)
        full_chunks = chunks + tuple(len(coords[d]) for d in extra_dims)
        if dtype == "str":
            return da.full(full_shape, "", dtype=object, chunks=full_chunks)
        if np.dtype(dtype).kind == "M":
            return da.full(full_shape, np.datetime64("NaT", "ns"), chunks=full_chunks)
        if np.dtype(dtype).kind == "f":
            return da.full(full_shape, np.nan, dtype=dtype, chunks=full_chunks)
        return da.zeros(full_shape, dtype=dtype, chunks=full_chunks)

    for var in VARIABLES.values():
        ds[var.name] = (dims + var.dims, lazy(var.dtype, var.dims))
        ds[var.name].attrs.update(_attrs(var.long_name, var.units))
    for var in VARIABLES.values():
        quantity = standard_error_of(var.name)
        if quantity is not None:
            ds[quantity].attrs["ancillary_variables"] = var.name
    for name, (dtype, long_name, units) in PROVENANCE.items():
        ds[name] = (dims, lazy(dtype))
        ds[name].attrs.update(_attrs(long_name, units))
    ds["done"] = (dims, lazy("bool"))
    ds["done"].attrs.update(long_name="cell complete (set after its data were written)", units="1")
    ds.attrs.update(
        Conventions=CONVENTIONS,
        diffmem_store=STORE_KIND,
        diffmem_format=FORMAT_VERSION,
        sweep=config["sweep"],
        family=config["family"],
        mode=config["mode"],
        cell_dims=json.dumps(list(dims)),
        config=json.dumps(config, sort_keys=True),
        config_hash=grid.config_hash,
        cell_identity=json.dumps(sweep_identity(config), sort_keys=True),
        physics_version=PHYSICS_VERSION,
        git_revision=git_revision(),
        package_versions=json.dumps(package_versions(), sort_keys=True),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        title=f"diffmem sweep {config['sweep']!r}",
    )
    return ds


def read_attrs(path: str | os.PathLike) -> dict[str, Any] | None:
    """Root attributes (a dict) of the zarr group at ``path``, or None if it is not a readable zarr group.

    Reads the group's own metadata (``use_consolidated=False``: the attributes are written once, at
    creation, and never consolidated elsewhere), without opening any array.
    """
    import zarr

    try:
        return dict(zarr.open_group(path, mode="r", use_consolidated=False).attrs)
    except (OSError, ValueError, KeyError, TypeError):
        # missing path, no group there (an array, nothing), or a zarr.json that does not parse
        return None


def is_sweep_store(path: str | os.PathLike) -> bool:
    """True when ``path`` is a diffmem sweep store (has the ``diffmem_store`` marker)."""
    attrs = read_attrs(path)
    return attrs is not None and attrs.get("diffmem_store") == STORE_KIND


def _growable(attrs, config):
    """(True, None) when the store of ``attrs`` may grow to ``config``, else (False, the reason)."""
    if "cell_identity" not in attrs:
        return False, "the store predates cell identities (diffmem_format < 2) and cannot grow"
    try:
        grow_plan(json.loads(attrs["config"]), config)
    except ParameterError as err:
        return False, str(err).split(": ", 1)[1]
    return True, None


def check_compatible(path: str | os.PathLike, config: Mapping[str, Any]) -> dict[str, Any]:
    """Refuse a store that is not a diffmem sweep store or was made from a different config.

    A store whose cells' identity differs from ``config``'s (:func:`diffmem.pipeline.grid.sweep_identity`:
    another t grid, samples, physics version, ...) is refused even when its config hash matches.

    Raises
    ------
    ParameterError
        ``store`` when ``path`` exists but is no diffmem sweep store; ``config`` naming the first
        differing key when its grid or physics differ from ``config`` (with a hint to grow the store
        when the new grid holds every cell of the store's).
    """
    attrs = read_attrs(path)
    if not attrs or attrs.get("diffmem_store") != STORE_KIND:
        raise ParameterError(
            "store",
            f"{path} exists but is not a diffmem sweep store; refusing to touch it "
            "(move it away or choose another sweep name)",
        )
    if attrs.get("config_hash") != config_hash(config):
        stored = science_config(json.loads(attrs["config"]))
        diff = identity_difference(stored, science_config(config))
        growable, reason = _growable(attrs, config)
        if growable:
            raise ParameterError(
                "config",
                f"{path} was created by a different sweep config ({diff}); the new grid holds "
                "every cell of the store's: `diffmem sweep init` (or the workflow) grows the store to it, "
                "keeping its finished cells",
            )
        raise ParameterError(
            "config",
            f"{path} was created by a different sweep config ({reason}); changing the grid "
            "or the physics of an existing sweep is refused (it may only grow: new values along an axis, "
            "nothing else changed): use a new sweep name (its `reuse:` key can take this store's "
            "matching cells), or move the store away",
        )
    if "cell_identity" in attrs:
        diff = identity_difference(json.loads(attrs["cell_identity"]), sweep_identity(config))
        if diff:
            raise ParameterError(
                "config",
                f"{path} holds cells of another identity ({diff}); resuming it would mix "
                "numbers of two codes or settings, refused: use a new sweep name, or move the store away",
            )
    return attrs


# A creation on another node of a shared file system cannot be checked by PID: its temporary is
# taken for dead when its owner record is this old (creating a store takes seconds).
STALE_TEMPORARY_S = 3600.0


def _temporary_owner(tmp):
    return tmp.with_name(tmp.name + ".owner")


def _remove_stale_temporaries(path):
    """Delete half-made stores left by a creation that was killed (their process is gone).

    Each temporary ``.<name>.tmp-<token>`` has an owner record beside it (host, boot id, PID and
    process start time, :mod:`diffmem.pipeline.lock`): on the same host the owner is checked exactly,
    from another host it is dead once the record is :data:`STALE_TEMPORARY_S` old. A PID alone would
    not do: PIDs are reused, and the same PID on two nodes is two processes.
    """
    for owner_file in path.parent.glob(f".{path.name}.tmp-*.owner"):
        record, mtime = lock.read(owner_file)
        if record is not None and lock.holder_alive(record, mtime, path.parent, STALE_TEMPORARY_S):
            continue
        shutil.rmtree(owner_file.with_name(owner_file.name[: -len(".owner")]), ignore_errors=True)
        owner_file.unlink(missing_ok=True)
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        # The owner record is written before the temporary is made: one without it is an orphan.
        if not tmp.name.endswith(".owner") and not _temporary_owner(tmp).exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _build_temporary(path, grid):
    """A complete new store of ``grid`` in a temporary beside ``path``: (temporary, its owner record file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    owner = lock.this_process()
    tmp = path.parent / f".{path.name}.tmp-{owner['token']}"
    owner_file = _temporary_owner(tmp)
    owner_file.write_text(json.dumps(owner, sort_keys=True))
    try:
        ds = template(grid)
        encoding = {name: {"chunks": ds[name].data.chunksize} for name in ds.data_vars}
        for name in ds.data_vars:
            if ds[name].dtype.kind == "M":
                encoding[name].update(DATETIME_ENCODING)
        with warnings.catch_warnings():
            # The lazy all-"" string arrays are evaluated to pick their on-disk dtype: tiny, harmless.
            warnings.filterwarnings("ignore", message=".*dtype=object.*", category=Warning)
            # zarr warns that consolidated metadata is not in the v3 spec yet; xarray reads it fine.
            warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)
            # Consolidated here, once: every array exists from now on and cell writes never change array
            # metadata, so this view stays valid and no process ever rewrites the root metadata again.
            ds.to_zarr(tmp, mode="w-", compute=False, consolidated=True, encoding=encoding)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        owner_file.unlink(missing_ok=True)
        raise
    return tmp, owner_file


def create(path: str | os.PathLike, grid: Grid, log: Any = None) -> bool:
    """Create the store at ``path`` for the sweep :class:`Grid` ``grid`` unless it already exists.

    An existing store of a smaller grid that ``grid`` holds entirely is grown to it (:func:`grow`).

    Returns
    -------
    bool
        True if created, False if a compatible store was already there (or was grown).

    Raises
    ------
    ParameterError
        if ``path`` holds something else, or a store of a different config that cannot grow to it.
    """
    path = Path(path)
    config = grid.config
    if _swap_leftovers(path):
        with sweep_lock(path, "diffmem: recover an interrupted grow"):
            _recover_swap(path)
    if path.exists():
        attrs = read_attrs(path)
        if (
            attrs
            and attrs.get("diffmem_store") == STORE_KIND
            and attrs.get("config_hash") != grid.config_hash
            and _growable(attrs, config)[0]
        ):
            grow(path, grid, log=log)
        check_compatible(path, config)
        return False
    tmp, owner_file = _build_temporary(path, grid)
    try:
        os.rename(tmp, path)  # atomic: the store appears complete or not at all
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not path.exists():
            raise
        check_compatible(path, config)  # another process created it first
        return False
    finally:
        owner_file.unlink(missing_ok=True)
    return True


# ---------------------------------------------------------------------------------------------
# growing and importing


@contextlib.contextmanager
def sweep_lock(path, command):
    """Hold the sweep lock of the store ``path`` (``run.lock`` beside it, :mod:`diffmem.pipeline.lock`).

    A process working for the runner that holds the lock (the environment variable
    :data:`LOCK_TOKEN_ENV` holds its token: the workflow's jobs, the steps of ``diffmem sweep run``)
    goes on under that lock. Otherwise the lock is taken for the duration (a dead holder's lock is
    cleared first) and :data:`LOCK_TOKEN_ENV` set for the steps inside.

    Raises
    ------
    ParameterError
        ``lock`` naming the live holder.
    """
    lock_path = lock.sweep_lock_path(Path(path).parent)
    token = os.environ.get(LOCK_TOKEN_ENV)
    record, _ = lock.read(lock_path)
    if token and record is not None and record.get("token") == token:
        yield record
        return
    try:
        record = lock.acquire(lock_path, command=command)
    except lock.LockHeld as held:
        raise ParameterError(
            "lock",
            f"sweep {Path(path).parent.name!r} ({path}) is being run by {lock.describe(held.record)}; "
            "growing it or importing cells into it is refused while it runs: wait for it to finish or stop it "
            f"(the lock {lock_path} of a killed run is cleared automatically)",
        ) from None
    beat = lock.Heartbeat(lock_path, record).start()
    previous = os.environ.get(LOCK_TOKEN_ENV)
    os.environ[LOCK_TOKEN_ENV] = record["token"]
    try:
        yield record
    finally:
        beat.stop()
        lock.release(lock_path, record)
        if previous is None:
            os.environ.pop(LOCK_TOKEN_ENV, None)
        else:
            os.environ[LOCK_TOKEN_ENV] = previous


def _swap_leftovers(path):
    return sorted(path.parent.glob(f".{path.name}.old-*"))


def _recover_swap(path):
    """Finish what a grow killed during its swap left: put the old store back when the grown one is
    not in place yet (the next grow redoes it), else delete the old one. Call under the sweep lock."""
    leftovers = _swap_leftovers(path)
    if not path.exists() and leftovers:
        newest = max(leftovers, key=lambda p: p.stat().st_mtime)
        os.rename(newest, path)
        leftovers.remove(newest)
    for old in leftovers:
        shutil.rmtree(old, ignore_errors=True)


def _chunk_file(path, arr, n_cell_dims, index):
    coords = tuple(int(i) for i in index) + (0,) * (arr.ndim - n_cell_dims)
    return Path(path) / arr.path / arr.metadata.chunk_key_encoding.encode_chunk_key(coords)


def _copy_file(src, dst):
    """Copy a chunk file byte for byte (atomically: a temporary renamed into place); a missing source
    (a chunk never written: all fill value) removes the destination."""
    if not src.exists():
        dst.unlink(missing_ok=True)
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.copy-{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _encoding_of(arr):
    """What makes a chunk's bytes (all of an array's metadata but its shape)."""
    meta = arr.metadata.to_dict()
    meta.pop("shape", None)
    meta.pop("attributes", None)
    meta.pop("dimension_names", None)
    return json.dumps(meta, sort_keys=True, default=str)


class _CellCopier:
    """Copies the chunks of single cells from one sweep store to another, byte for byte."""

    def __init__(self, src, src_shape, dst, dst_shape, names):
        import zarr

        self.src, self.dst = Path(src), Path(dst)
        self.src_shape, self.dst_shape = src_shape, dst_shape
        self.n = len(src_shape)
        src_group = zarr.open_group(self.src, mode="r", use_consolidated=False)
        dst_group = zarr.open_group(self.dst, mode="r+", use_consolidated=False)
        self.arrays = {name: (src_group[name], dst_group[name]) for name in names}
        for name, (a, b) in self.arrays.items():
            if _encoding_of(a) != _encoding_of(b) or a.shape[self.n :] != b.shape[self.n :]:
                raise ParameterError("store", f"{src} and {dst} encode {name} differently: cannot copy its chunks")

    def copy(self, src_flat, dst_flat, names):
        src_index = np.unravel_index(int(src_flat), self.src_shape)
        dst_index = np.unravel_index(int(dst_flat), self.dst_shape)
        for name in names:
            a, b = self.arrays[name]
            _copy_file(_chunk_file(self.src, a, self.n, src_index), _chunk_file(self.dst, b, self.n, dst_index))


def grow(path, grid, log=None):
    """Grow the store at ``path`` to the larger grid ``grid``, keeping every finished cell byte for byte.

    Under the sweep lock: a new store of ``grid`` is built in a temporary, the chunk files of every
    done cell that verifies (:meth:`SweepStore.verify_cells`; a corrupt one is left to recompute) are
    copied to the cell's place in the new grid, ``done`` last, and the new store replaces the old by
    two renames (:func:`_recover_swap` repairs a kill between them).

    Returns
    -------
    dict or None
        ``{"kept": n, "corrupt": n, "cells": n of the new grid}``; None when the store already is of
        ``grid`` (grown by another process meanwhile).

    Raises
    ------
    ParameterError
        ``config`` when the store cannot grow to ``grid`` (naming the key), ``lock`` when a runner
        holds the sweep.
    """
    path = Path(path)
    log = sys.stderr if log is None else log
    with sweep_lock(path, "diffmem sweep init (grow the store)"):
        _recover_swap(path)
        attrs = read_attrs(path)
        if not attrs or attrs.get("diffmem_store") != STORE_KIND:
            check_compatible(path, grid.config)  # raises the store error
        if attrs.get("config_hash") == grid.config_hash:
            return None
        growable, reason = _growable(attrs, grid.config)
        if not growable:
            check_compatible(path, grid.config)  # raises, naming the key
            raise ParameterError("config", reason)
        old_config = json.loads(attrs["config"])
        plan = grow_plan(old_config, grid.config)
        old = SweepStore(path, Grid(old_config), attrs)
        done = np.flatnonzero(old.done_flat())
        corrupt = old.verify_cells(done)
        keep = [int(f) for f in done if int(f) not in corrupt]
        tmp, owner_file = _build_temporary(path, grid)
        try:
            names = [*VARIABLES, *PROVENANCE]
            copier = _CellCopier(path, old.shape, tmp, grid.shape, [*names, "done"])
            for k, flat in enumerate(keep):
                if k == len(keep) // 2:
                    _pause_for_tests("copy")
                copier.copy(flat, plan[flat], names)
            for flat in keep:
                copier.copy(flat, plan[flat], ["done"])
            away = path.parent / f".{path.name}.old-{tmp.name.rsplit('tmp-', 1)[1]}"
            os.rename(path, away)
            _pause_for_tests("swap")
            os.rename(tmp, path)
            shutil.rmtree(away, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            owner_file.unlink(missing_ok=True)
    print(
        f"store: grew {path} from {old.grid.n_cells} to {grid.n_cells} cells: kept the {len(keep)} finished "
        f"cells byte for byte{f', left {len(corrupt)} corrupt ones to recompute' if corrupt else ''}; "
        f"{grid.n_cells - len(keep)} cells to compute",
        file=log,
        flush=True,
    )
    return {"kept": len(keep), "corrupt": len(corrupt), "cells": grid.n_cells}


def resolve_source(source):
    """The sweep store a ``reuse:`` entry or ``--from`` names: a store, or a results folder holding
    ``sweep.zarr``."""
    source = Path(source)
    if not is_sweep_store(source) and is_sweep_store(source / "sweep.zarr"):
        return source / "sweep.zarr"
    return source


def import_cells(path, grid, sources, log=None, missing_ok=False):
    """Copy into the store at ``path`` the done cells of the stores ``sources`` whose identity matches.

    For every cell of ``grid`` that is not done here (or is corrupt), a done cell of a source with the
    same identity key (:func:`diffmem.pipeline.grid.cell_key`) that verifies there is copied chunk
    file by chunk file, byte for byte, its ``origin`` set to ``imported:<source>``, then its ``done``
    flag. Cells of another identity (another t grid, samples, physics version, ...) are never taken.
    Under the sweep lock; a kill leaves every cell imported so far done and the others not, and the
    next import takes them.

    Parameters
    ----------
    sources : list of path
        Sweep stores (or results folders holding ``sweep.zarr``), taken in order.
    missing_ok : bool
        Skip (with a note on ``log``) a source that does not exist, instead of refusing it.

    Returns
    -------
    dict
        ``{source path: n cells imported}``.
    """
    import zarr

    path = Path(path)
    log = sys.stderr if log is None else log
    counts = {}
    with sweep_lock(path, "diffmem sweep import"):
        store = SweepStore.open(path, grid)
        done = store.done_flat()
        corrupt = store.verify_cells(np.flatnonzero(done))
        wanted = {grid.cell_key(f): f for f in range(grid.n_cells) if not done[f] or f in corrupt}
        for source in sources:
            source = resolve_source(source)
            if not source.exists() and missing_ok:
                print(f"store: reuse: {source} does not exist (yet); nothing imported from it", file=log, flush=True)
                continue
            attrs = read_attrs(source)
            if not attrs or attrs.get("diffmem_store") != STORE_KIND:
                raise ParameterError("reuse", f"{source} is not a diffmem sweep store")
            if source.resolve() == path.resolve():
                continue
            if "cell_identity" not in attrs:
                print(
                    f"store: {source} predates cell identities (diffmem_format < 2): nothing imported from it",
                    file=log,
                    flush=True,
                )
                counts[str(source)] = 0
                continue
            other = SweepStore(source, Grid(json.loads(attrs["config"])), attrs)
            keys = np.asarray(zarr.open_array(source / "cell_key", mode="r")[...]).ravel()
            other_done = other.done_flat()
            matches = [(int(f), wanted[str(keys[f])]) for f in np.flatnonzero(other_done) if str(keys[f]) in wanted]
            bad = other.verify_cells([f for f, _ in matches], check_identity=True)
            matches = [(f, g) for f, g in matches if f not in bad]
            copied = 0
            if matches:
                names = [name for name in (*VARIABLES, *PROVENANCE) if name != "origin"]
                copier = _CellCopier(source, other.shape, path, grid.shape, names)
                arrays = store._arrays()
                lead = (1,) * len(grid.dims)
                origin = f"imported:{source}"
                for k, (src_flat, dst_flat) in enumerate(matches):
                    if k == len(matches) // 2:
                        _pause_for_tests("import")
                    copier.copy(src_flat, dst_flat, names)
                    region = tuple(store._region(dst_flat).values())
                    arrays["origin"][region] = np.full(lead, origin, dtype=object)
                    arrays["done"][region] = np.ones(lead, dtype=bool)
                    wanted.pop(grid.cell_key(dst_flat), None)
                    copied += 1
            counts[str(source)] = copied
            print(
                f"store: imported {copied} done cells of matching identity from {source} into {path}"
                f"{f' ({len(bad)} corrupt there, not taken)' if bad else ''}",
                file=log,
                flush=True,
            )
    return counts


# ---------------------------------------------------------------------------------------------
# filling


def _read_by_bisection(arr, out, box):
    """Fill ``out[box]`` from zarr array ``arr``, halving boxes that fail to read.

    ``box`` is a list of ``(start, stop)`` per dim. A read fails when one of its chunks does not
    decode; halving the longest side isolates the damaged single-cell chunks in O(k log n) reads for
    k damaged chunks, instead of one read per cell. Returns the flat numbers of unreadable cells
    (left False in ``out``).
    """
    region = tuple(slice(a, b) for a, b in box)
    try:
        out[region] = np.asarray(arr[region], dtype=bool)
        return []
    except Exception:  # noqa: BLE001 - any codec error of a damaged chunk
        pass
    sizes = [b - a for a, b in box]
    if max(sizes) == 1:
        return [int(np.ravel_multi_index([a for a, _ in box], out.shape))]
    axis = int(np.argmax(sizes))
    a, b = box[axis]
    mid = (a + b) // 2
    damaged = []
    for half in ((a, mid), (mid, b)):
        sub = list(box)
        sub[axis] = half
        damaged += _read_by_bisection(arr, out, sub)
    return damaged


def _cells_readable(arr, grid_shape, flats):
    """True when every chunk of cells ``flats`` in zarr array ``arr`` decodes.

    One coordinate selection over all the cells' elements (cell dims first, then the full extra
    dims), so zarr reads the chunks concurrently in one call.
    """
    cell_idx = np.unravel_index(np.asarray(flats, dtype=np.int64), grid_shape)
    extra = tuple(arr.shape[len(grid_shape) :])
    per_cell = int(np.prod(extra, dtype=np.int64))
    coords = [np.repeat(i, per_cell) for i in cell_idx]
    if extra:
        coords += [np.tile(e.ravel(), len(flats)) for e in np.indices(extra)]
    try:
        arr.get_coordinate_selection(tuple(coords))
    except Exception:  # noqa: BLE001 - any codec error of a damaged chunk
        return False
    return True


def _read_cells(arr, grid_shape, flats):
    """Values of cells ``flats`` of zarr array ``arr``: ``({flat: array of the cell's extra dims}, [unreadable
    flats])``.

    One read for all of them (the whole array when they are every cell, else one coordinate
    selection), cell by cell only when that read fails.
    """
    flats = [int(f) for f in flats]
    if not flats:
        return {}, []
    n = len(grid_shape)
    extra = tuple(arr.shape[n:])
    try:
        if len(flats) == int(np.prod(grid_shape, dtype=np.int64)):
            values = np.asarray(arr[...]).reshape((-1, *extra))
            return {f: values[f] for f in flats}, []
        cell_idx = np.unravel_index(np.asarray(flats, dtype=np.int64), grid_shape)
        per_cell = int(np.prod(extra, dtype=np.int64))
        coords = [np.repeat(i, per_cell) for i in cell_idx]
        if extra:
            coords += [np.tile(e.ravel(), len(flats)) for e in np.indices(extra)]
        values = np.asarray(arr.get_coordinate_selection(tuple(coords))).reshape((len(flats), *extra))
        return {f: values[k] for k, f in enumerate(flats)}, []
    except Exception:  # noqa: BLE001 - a damaged chunk (any codec error): find it cell by cell
        pass
    out, bad = {}, []
    for f in flats:
        region = tuple(slice(int(i), int(i) + 1) for i in np.unravel_index(f, grid_shape))
        try:
            out[f] = np.asarray(arr[region]).reshape(extra)
        except Exception:  # noqa: BLE001
            bad.append(f)
    return out, bad


async def _gather(coroutines):
    import asyncio

    await asyncio.gather(*coroutines)


class SweepStore:
    """An open sweep store of one :class:`Grid`: reads ``done`` and writes cells by region."""

    def __init__(self, path, grid, attrs):
        self.path = Path(path)
        self.grid = grid
        self.config = grid.config
        self.attrs = attrs
        self.dims = grid.dims
        self.shape = grid.shape
        self.n_t = len(grid.axes["t"])
        self.n_rho = len(grid.axes["rho"])
        self.t = grid.axes["t"]

    @classmethod
    def open(cls, path: str | os.PathLike, grid: Grid) -> "SweepStore":
        """Open an existing store, checking that it belongs to ``grid``'s config (else ParameterError)."""
        if not Path(path).exists():
            raise ParameterError("store", f"{path} does not exist; create it first (diffmem sweep init)")
        return cls(path, grid, check_compatible(path, grid.config))

    def done_flat(self, report=None, log=None):
        """``done`` flags of every cell, flat in C order (unreadable chunks count as not done).

        Parameters
        ----------
        report : iterable of int or None
            Cells whose unreadable ``done`` chunk is reported on ``log`` (None: every cell). A block
            passes its own cells, so each damaged cell is reported once, by the job that redoes it.
        log : file or None
            Where the report goes (default ``sys.stderr``).
        """
        import zarr

        arr = zarr.open_array(self.path / "done", mode="r")
        try:
            return np.asarray(arr[...], dtype=bool).ravel()
        except Exception:  # noqa: BLE001 - a damaged chunk (any codec error): find it by bisection
            pass
        out = np.zeros(self.shape, dtype=bool)
        damaged = _read_by_bisection(arr, out, [(0, n) for n in self.shape])
        report = None if report is None else {int(f) for f in report}
        for flat in damaged:
            if report is None or flat in report:
                print(
                    f"store: done flag of cell {flat} unreadable; it will be recomputed",
                    file=log or sys.stderr,
                    flush=True,
                )
        return out.ravel()

    def unreadable_cells(self, flats):
        """Cells among ``flats`` with a data or provenance chunk that fails to decode.

        Reads every data variable and provenance variable of those cells (chunks are 1 along every
        cell dim, so this reads exactly the cells' own chunks): one batched read per variable, and
        cell by cell only for a variable whose batched read fails. Meant for the done cells of one
        block: a done flag says the data were written, not that they are still readable.

        Returns
        -------
        dict
            ``{flat: name of the first unreadable variable}``; empty when all are readable.
        """
        import zarr

        flats = sorted({int(f) for f in flats})
        bad = {}
        for name in (*VARIABLES, *PROVENANCE):
            todo = [f for f in flats if f not in bad]
            if not todo:
                break
            arr = zarr.open_array(self.path / name, mode="r")
            if _cells_readable(arr, self.shape, todo):
                continue
            for flat in todo:
                if not _cells_readable(arr, self.shape, [flat]):
                    bad[flat] = name
        return bad

    def verify_cells(self, flats: Iterable[int], check_identity: bool = True) -> dict[int, str]:
        """Done cells among ``flats`` that must not be trusted, each with the reason.

        A cell is corrupt when a chunk of any of its variables fails to decode, when a variable of
        :data:`DIGESTED` no longer matches the digest written with it (flipped or truncated bytes that
        still decode, a chunk file lost), or when it has no digest. With ``check_identity`` a cell whose
        stored identity key differs from this grid's key of the cell is refused too. Reads exactly the
        cells' own chunks, one batched read per variable (stores without digests, diffmem_format < 2:
        decoding only).

        Returns
        -------
        dict
            ``{flat: reason}``; empty when every cell is intact.
        """
        import zarr

        flats = sorted({int(f) for f in flats})
        bad: dict[int, str] = {}
        if not flats:
            return bad
        group = zarr.open_group(self.path, mode="r", use_consolidated=False)
        present = set(group.array_keys())
        expected = {}
        if "digest" in present:
            values, unreadable = _read_cells(group["digest"], self.shape, flats)
            for flat in unreadable:
                bad[flat] = "chunk of digest unreadable"
            for flat, value in values.items():
                try:
                    expected[flat] = json.loads(str(value))
                except ValueError:
                    bad[flat] = "no digest written with its done flag"
        if check_identity and "cell_key" in present:
            values, _ = _read_cells(group["cell_key"], self.shape, [f for f in flats if f not in bad])
            for flat, value in values.items():
                if str(value) != self.grid.cell_key(flat):
                    bad[flat] = (
                        f"identity key {str(value)[:18]}... differs from this grid's {self.grid.cell_key(flat)[:18]}..."
                    )
        for name in (*VARIABLES, *PROVENANCE):
            todo = [f for f in flats if f not in bad]
            if not todo or name not in present:
                continue
            values, unreadable = _read_cells(group[name], self.shape, todo)
            for flat in unreadable:
                bad[flat] = f"chunk of {name} unreadable"
            if name not in DIGESTED or not expected:
                continue
            for flat, value in values.items():
                want = expected.get(flat, {})
                if name not in want:
                    bad[flat] = f"digest lacks {name}"
                elif value_digest(value) != want[name]:
                    bad[flat] = f"{name} does not match its digest"
        return dict(sorted(bad.items()))

    def _region(self, flat):
        idx = np.unravel_index(int(flat), self.shape)
        return {dim: slice(int(i), int(i) + 1) for dim, i in zip(self.dims, idx)}

    def _shape_of(self, extra_dims):
        return tuple({"t": self.n_t, "rho": self.n_rho}[d] for d in extra_dims)

    def cell_dataset(self, flat, result):
        """The one-cell dataset (data and provenance, no ``done``) from an engine result dict.

        Raises
        ------
        ValueError
            if the result breaks the contract of :mod:`diffmem.engine.variables` (missing variable, wrong
            shape, or a time grid or P different from the sweep's).
        """
        import xarray as xr

        return xr.Dataset(self._cell_values(flat, result))

    def _cell_values(self, flat, result):
        """``{name: (dims, one-cell array)}`` of the data and provenance of a cell (:meth:`cell_dataset`)."""
        coords = self.grid.coords(flat)
        if "t" in result and not np.allclose(np.asarray(result["t"], dtype=float), self.t, rtol=1e-12):
            raise ValueError(f"cell {flat}: engine returned a t grid different from the sweep's")
        params = result.get("params", {})
        for key in ("P", "D"):
            if key in params and params[key] is not None and int(params[key]) != coords[key]:
                raise ValueError(f"cell {flat}: engine used {key} = {params[key]}, the sweep expects {coords[key]}")
        lead = (1,) * len(self.dims)
        data = {}
        for var in VARIABLES.values():
            if var.name not in result:
                raise ValueError(f"cell {flat}: engine result lacks variable {var.name!r}")
            value = result[var.name]
            want = self._shape_of(var.dims)
            if np.dtype(var.dtype).kind == "f":
                arr = np.array(value, dtype=object)
                arr = np.where(arr == None, np.nan, arr).astype(var.dtype)  # noqa: E711 - None -> NaN
            else:
                arr = np.asarray(0 if value is None else value).astype(var.dtype)
            if arr.shape != want:
                raise ValueError(f"cell {flat}: variable {var.name!r} has shape {arr.shape}, expected {want}")
            data[var.name] = (self.dims + var.dims, arr.reshape(lead + want))
        provenance = {
            "wall_time": float(result.get("wall_time", np.nan)),
            "finished_at": np.datetime64(time.time_ns(), "ns"),
            "backend": str(params.get("backend", self.config.get("backend", ""))),
            "device": str(params.get("device", "")),
            "sampling": str(params.get("sampling", "")),
            "kernel": str(params.get("kernel", "")),
            "exponential": str(params.get("exponential", "")),
            "platform": str(params.get("platform", "")),
            "version": str(params.get("version", __version__)),
        }
        provenance["cell_key"] = self.grid.cell_key(flat)
        digest = {name: value_digest(values) for name, (_, values) in data.items()}
        digest.update({name: value_digest(provenance[name]) for name in DIGESTED if name in provenance})
        provenance["digest"] = json.dumps(digest, sort_keys=True, separators=(",", ":"))
        provenance["origin"] = "computed"
        for name, value in provenance.items():
            dtype = object if PROVENANCE[name][0] == "str" else PROVENANCE[name][0]
            data[name] = (self.dims, np.full(lead, value, dtype=dtype))
        return data

    def _arrays(self):
        """The store's zarr arrays by name, opened once per store object (their metadata never changes
        after creation: fixed shapes, one chunk per cell)."""
        if getattr(self, "_open_arrays", None) is None:
            import zarr

            group = zarr.open_group(self.path, mode="r+", use_consolidated=False)
            self._open_arrays = {name: group[name] for name in (*VARIABLES, *PROVENANCE, "done")}
        return self._open_arrays

    def write_cell(self, flat: int, result: Mapping[str, Any]) -> None:
        """Write one cell's data, then its ``done`` flag: each variable's chunk of the cell, then ``done``.

        The chunks are written with zarr directly, not through ``xarray.Dataset.to_zarr``, whose
        per-call opening and checking of the whole store cost more than a small cell's compute; the
        values on disk are the ones ``to_zarr`` writes (the same arrays, dtypes and fill values;
        ``finished_at`` encoded as :data:`DATETIME_ENCODING` says).
        """
        _pause_for_tests("write")
        from zarr.core.sync import sync

        arrays = self._arrays()
        region = tuple(self._region(flat).values())
        writes = []
        for name, (_, values) in self._cell_values(flat, result).items():
            if values.dtype.kind == "M":
                values = _encode_datetime(values)
            writes.append(arrays[name].async_array.setitem(region, values))
        # The data chunks are written concurrently (one trip through zarr's event loop instead of
        # one per variable); ``done`` only after all of them have been written.
        sync(_gather(writes))
        arrays["done"][region] = np.ones((1,) * len(self.dims), dtype=bool)


def _encode_datetime(values):
    """``values`` (datetime64) as stored: xarray's CF coder with :data:`DATETIME_ENCODING` (float64
    seconds since the epoch, NaT -> NaN), the same bytes as ``to_zarr`` writes."""
    import xarray as xr
    from xarray.coders import CFDatetimeCoder

    variable = xr.Variable(tuple(f"d{i}" for i in range(values.ndim)), values, encoding=dict(DATETIME_ENCODING))
    return np.asarray(CFDatetimeCoder().encode(variable).values)


def cells_to_redo(path, grid, log=None):
    """Cells of the store at ``path`` that the next run must compute: not done, or done but corrupt
    (:meth:`SweepStore.verify_cells`, each reported on ``log``). None when there is no store of
    ``grid`` there yet (it is created or grown first). The workflow reopens the blocks holding them
    (their markers are removed), so a corrupt cell of a finished block is recomputed too."""
    path = Path(path)
    try:
        store = SweepStore.open(path, grid)
    except ParameterError:
        return None
    log = sys.stderr if log is None else log
    done = store.done_flat(log=log)
    for flat, reason in store.verify_cells(np.flatnonzero(done)).items():
        print(
            f"store: cell {flat} ({describe_cell(grid.coords(flat))}) is corrupt: {reason}; it will be recomputed",
            file=log,
            flush=True,
        )
        done[flat] = False
    return set(np.flatnonzero(~done).tolist())


def cell_chunk_path(path, variable, flat):
    """Path of the file holding the chunk of ``variable`` for cell ``flat`` (chunks are 1 along every cell dim).

    The one place outside zarr that knows where a cell lives on disk (tests damage chunks through it).
    """
    import zarr

    arr = zarr.open_array(Path(path) / variable, mode="r")
    n_cell_dims = len(json.loads(read_attrs(path)["cell_dims"]))
    cell = np.unravel_index(int(flat), arr.shape[:n_cell_dims])
    coords = tuple(int(i) for i in cell) + (0,) * (arr.ndim - n_cell_dims)
    return Path(path) / variable / arr.metadata.chunk_key_encoding.encode_chunk_key(coords)
