"""The grid of a sweep: axes, cells, blocks and the cell spec of every cell, built once from a config.

A sweep is a grid of *cells* over the cell dimensions ``nonlinearity x (alpha_D | D) x N x
(alpha | P) x seed`` (C order, in that order); every cell is a :class:`diffmem.spec.CellSpec` on the
same t grid. The grid is split into *blocks*, one Snakemake job each: ``block_size`` consecutive
cells, or (config ``blocks: n``) ``n`` blocks that deal the cells round-robin, cell k to block
k mod n. Neighbouring cells differ only in their seed (the last dimension) and cost nearly the same,
so dealt blocks cost the same to within a cell: with one block per core (``blocks: cores``, which the
workflow resolves to ``--cores``) the cores finish together and no job starts after the first.

Seeds: the simulation seed of a cell is its ``seed`` coordinate (the engine derives every stream
from it, :mod:`diffmem.seeding`), so a cell gives the same numbers in any sweep, in any block, on
any worker, and a resumed cell reproduces the bits of an uninterrupted run.

The *science* part of a config (the grid axes and :data:`SCIENCE_KEYS`) is what changes the
numbers; its hash (:func:`config_hash`) identifies a store, so a store cannot be resumed with
different physics.

Cell identity: :func:`cell_key` is a stable key of everything that determines a cell's numbers (its
:class:`~diffmem.spec.CellSpec` less the backend, the time and radius grids, statistics, sampling,
dtype, numerics settings, the exponential and :data:`diffmem.spec.PHYSICS_VERSION`). The store keeps
it per cell, so a finished cell is reused wherever its key matches: a grown grid
(:func:`grow_plan`) or another sweep's store (``diffmem sweep import``).
"""

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from diffmem.analysis.placement import check_placement
from diffmem.errors import ParameterError
from diffmem.spec import DEFAULT_EXPONENTIAL, DEFAULT_RHO, PHYSICS_VERSION, CellSpec

__all__ = [
    "Grid",
    "grid_axes",
    "expand_axis",
    "describe_cell",
    "block_members",
    "science_config",
    "config_hash",
    "SCIENCE_KEYS",
    "INTEGER_AXES",
    "IDENTITY_FIELDS",
    "cell_identity",
    "cell_key",
    "sweep_identity",
    "identity_difference",
    "grow_plan",
]

# Keys that change the numbers a cell produces: they define the config hash of a store, so a store
# cannot be resumed with different physics. Execution settings (cluster, retries, block_size,
# progress, backend) are left out on purpose: moving a sweep to a cluster or a GPU mid-way is allowed
# (the backend and device of each cell are recorded as provenance).
SCIENCE_KEYS = (
    "family",
    "mode",
    "normalize",
    "m_tilde",
    "sigma",
    "t",
    "rho",
    "samples",
    "test_samples",
    "basin_samples",
    "steps",
    "dtype",
    "chunk_size",
    "sampling",
    "exponential",
)

INTEGER_AXES = ("N", "P", "D", "seed")
# Keys of a validated config that every cell of the sweep shares (CellSpec fields of the same name).
SHARED_KEYS = (
    "family",
    "normalize",
    "m_tilde",
    "sigma",
    "samples",
    "mode",
    "steps",
    "basin_samples",
    "test_samples",
    "chunk_size",
    "backend",
    "dtype",
    "sampling",
    "exponential",
)


def block_members(n_cells, k, *, block_size, blocks=None):
    """Flat cell numbers of block ``k`` of ``n_cells``: dealt round-robin over ``blocks`` blocks when
    given (cell j in block j mod blocks), else ``block_size`` consecutive cells."""
    if blocks:
        return list(range(k, n_cells, blocks))
    return list(range(k * block_size, min((k + 1) * block_size, n_cells)))


def expand_axis(name, spec, integer=False):
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


def grid_axes(config):
    """Cell dimensions (storage order) and every axis of a validated config, without building cells.

    Returns
    -------
    (dims, axes) : tuple of str, dict of str -> numpy.ndarray
        ``dims`` is nonlinearity, alpha_D or D, N, alpha or P, seed; ``axes`` has every cell
        dimension plus ``t`` and ``rho``.
    """
    grid = config["grid"]
    latent = "D" if grid.get("D") is not None else "alpha_D"
    size = "alpha" if grid.get("alpha") is not None else "P"
    dims = ("nonlinearity", latent, "N", size, "seed")
    axes = {"nonlinearity": np.asarray(list(grid["nonlinearity"]), dtype=object)}
    for dim in dims[1:]:
        axes[dim] = expand_axis(f"grid.{dim}", grid[dim], integer=dim in INTEGER_AXES)
    axes["t"] = expand_axis("t", config["t"])
    axes["rho"] = expand_axis("rho", DEFAULT_RHO if config.get("rho") is None else config["rho"])
    return dims, axes


