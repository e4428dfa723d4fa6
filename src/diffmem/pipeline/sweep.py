"""Sweeps: configuration, the grid of cells, blocks, per-cell seeds and the dask block runner.

A sweep is a grid of *cells* over the cell dimensions ``nonlinearity x alpha_D x N x (alpha | P) x
seed`` (C order, in that order); every cell runs :func:`diffmem.engine.cell.run_cell` on the same t grid and
is written into one zarr store (:mod:`diffmem.pipeline.store`). The grid is split into *blocks* of
``block_size`` consecutive cells: one Snakemake job per block, whose cells run as dask tasks.

Seeds: the simulation seed of a cell is its ``seed`` coordinate (the engine derives every stream
from it, :mod:`diffmem.seeding`), so a cell gives the same numbers in any sweep, in any block, on
any worker, and a resumed cell reproduces the bits of an uninterrupted run.

Fault injection (for tests of retries and failure handling): when the environment variable
``DIFFMEM_INJECT_FAILURE`` holds JSON ``{"cells": [...], "times": n, "state_dir": path}`` in the
process that runs a block, the first ``n`` attempts (``-1`` = every attempt) of each listed cell
raise ``RuntimeError("injected failure ...")`` inside the dask task. A listed cell is a flat cell
index or a dict of coordinates that must all match (e.g. ``{"N": 32, "seed": 1}``). Attempts are
counted in files under ``state_dir``, so the count is shared across worker processes and reruns.
"""

import copy
import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from diffmem.errors import ParameterError

__all__ = [
    "CellError",
    "schema_path",
    "load_config",
    "validate_config",
    "resolve_config",
    "science_config",
    "config_hash",
    "axes",
    "cell_dims",
    "grid_shape",
    "n_cells",
    "cell_coords",
    "cell_index",
    "block_names",
    "block_cells",
    "cell_kwargs",
    "compute_cell",
    "PERMANENT_FAILURE",
    "run_block",
    "INJECT_ENV",
]

INJECT_ENV = "DIFFMEM_INJECT_FAILURE"

# Keys that change the numbers a cell produces: they define the config hash of a store, so a store
# cannot be resumed with different physics. Execution settings (cluster, retries, block_size,
# progress, backend) are left out on purpose: moving a sweep to a cluster or a GPU mid-way is allowed
# (the backend and device of each cell are recorded as provenance).
SCIENCE_KEYS = (
    "family", "mode", "normalize", "m_tilde", "sigma", "t", "rho", "samples", "test_samples",
    "basin_samples", "steps", "dtype", "chunk_size",
)

INTEGER_AXES = ("N", "P", "seed")
# Largest P a grid may ask for: the engine's limit (diffmem.engine.cell.MAX_P), checked here so that a sweep
# is rejected before any job starts.
MAX_P = 10**12


class CellError(RuntimeError):
    """A cell failed after its retries; the message names the cell and its parameters."""


# ---------------------------------------------------------------------------------------------
# configuration


def schema_path():
    """Path of ``workflow/schemas/config.schema.yaml`` (the one schema Snakemake also uses)."""
    return Path(__file__).resolve().parents[3] / "workflow" / "schemas" / "config.schema.yaml"


def load_config(path):
    """Read a YAML (or JSON) sweep config file into a dict (not yet validated)."""
    import yaml

    with open(path) as fh:
        config = yaml.safe_load(fh)
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ParameterError("config", f"{path} must hold a mapping, got {type(config).__name__}")
    return config


def _key_path(error_path):
    """'grid.N[0]' from a jsonschema error path deque."""
    text = ""
    for part in error_path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "config"


