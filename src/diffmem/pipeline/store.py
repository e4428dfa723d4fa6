"""The sweep store ``results/<sweep>/sweep.zarr``: created once, filled cell by cell, resumable.

Layout (opens with plain ``xarray.open_zarr``, no diffmem needed):

- cell dims ``nonlinearity, alpha_D, N, alpha, seed`` (``P`` instead of ``alpha`` when the grid
  is given in P, ``D`` instead of ``alpha_D`` when it is given in D; :mod:`diffmem.pipeline.grid`), then the extra dims ``t`` and ``rho`` of :data:`diffmem.engine.variables.VARIABLES`;
- coordinates: every dim, plus ``P`` (or ``alpha``) over ``(N, alpha)`` (or ``(N, P)``), the
  realized ``alpha_realized = log(P)/N``, ``D`` (or ``alpha_D``) and ``alpha_D_realized = D/N`` over
  ``(alpha_D, N)`` (or ``(D, N)``), all read off the cells' specs;
- one data variable per engine variable, with ``long_name`` and ``units``; per-cell provenance
  ``wall_time``, ``finished_at``, ``backend``, ``device``, ``sampling``, ``version``; and ``done`` (bool), written
  after the cell's data, so a cell is complete exactly when ``done`` is True;
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
"""

import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from diffmem.version import __version__
from diffmem.engine.variables import VARIABLES, standard_error_of
from diffmem.errors import ParameterError
from diffmem.pipeline import lock
from diffmem.pipeline.grid import config_hash, science_config

__all__ = [
    "STORE_KIND",
    "FORMAT_VERSION",
    "PROVENANCE",
    "template",
    "create",
    "SweepStore",
    "is_sweep_store",
    "cell_chunk_path",
    "CONVENTIONS",
    "DATETIME_ENCODING",
]

STORE_KIND = "sweep"
FORMAT_VERSION = 1

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
}

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
        rev = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
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
    ds["done"].attrs.update(
        long_name="cell complete (set after its data were written)", units="1"
    )
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
        git_revision=git_revision(),
        package_versions=json.dumps(package_versions(), sort_keys=True),
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        title=f"diffmem sweep {config['sweep']!r}",
    )
    return ds


def _read_root_attrs(path):
    """Root attributes of a zarr group at ``path``, or None if it is not a readable zarr group."""
    meta = Path(path) / "zarr.json"
    try:
        doc = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if doc.get("node_type") != "group":
        return None
    return doc.get("attributes", {})


def is_sweep_store(path):
    """True when ``path`` is a diffmem sweep store (has the ``diffmem_store`` marker)."""
    attrs = _read_root_attrs(path)
    return bool(attrs) and attrs.get("diffmem_store") == STORE_KIND


def _first_difference(stored, new, prefix=""):
    """Name of the first key whose value differs between two science configs."""
    if isinstance(stored, dict) and isinstance(new, dict):
        for key in sorted(set(stored) | set(new)):
            diff = _first_difference(stored.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
            if diff:
                return diff
        return None
    if stored != new:
        return f"{prefix} (store: {stored!r}, config: {new!r})"
    return None


def check_compatible(path, config):
    """Refuse a store that is not a diffmem sweep store or was made from a different config.

    Raises
    ------
    ParameterError
        ``store`` when ``path`` exists but is no diffmem sweep store; ``config`` naming the first
        differing key when its grid or physics differ from ``config``.
    """
    attrs = _read_root_attrs(path)
    if not attrs or attrs.get("diffmem_store") != STORE_KIND:
        raise ParameterError(
            "store", f"{path} exists but is not a diffmem sweep store; refusing to touch it "
            "(move it away or choose another sweep name)"
        )
    if attrs.get("config_hash") != config_hash(config):
        stored = science_config(json.loads(attrs["config"]))
        diff = _first_difference(stored, science_config(config))
        raise ParameterError(
            "config", f"{path} was created by a different sweep config ({diff}); changing the grid "
            "or the physics of an existing sweep is refused: use a new sweep name, or move the store away"
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


def create(path, grid):
    """Create the store at ``path`` for the sweep :class:`Grid` ``grid`` unless it already exists.

    Returns
    -------
    bool
        True if created, False if a compatible store was already there.

    Raises
    ------
    ParameterError
        if ``path`` holds something else, or a store of a different config.
    """
    path = Path(path)
    config = grid.config
    if path.exists():
        check_compatible(path, config)
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temporaries(path)
    owner = lock.this_process()
    tmp = path.parent / f".{path.name}.tmp-{owner['token']}"
    owner_file = _temporary_owner(tmp)
    owner_file.write_text(json.dumps(owner, sort_keys=True))
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
    extra = tuple(arr.shape[len(grid_shape):])
    per_cell = int(np.prod(extra, dtype=np.int64))
    coords = [np.repeat(i, per_cell) for i in cell_idx]
    if extra:
        coords += [np.tile(e.ravel(), len(flats)) for e in np.indices(extra)]
    try:
        arr.get_coordinate_selection(tuple(coords))
    except Exception:  # noqa: BLE001 - any codec error of a damaged chunk
        return False
    return True


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
    def open(cls, path, grid):
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
                print(f"store: done flag of cell {flat} unreadable; it will be recomputed",
                      file=log or sys.stderr, flush=True)
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
            "version": str(params.get("version", __version__)),
        }
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

    def write_cell(self, flat, result):
        """Write one cell's data, then its ``done`` flag: each variable's chunk of the cell, then ``done``.

        The chunks are written with zarr directly, not through ``xarray.Dataset.to_zarr``, whose
        per-call opening and checking of the whole store cost more than a small cell's compute; the
        values on disk are the ones ``to_zarr`` writes (the same arrays, dtypes and fill values;
        ``finished_at`` encoded as :data:`DATETIME_ENCODING` says).
        """
        from zarr.core.sync import sync

        arrays = self._arrays()
        region = tuple(self._region(flat).values())
        writes = []
        for name, (_, values) in self._cell_values(flat, result).items():
            if values.dtype.kind == "M":
                # CF encoding of DATETIME_ENCODING: float64 seconds since the epoch (NaT -> NaN).
                values = np.where(np.isnat(values), np.nan,
                                  (values - np.datetime64(0, "ns")) / np.timedelta64(1, "s"))
            writes.append(arrays[name].async_array.setitem(region, values))
        # The data chunks are written concurrently (one trip through zarr's event loop instead of
        # one per variable); ``done`` only after all of them have been written.
        sync(_gather(writes))
        arrays["done"][region] = np.ones((1,) * len(self.dims), dtype=bool)


def cell_chunk_path(path, variable, flat):
    """Path of the file holding the chunk of ``variable`` for cell ``flat`` (chunks are 1 along every cell dim).

    The one place outside zarr that knows where a cell lives on disk (tests damage chunks through it).
    """
    import zarr

    arr = zarr.open_array(Path(path) / variable, mode="r")
    n_cell_dims = len(json.loads(_read_root_attrs(path)["cell_dims"]))
    cell = np.unravel_index(int(flat), arr.shape[:n_cell_dims])
    coords = tuple(int(i) for i in cell) + (0,) * (arr.ndim - n_cell_dims)
    return Path(path) / variable / arr.metadata.chunk_key_encoding.encode_chunk_key(coords)