def science_config(config):
    """The part of a config that determines the numbers: grid axes (expanded) and SCIENCE_KEYS."""
    dims, axes = grid_axes(config)
    out = {key: config[key] for key in SCIENCE_KEYS if key in config}
    if config.get("placement"):  # a fixed grid's science config (and hash) is what it was before placements
        out["placement"] = dict(check_placement(config["placement"]))
    out["t"] = axes["t"].tolist()
    out["rho"] = axes["rho"].tolist()
    out["grid"] = {dim: axes[dim].tolist() for dim in dims}
    return out


def config_hash(config: Mapping[str, Any]) -> str:
    """sha256 (hex) of the canonical JSON of :func:`science_config`."""
    text = json.dumps(science_config(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


# CellSpec fields that enter a cell's identity: every field that changes its numbers. Left out: the
# backend (a cell's numbers do not depend on it: numpy and cupy runs are compared to a stated
# tolerance, and the backend of each cell is provenance) and the nominal alpha and alpha_D (the
# engine uses the realized P and D only, so a cell given by alpha and one given by P are the same cell).
IDENTITY_FIELDS = (
    "family",
    "nonlinearity",
    "normalize",
    "N",
    "P",
    "D",
    "seed",
    "m_tilde",
    "sigma",
    "t",
    "rho",
    "samples",
    "test_samples",
    "basin_samples",
    "mode",
    "sampling",
    "steps",
    "T",
    "chunk_size",
    "dtype",
)


def _jsonable(value):
    if isinstance(value, (tuple, list, np.ndarray)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def cell_identity(spec: CellSpec) -> dict[str, Any]:
    """What determines the numbers of the cell ``spec``: a JSON-serializable dict (:func:`cell_key`).

    ``physics_version`` is :data:`diffmem.spec.PHYSICS_VERSION`; ``exponential`` the spec's
    ``exponential`` field where it has one, else :data:`diffmem.spec.DEFAULT_EXPONENTIAL`.
    """
    out = {
        "physics_version": PHYSICS_VERSION,
        "exponential": str(getattr(spec, "exponential", DEFAULT_EXPONENTIAL)),
    }
    for name in IDENTITY_FIELDS:
        out[name] = _jsonable(getattr(spec, name))
    # A fixed grid's identity is what it was before placed grids existed (its cells keep their keys).
    for name in ("placement", "measure", "skip_tiles"):
        if getattr(spec, name, ()):
            out[name] = _jsonable(getattr(spec, name))
    return out


def cell_key(spec: CellSpec) -> str:
    """The identity key of a cell: ``"cell1-"`` + sha256 (hex) of the canonical JSON of :func:`cell_identity`.

    Equal keys mean equal numbers (bit for bit, on any backend-independent path): a done cell of
    one store may stand for the cell of the same key in any other.
    """
    text = json.dumps(cell_identity(spec), sort_keys=True, separators=(",", ":"))
    return "cell1-" + hashlib.sha256(text.encode()).hexdigest()


def sweep_identity(config):
    """What every cell of a sweep shares in its identity (:func:`cell_identity` less the cell's own
    coordinates): the science config without its grid axes, how the grid is given (``grid_dims``),
    the physics version and the exponential. Stored in the store's attributes to name what changed."""
    dims, _ = grid_axes(config)
    out = {key: value for key, value in science_config(config).items() if key != "grid"}
    out.update(
        physics_version=PHYSICS_VERSION,
        exponential=str(config.get("exponential", DEFAULT_EXPONENTIAL)),
        grid_dims=list(dims),
    )
    return out


def identity_difference(stored, new, prefix=""):
    """``"key (store: a, config: b)"`` for the first key whose value differs, or None."""
    if isinstance(stored, dict) and isinstance(new, dict):
        for key in sorted(set(stored) | set(new)):
            diff = identity_difference(stored.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
            if diff:
                return diff
        return None
    if stored != new:
        return f"{prefix} (store: {stored!r}, config: {new!r})"
    return None


def grow_plan(old_config: Mapping[str, Any], new_config: Mapping[str, Any]) -> np.ndarray:
    """Where every cell of the sweep ``old_config`` lies in the grid of ``new_config``, when it grows.

    A sweep may grow when its new grid holds every value of every axis of the old one (new values
    anywhere along any axis: seeds, N, alpha or P, alpha_D or D, nonlinearity) and nothing else of
    its cells' identity changes (:func:`sweep_identity`).

    Returns
    -------
    numpy.ndarray of int64
        ``new_flat[old_flat]``: the flat number in the new grid of each old cell.

    Raises
    ------
    ParameterError
        named by the first differing key (``t``, ``samples``, ``physics_version``, ...) or by the
        axis (``grid.seed``) that lost a value, with the store's and the config's values.
    """
    diff = identity_difference(sweep_identity(old_config), sweep_identity(new_config))
    if diff:
        raise ParameterError(diff.split(" ", 1)[0], f"{diff} changes the identity of every cell")
    dims, old_axes = grid_axes(old_config)
    _, new_axes = grid_axes(new_config)
    positions = []
    for dim in dims:
        new_values = [_plain(dim, v) for v in new_axes[dim]]
        index = {v: i for i, v in enumerate(new_values)}
        old_values = [_plain(dim, v) for v in old_axes[dim]]
        missing = [v for v in old_values if v not in index]
        if missing:
            raise ParameterError(
                f"grid.{dim}",
                f"grid.{dim} (store: {old_values!r}, config: {new_values!r}) drops {missing!r}: a sweep "
                "grows only to a grid that holds every value of the old one",
            )
        positions.append(np.asarray([index[v] for v in old_values], dtype=np.int64))
    new_shape = tuple(len(new_axes[d]) for d in dims)
    mesh = np.meshgrid(*positions, indexing="ij")
    return np.ravel_multi_index(tuple(m.ravel() for m in mesh), new_shape).astype(np.int64)


def describe_cell(coords: Mapping[str, Any]) -> str:
    """One-line description of a cell for messages: 'nonlinearity=linear alpha_D=0.25 N=32 ...'."""
    return " ".join(f"{k}={v}" for k, v in coords.items())


def _plain(dim, value):
    """A coordinate value as a plain Python str, int or float."""
    if dim == "nonlinearity":
        return str(value)
    return int(value) if dim in INTEGER_AXES else float(value)


class Grid:
    """Every cell of a validated sweep config.

    Parameters
    ----------
    config : dict
        A config validated by :func:`diffmem.pipeline.config.validate_config` (defaults filled).

    Attributes
    ----------
    config : dict
    dims : tuple of str
        Cell dimensions in storage order: nonlinearity, alpha_D or D, N, alpha or P, seed.
    axes : dict of str -> numpy.ndarray
        Every cell dimension, plus ``t`` and ``rho``.
    shape : tuple of int
    n_cells : int
    config_hash : str
        :func:`config_hash` of the config: the identity of the sweep's store.
    cells : tuple of CellSpec
        The spec of every cell, flat in C order.

    Raises
    ------
    ParameterError
        naming the config key (``grid.alpha``, ``samples``, ...) when a cell is invalid, with the cell.
    """

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.dims, self.axes = grid_axes(config)
        axes = self.axes
        self.shape = tuple(len(axes[d]) for d in self.dims)
        self.n_cells = int(np.prod(self.shape))
        self.block_size = int(config["block_size"])
        # Dealt blocks (an integer ``blocks``); "cores" left unresolved (outside the workflow) and
        # null mean consecutive blocks of block_size cells.
        blocks = config.get("blocks")
        self.dealt_blocks = min(int(blocks), self.n_cells) if isinstance(blocks, int) else None
        self.config_hash = config_hash(config)
        shared = {key: config[key] for key in SHARED_KEYS}
        shared.update(t=tuple(axes["t"].tolist()), rho=tuple(axes["rho"].tolist()))
        shared["placement"] = check_placement(config.get("placement"))
        self.cells = tuple(self._cell_spec(flat, shared) for flat in range(self.n_cells))
        self._keys: dict[int, str] = {}

    def _cell_spec(self, flat, shared):
        coords = self.coords(flat, derived=False)
        sizes = {"N": coords["N"], "seed": coords["seed"], "nonlinearity": coords["nonlinearity"]}
        sizes[self.dims[3]] = coords[self.dims[3]]
        # A grid in D gives the exact ratio D/N, which the size rule rounds back to D.
        sizes["alpha_D"] = coords["alpha_D"] if "alpha_D" in coords else coords["D"] / coords["N"]
        try:
            return CellSpec(**shared, **sizes)
        except ParameterError as err:
            key = f"grid.{err.name}" if err.name in ("nonlinearity", "N", "alpha", "P", "seed") else err.name
            if err.name == "alpha_D":
                key = f"grid.{self.dims[1]}"
            message = str(err).split(": ", 1)[1]
            raise ParameterError(key, f"{message} (cell {describe_cell(coords)})") from None

    # -- cells ----------------------------------------------------------------------------------
    def index(self, flat: int) -> tuple[int, ...]:
        """Grid index tuple of flat cell number ``flat`` (C order)."""
        return tuple(int(i) for i in np.unravel_index(int(flat), self.shape))

    def flat(self, index: Sequence[int]) -> int:
        """Flat cell number of a grid index tuple."""
        return int(np.ravel_multi_index(tuple(int(i) for i in index), self.shape))

    def cell(self, flat: int) -> CellSpec:
        """The :class:`CellSpec` of cell ``flat``."""
        return self.cells[int(flat)]

    def cell_key(self, flat: int) -> str:
        """The identity key (:func:`cell_key`) of cell ``flat``."""
        flat = int(flat)
        if flat not in self._keys:
            self._keys[flat] = cell_key(self.cells[flat])
        return self._keys[flat]

    def coords(self, flat: int, derived: bool = True) -> dict[str, Any]:
        """Coordinates of a cell as plain Python values: the cell dims, then (``derived``) P or alpha and D."""
        out = {dim: _plain(dim, self.axes[dim][i]) for dim, i in zip(self.dims, self.index(flat))}
        if derived:
            cell = self.cells[int(flat)]
            if "alpha" in out:
                out["P"] = cell.P
            if "alpha_D" in out:
                out["D"] = cell.D
        return out

    # -- blocks ---------------------------------------------------------------------------------
    def block_names(self) -> list[str]:
        """Names of the blocks ``b0000, b0001, ...`` (the module docstring says which cells each holds)."""
        count = self.dealt_blocks or -(-self.n_cells // self.block_size)
        return [f"b{k:04d}" for k in range(count)]

    @property
    def block_layout(self):
        """A name of how cells are split into blocks: ``size<n>`` (consecutive) or ``dealt<n>`` (round-robin).

        The workflow keeps block markers under it, so that a sweep resumed with another split (another
        ``--cores``) never takes a marker of a block of other cells for its own.
        """
        return f"dealt{self.dealt_blocks}" if self.dealt_blocks else f"size{self.block_size}"

    def block_cells(self, block: str) -> list[int]:
        """Flat cell numbers of ``block`` (a name like ``b0003`` or its number)."""
        if isinstance(block, int):
            k = block
        else:
            names = self.block_names()
            if block not in names:
                raise ParameterError("block", f"unknown block {block!r}; this sweep has {names[0]} .. {names[-1]}")
            k = names.index(block)
        return block_members(self.n_cells, k, block_size=self.block_size, blocks=self.dealt_blocks)

    # -- realized sizes -------------------------------------------------------------------------
    def size_coords(self):
        """The derived size coordinates of the store, read off the cell specs.

        Returns
        -------
        dict of name -> (dims, numpy.ndarray)
            ``P`` over (N, alpha) or ``alpha`` over (N, P), ``alpha_realized`` over (N, alpha | P),
            ``D`` over (alpha_D, N) or ``alpha_D`` over (D, N), and ``alpha_D_realized``.
        """
        latent, size = self.dims[1], self.dims[3]
        # Sizes depend on (latent, N, size) only: read them from the first nonlinearity and seed.
        first = np.zeros(len(self.dims), dtype=int)

        def table(dims, attribute):
            axes = [self.dims.index(d) for d in dims]
            out = np.empty(tuple(self.shape[a] for a in axes), dtype=object)
            for pos in np.ndindex(*out.shape):
                index = first.copy()
                index[axes] = pos
                out[pos] = getattr(self.cells[self.flat(index)], attribute)
            return out

        size_dims = ("N", size)
        p = table(size_dims, "P").astype(np.int64)
        n_by_size = self.axes["N"][:, None]
        out = {}
        if size == "alpha":
            out["P"] = (size_dims, p)
        else:
            out["alpha"] = (size_dims, np.log(p) / n_by_size)
        out["alpha_realized"] = (size_dims, np.log(p) / n_by_size)
        latent_dims = (latent, "N")
        d = table(latent_dims, "D").astype(np.int64)
        if latent == "alpha_D":
            out["D"] = (latent_dims, d)
        else:
            out["alpha_D"] = (latent_dims, d / self.axes["N"][None, :])
        out["alpha_D_realized"] = (latent_dims, d / self.axes["N"][None, :])
        return out