def _error_key(error):
    """The config key a jsonschema error is about (the unknown key for additionalProperties)."""
    key = _key_path(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        if extra:
            prefix = "" if key == "config" else key + "."
            return f"{prefix}{extra[0]}", f"unknown key; valid keys are {', '.join(allowed)}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        # Report the branch that got furthest (deepest path), e.g. grid.N[1] below minimum.
        best = max(error.context, key=lambda e: len(e.absolute_path))
        if len(best.absolute_path) > len(error.absolute_path):
            return _error_key(best)
        description = error.schema.get("description", "").strip()
        # A branch whose type fits failed on a constraint of the value itself (an empty or repeated
        # list): its message ("[] should be non-empty") says more than "is not valid".
        fitting = [e for e in error.context if e.validator != "type"]
        if fitting:
            return key, f"{fitting[0].message} ({description})" if description else fitting[0].message
        return key, f"{error.instance!r} is not valid: {description}".strip()
    return key, error.message


def validate_config(config, schema=None):
    """Validate ``config`` against the schema and fill its defaults (returns a new dict).

    The same rules as Snakemake's ``snakemake.utils.validate(config, schema, set_default=True)``,
    followed by :func:`resolve_config`'s checks.

    Raises
    ------
    ParameterError
        naming the offending key (e.g. ``grid.N[0]``) and what is accepted.
    """
    import jsonschema
    import yaml

    with open(schema or schema_path()) as fh:
        schema_doc = yaml.safe_load(fh)
    config = copy.deepcopy(config)

    base = jsonschema.Draft202012Validator
    validate_properties = base.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_node):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub:
                    instance.setdefault(name, copy.deepcopy(sub["default"]))
        yield from validate_properties(validator, properties, instance, schema_node)

    validator_class = jsonschema.validators.extend(base, {"properties": set_defaults})
    # Report the first error in key order (paths mix str and int: compare them as text).
    errors = sorted(validator_class(schema_doc).iter_errors(config), key=lambda e: [str(p) for p in e.path])
    if errors:
        name, message = _error_key(errors[0])
        raise ParameterError(name, message)
    return resolve_config(config)


def _expand_axis(name, spec, integer=False):
    """A grid axis as a 1-D numpy array from a list or a {start, stop, num, spacing} range."""
    if isinstance(spec, dict):
        start, stop, num = spec["start"], spec["stop"], int(spec["num"])
        if spec.get("spacing", "linear") == "log":
            if start <= 0 or stop <= 0:
                raise ParameterError(f"{name}.start", f"log spacing needs start, stop > 0, got {start}, {stop}")
            values = np.geomspace(start, stop, num)
        else:
            values = np.linspace(start, stop, num)
        if integer:
            values = np.rint(values).astype(np.int64)
            if len(np.unique(values)) != len(values):
                raise ParameterError(
                    f"{name}.num", f"the range rounds to repeated integers {values.tolist()}; lower num"
                )
        return values
    values = np.asarray(spec, dtype=np.int64 if integer else float)
    if len(np.unique(values)) != len(values):
        raise ParameterError(name, f"values must be distinct, got {list(spec)}")
    return values


def _check_increasing(name, values, low=0.0):
    if np.any(~np.isfinite(values)) or np.any(values <= low):
        raise ParameterError(name, f"values must be finite and > {low}, got {values.tolist()}")
    if np.any(np.diff(values) <= 0):
        raise ParameterError(name, f"must be strictly increasing, got {values.tolist()}")


def resolve_config(config):
    """Checks the schema cannot express; returns ``config`` (already default-filled) unchanged.

    - exactly one of ``grid.alpha`` and ``grid.P``;
    - integer axes whose ranges round to distinct values;
    - ``t`` and ``rho`` strictly increasing and positive;
    - P = floor(exp(alpha N) + 1/2) between 2 and MAX_P for every (N, alpha), and P grids too;
    - families other than hmm take one nonlinearity and one alpha_D (they have no manifold);
    - the ``cluster`` section (:func:`diffmem.pipeline.cluster.validate_cluster_spec`).

    Raises
    ------
    ParameterError
        naming the offending key.
    """
    grid = config["grid"]
    if (grid.get("alpha") is None) == (grid.get("P") is None):
        raise ParameterError("grid.alpha", "give exactly one of grid.alpha and grid.P (the other null)")
    ax = axes(config)
    _check_increasing("t", ax["t"])
    _check_increasing("rho", ax["rho"])
    if "alpha" in ax:
        with np.errstate(over="ignore"):
            p = np.floor(np.exp(np.outer(ax["N"], ax["alpha"])) + 0.5)
        bad = ~((p >= 2) & (p <= MAX_P))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ParameterError(
                "grid.alpha",
                f"P = floor(exp(alpha N) + 1/2) must lie in [2, {MAX_P:.0e}]; alpha = {ax['alpha'][j]} at "
                f"N = {ax['N'][i]} gives {p[i, j]:.3g}",
            )
    if "N" in ax and np.any(ax["N"] < 2):
        raise ParameterError("grid.N", f"values must be >= 2, got {ax['N'].tolist()}")
    if "P" in ax and np.any((ax["P"] < 2) | (ax["P"] > MAX_P)):
        raise ParameterError("grid.P", f"values must lie in [2, {MAX_P:.0e}], got {ax['P'].tolist()}")
    if np.any(ax["seed"] < 0):
        raise ParameterError("grid.seed", f"values must be >= 0, got {ax['seed'].tolist()}")
    if np.any((ax["alpha_D"] <= 0) | (ax["alpha_D"] > 1)):
        raise ParameterError("grid.alpha_D", f"values must lie in (0, 1], got {ax['alpha_D'].tolist()}")
    if config["family"] != "hmm":
        for name in ("nonlinearity", "alpha_D"):
            if len(ax[name]) != 1:
                raise ParameterError(
                    f"grid.{name}", f"family {config['family']!r} has no manifold: give one value"
                )
    from diffmem.pipeline.cluster import validate_cluster_spec

    validate_cluster_spec(config.get("cluster") or {})
    return config


