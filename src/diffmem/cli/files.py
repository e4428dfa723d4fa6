"""Files the commands read (sweep configs, zarr stores), opened so that a missing or malformed one is
one :class:`~diffmem.errors.ParameterError` naming the option and the path, never a traceback.
"""

from pathlib import Path

from diffmem.errors import ParameterError

__all__ = ["read_config_file", "open_dataset", "require_sweep_store", "SWEEP_STORE_NAME"]

# Name of the sweep store inside results/<sweep>/ (what `diffmem status results/<sweep>` hints at).
SWEEP_STORE_NAME = "sweep.zarr"


def _first_line(err):
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def read_config_file(path, option="--configfile"):
    """The mapping in a YAML (or JSON) sweep config file, not yet validated.

    Raises
    ------
    ParameterError
        naming ``option`` and the path when the file is missing, unreadable, not YAML or not a mapping.
    """
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ParameterError(option, f"{path}: no such file") from None
    except IsADirectoryError:
        raise ParameterError(option, f"{path} is a directory, not a config file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ParameterError(option, f"{path} cannot be read: {_first_line(err)}") from None
    try:
        config = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or _first_line(err)
        raise ParameterError(option, f"{path} is not valid YAML{where}: {problem}") from None
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise ParameterError(option, f"{path} must hold a mapping of config keys, got {type(config).__name__}")
    return config


def _missing(path, option, hint=""):
    return ParameterError(option, f"{path} does not exist{hint}")


def open_dataset(path, option, *, hint=""):
    """``xarray.open_zarr(path)`` (metadata only, lazy), or one error naming ``option`` and the path."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise _missing(path, option, hint)
    try:
        return xr.open_zarr(path, consolidated=False)
    except Exception as err:  # noqa: BLE001 - any failure to decode the store is "malformed"
        raise ParameterError(
            option, f"{path} is not a readable zarr store ({type(err).__name__}: {_first_line(err)})"
        ) from None


def require_sweep_store(path, option="store"):
    """Check that ``path`` is a diffmem sweep store; the error hints at ``path/sweep.zarr``.

    Raises
    ------
    ParameterError
        naming ``option``: the path is missing, or is not a sweep store (with the store inside it
        suggested when ``path`` is a sweep's results directory).
    """
    from diffmem.pipeline.store import is_sweep_store

    path = Path(path)
    inner = path / SWEEP_STORE_NAME
    hint = f"; did you mean {inner}?" if is_sweep_store(inner) else ""
    if not path.exists():
        raise _missing(path, option, hint or "; run the sweep first (snakemake, or `diffmem sweep init`)")
    try:
        ok = is_sweep_store(path)
    except Exception as err:  # noqa: BLE001 - a damaged zarr.json is a malformed store, not a crash
        raise ParameterError(option, f"{path} is not a readable zarr store ({_first_line(err)})") from None
    if not ok:
        raise ParameterError(option, f"{path} is not a diffmem sweep store{hint}")
    return path