def science_config(config):
    """The part of a config that determines the numbers: grid axes (expanded) and SCIENCE_KEYS."""
    ax = axes(config)
    out = {key: config[key] for key in SCIENCE_KEYS if key in config}
    out["t"] = ax["t"].tolist()
    out["rho"] = ax["rho"].tolist()
    out["grid"] = {dim: ax[dim].tolist() for dim in cell_dims(config)}
    return out


def config_hash(config):
    """sha256 (hex) of the canonical JSON of :func:`science_config`."""
    text = json.dumps(science_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# grid, cells and blocks


def cell_dims(config):
    """Cell dimension names in storage order: the grid is given in alpha or in P."""
    x = "alpha" if config["grid"].get("alpha") is not None else "P"
    return ("nonlinearity", "alpha_D", "N", x, "seed")


def axes(config):
    """Every axis of the sweep as numpy arrays: the cell dims plus ``t`` and ``rho``."""
    from diffmem.engine.variables import DEFAULT_RHO

    grid = config["grid"]
    out = {"nonlinearity": np.asarray(list(grid["nonlinearity"]), dtype=object)}
    out["alpha_D"] = _expand_axis("grid.alpha_D", grid["alpha_D"])
    out["N"] = _expand_axis("grid.N", grid["N"], integer=True)
    if grid.get("alpha") is not None:
        out["alpha"] = _expand_axis("grid.alpha", grid["alpha"])
    if grid.get("P") is not None:
        out["P"] = _expand_axis("grid.P", grid["P"], integer=True)
    out["seed"] = _expand_axis("grid.seed", grid["seed"], integer=True)
    out["t"] = _expand_axis("t", config["t"])
    out["rho"] = _expand_axis("rho", DEFAULT_RHO if config.get("rho") is None else config["rho"])
    return out


def latent_dim(alpha_D, N):
    """D = floor(alpha_D N + 1/2), at least 1 (THEORY.md 1)."""
    return max(1, int(math.floor(alpha_D * N + 0.5)))


def n_points(alpha, N):
    """P = floor(exp(alpha N) + 1/2) (THEORY.md 1)."""
    return int(math.floor(math.exp(alpha * N) + 0.5))


def grid_shape(config):
    """Shape of the cell grid, in :func:`cell_dims` order."""
    ax = axes(config)
    return tuple(len(ax[d]) for d in cell_dims(config))


def n_cells(config):
    return int(np.prod(grid_shape(config)))


def cell_index(config, flat):
    """Grid index tuple of flat cell number ``flat`` (C order)."""
    return tuple(int(i) for i in np.unravel_index(int(flat), grid_shape(config)))


def cell_coords(config, flat):
    """Coordinates of a cell as plain Python values: the cell dims plus derived P/alpha and D."""
    ax = axes(config)
    dims = cell_dims(config)
    idx = cell_index(config, flat)
    out = {}
    for dim, i in zip(dims, idx):
        value = ax[dim][i]
        out[dim] = str(value) if dim == "nonlinearity" else (int(value) if dim in INTEGER_AXES else float(value))
    if "alpha" in out:
        out["P"] = n_points(out["alpha"], out["N"])
    out["D"] = latent_dim(out["alpha_D"], out["N"])
    return out


def block_names(config):
    """Names of the blocks ``b0000, b0001, ...``: ``block_size`` consecutive cells each."""
    count = -(-n_cells(config) // int(config["block_size"]))
    return [f"b{k:04d}" for k in range(count)]


def _block_number(config, block):
    names = block_names(config)
    if block not in names:
        raise ParameterError("block", f"unknown block {block!r}; this sweep has {names[0]} .. {names[-1]}")
    return names.index(block)


def block_cells(config, block):
    """Flat cell numbers of ``block`` (a name like ``b0003`` or its number)."""
    k = block if isinstance(block, int) else _block_number(config, block)
    size = int(config["block_size"])
    return list(range(k * size, min((k + 1) * size, n_cells(config))))


def cell_kwargs(config, flat):
    """Keyword arguments of :func:`diffmem.engine.cell.run_cell` for cell ``flat``.

    P is always passed (computed here when the grid is in alpha), so the engine and the store agree
    on it by construction; the cell's ``seed`` coordinate is the simulation seed.
    """
    ax = axes(config)
    coords = cell_coords(config, flat)
    return {
        "family": config["family"],
        "nonlinearity": coords["nonlinearity"],
        "normalize": bool(config["normalize"]),
        "N": coords["N"],
        "P": coords["P"],
        "alpha_D": coords["alpha_D"],
        "m_tilde": float(config["m_tilde"]),
        "sigma": float(config["sigma"]),
        "t": ax["t"].tolist(),
        "samples": int(config["samples"]),
        "seed": coords["seed"],
        "mode": config["mode"],
        "steps": int(config["steps"]),
        "rho": ax["rho"].tolist(),
        "basin_samples": int(config["basin_samples"]),
        "test_samples": int(config["test_samples"]),
        "backend": config["backend"],
        "dtype": config["dtype"],
        "chunk_size": int(config["chunk_size"]),
        "progress": False,
    }


def describe_cell(coords):
    """One-line description of a cell for messages: 'nonlinearity=linear alpha_D=0.25 N=32 ...'."""
    return " ".join(f"{k}={v}" for k, v in coords.items())


# ---------------------------------------------------------------------------------------------
# running cells


def _injection_matches(entry, flat, coords):
    if isinstance(entry, dict):
        return all(
            coords.get(k) == v or (isinstance(v, float) and np.isclose(coords.get(k, np.nan), v))
            for k, v in entry.items()
        )
    return int(entry) == int(flat)


def maybe_inject_failure(inject, flat, coords):
    """Raise the test-only injected failure for this attempt of a listed cell (module docstring)."""
    if not inject or not any(_injection_matches(e, flat, coords) for e in inject.get("cells", [])):
        return
    times = int(inject.get("times", 1))
    state = Path(inject["state_dir"])
    state.mkdir(parents=True, exist_ok=True)
    counter = state / f"cell-{int(flat)}.attempts"
    # One byte appended per attempt: O_APPEND makes the count safe across worker processes.
    with open(counter, "ab") as fh:
        fh.write(b".")
    attempt = counter.stat().st_size
    if times < 0 or attempt <= times:
        raise RuntimeError(f"injected failure (attempt {attempt}) of cell {describe_cell(coords)}")


# Key of the result a cell task returns instead of raising when the failure is deterministic.
PERMANENT_FAILURE = "diffmem_permanent_failure"


def compute_cell(kwargs, flat, coords, inject=None):
    """The dask task of one cell: run the engine and return its result dict (runs on a worker).

    A :class:`ParameterError` is returned, not raised, as ``{PERMANENT_FAILURE: {...}}``: the same
    parameters fail the same way on every attempt, so dask must not retry it (dask retries every
    exception), and the block stops at once naming the cell. Any other exception is raised and
    retried (a lost worker, memory pressure, an injected failure).
    """
    maybe_inject_failure(inject, flat, coords)
    from diffmem.engine.cell import run_cell

    try:
        return run_cell(**kwargs)
    except ParameterError as err:
        # Plain strings: they pickle back to the client whatever the exception's constructor.
        return {PERMANENT_FAILURE: {"type": type(err).__name__, "name": err.name, "message": str(err)}}


def _read_injection():
    text = os.environ.get(INJECT_ENV)
    if not text:
        return None
    try:
        inject = json.loads(text)
        inject["state_dir"]  # noqa: B018 - required key
    except (ValueError, KeyError, TypeError):
        raise ParameterError(
            INJECT_ENV, 'must be JSON {"cells": [...], "times": n, "state_dir": "path"}'
        ) from None
    return inject


def run_block(store_path, config, block, *, client, progress=None, log=sys.stderr):
    """Run the cells of ``block`` that are not done on ``client`` and write each into the store.

    Cells are submitted as dask tasks (``retries=config['retries']``, the flat cell number in the
    task key so identical parameters are never deduplicated across cells), collected with
    ``as_completed`` and written as soon as each finishes: data first, then ``done``. A cell whose
    task fails after its retries stops the block: pending cells are cancelled, finished ones stay
    written, and :class:`CellError` names the cell and its parameters. A cell failing with a
    :class:`ParameterError` (deterministic) stops the block at its first attempt, without retries.

    Done cells of the block whose ``done`` flag or data/provenance chunk no longer decodes are
    reported on ``log`` (one line per cell, naming the variable) and recomputed.

    Returns
    -------
    dict
        ``{"computed": n, "skipped": n_already_done, "wall_time": s}``.
    """
    from distributed import as_completed
    from tqdm import tqdm

    from diffmem.pipeline.store import SweepStore

    start = time.perf_counter()
    store = SweepStore.open(store_path, config)
    flats = block_cells(config, block)
    done = store.done_flat(report=flats, log=log)
    # A done flag says the data were written, not that they are still readable: check this block's
    # done cells (their own chunks only) and redo a damaged one; its full-chunk writes replace the
    # damage.
    for flat, name in store.unreadable_cells([f for f in flats if done[f]]).items():
        print(
            f"store: cell {flat} ({describe_cell(cell_coords(config, flat))}): chunk of {name} "
            "unreadable; it will be recomputed",
            file=log,
            flush=True,
        )
        done[flat] = False
    todo = [f for f in flats if not done[f]]
    inject = _read_injection()
    total_done = int(done.sum())
    print(
        f"block {block}: {len(flats) - len(todo)}/{len(flats)} cells already done; "
        f"sweep {total_done}/{done.size} done",
        file=log,
        flush=True,
    )
    computed = 0
    if todo:
        token = config_hash(config)[:12]
        futures = {}
        for flat in todo:
            coords = cell_coords(config, flat)
            future = client.submit(
                compute_cell,
                cell_kwargs(config, flat),
                flat,
                coords,
                inject,
                key=f"cell-{token}-{flat}",
                retries=int(config["retries"]),
                pure=False,
            )
            futures[future] = flat
        show = config.get("progress", True) if progress is None else progress
        bar = tqdm(
            total=len(flats), initial=len(flats) - len(todo), desc=f"block {block}", unit="cell",
            file=log, disable=not show, dynamic_ncols=True, mininterval=0.5,
        )
        try:
            for future in as_completed(list(futures)):
                flat = futures[future]
                if future.status != "finished":
                    error = future.exception()
                    coords = cell_coords(config, flat)
                    client.cancel(list(futures))
                    raise CellError(
                        f"cell {flat} failed after {config['retries']} retries: "
                        f"{describe_cell(coords)} ({type(error).__name__}: {error}); "
                        f"finished cells are kept, rerun to resume"
                    )
                result = future.result()
                if PERMANENT_FAILURE in result:
                    failure = result[PERMANENT_FAILURE]
                    client.cancel(list(futures))
                    raise CellError(
                        f"cell {flat} failed (not retried: the same parameters fail every time): "
                        f"{describe_cell(cell_coords(config, flat))} ({failure['type']}: "
                        f"{failure['message']}); finished cells are kept"
                    )
                store.write_cell(flat, result)
                computed += 1
                bar.update(1)
                future.release()
        finally:
            bar.close()
    return {
        "computed": computed,
        "skipped": len(flats) - len(todo),
        "wall_time": time.perf_counter() - start,
    }
