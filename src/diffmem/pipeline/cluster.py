"""Dask clusters for the sweep: in-process local, an existing scheduler, or SLURM jobs.

:func:`make_cluster` is the one entry point. It takes the ``cluster`` section of a sweep config
(``kind``: local, address or slurm; ``n_workers``, ``threads_per_worker``, ``address``, ``dashboard``,
and the ``slurm`` sub-section of dask-jobqueue settings; every key, its meaning and its default are in
the config schema, :mod:`diffmem.pipeline.schema`, the only place defaults are written) and yields a
connected :class:`distributed.Client`. Settings resolve in the dask-jobqueue order: keyword argument,
then the spec, then a computed fallback; ``None`` means "not given".

:func:`validate_cluster_spec` checks the section with the schema itself (jsonschema, through
:func:`diffmem.pipeline.schema.validate`: types, minimums, enums, unknown keys, defaults), so its
messages are the config's. It adds only what the schema cannot say:

- ``address`` is required when ``kind`` is ``address`` (a rule across two keys; the message shows a
  working value);
- strings are not blank (``address``, a ``dashboard`` address, the ``slurm`` names and paths): a
  blank one would reach dask or sbatch as an empty argument;
- ``slurm.memory`` parses as a positive size (dask's ``parse_bytes``) and ``slurm.walltime`` as a
  SLURM time limit of at least 3 minutes (:func:`parse_walltime`): formats, not types;
- ``slurm.min_jobs <= slurm.max_jobs``, ``slurm.cores`` a multiple of ``threads_per_worker``, and a
  ``lifetime_margin`` that leaves workers a lifetime of a minute at least, against the walltime the
  jobs will get, the config's or the site's dask-jobqueue one (values of two keys, or of the dask
  configuration).

Only what the sweep config sets is passed on: a ``slurm`` key left null (or an empty list) is not
given to ``SLURMCluster`` at all, so the site's dask-jobqueue configuration (``jobqueue.slurm.*`` in
``~/.config/dask/jobqueue.yaml`` or ``DASK_JOBQUEUE__SLURM__*`` variables) applies, and then
dask-jobqueue's own defaults. ``cores`` and ``memory`` must come from one of them. ``dashboard``
(true, or an address like ":8787") starts the dask dashboard and prints its link; it needs bokeh.

A block whose cluster would be one local worker runs its cells in the block's own process instead
(:func:`runs_in_process`): starting a scheduler and a worker process costs seconds, more than the cells
of a small block.

Workers of the ``slurm`` kind are started with ``--lifetime`` shorter than the walltime (and a
``--lifetime-stagger`` so that they do not all leave at once): a worker retires gracefully, handing its
finished results to the scheduler, before SLURM would kill it, and ``adapt`` submits a fresh job when
work remains. Work still lost to a killed job is recomputed by the scheduler (tasks are idempotent and
seeded per cell).
"""

import contextlib
import copy
import logging
import os
import re

from diffmem.errors import ParameterError
from diffmem.pipeline.schema import schema_defaults, section_schema, validate

__all__ = [
    "make_cluster",
    "runs_in_process",
    "dashboard_address",
    "slurm_cluster_kwargs",
    "validate_cluster_spec",
    "available_cores",
    "parse_walltime",
    "worker_lifetime",
    "KINDS",
    "DEFAULT_SPEC",
    "DEFAULT_SLURM",
]

KINDS = ("local", "address", "slurm")

# Defaults of the top-level keys and of the `slurm` sub-section, from the config schema; None means
# "computed at run time" (n_workers) or "not given".
DEFAULT_SPEC = schema_defaults("cluster")
DEFAULT_SLURM = schema_defaults("cluster", "slurm")
# The schema of the section alone (its keys named cluster.<key> in messages, as in the whole config).
_SCHEMA = section_schema("cluster")

# Workers retire this fraction of the walltime before SLURM's limit, but never less than
# MIN_MARGIN_S before it: a worker needs time to hand its results over and close cleanly.
MARGIN_FRACTION = 0.10
MIN_MARGIN_S = 60
# Shortest walltime we accept: the margin plus a worker that lives at least a minute.
MIN_WALLTIME_S = 3 * 60

# Seconds to wait for the first worker of a local cluster / for an existing scheduler.
CONNECT_TIMEOUT_S = 60


def available_cores():
    """CPUs this process may use (``dask.system.cpu_count``), capped by ``SLURM_CPUS_PER_TASK`` when set.

    dask counts the CPUs of the affinity mask and of a cgroup CPU quota (a container's or a SLURM
    job's cgroup). Inside a SLURM job without a cgroup/affinity task plugin both are the whole node,
    so the job's allocation (``SLURM_CPUS_PER_TASK``) is the better bound: that cap is kept here. At
    least 1.
    """
    from dask.system import cpu_count

    cores = cpu_count()
    slurm_cpus = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if slurm_cpus.isdigit() and int(slurm_cpus) > 0:
        cores = min(cores, int(slurm_cpus))
    return max(1, cores)


_WALLTIME_RE = re.compile(r"^(?:(?P<days>\d+)-)?(?P<rest>\d+(?::\d+){0,2})$")


def parse_walltime(text, name="cluster.slurm.walltime"):
    """Seconds in a SLURM time limit.

    Accepts SLURM's formats "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM" and "D-HH:MM:SS".

    Raises
    ------
    ParameterError
        naming ``name`` when the text is not one of these formats.
    """
    match = _WALLTIME_RE.match(str(text).strip()) if isinstance(text, str) else None
    if match is None:
        raise ParameterError(name, f"must be a SLURM time limit like '01:30:00' or '1-12:00:00', got {text!r}")
    parts = [int(p) for p in match["rest"].split(":")]
    if match["days"] is not None:
        # With days, the fields are hours[:minutes[:seconds]].
        hours, minutes, seconds = (parts + [0, 0])[:3]
        return int(match["days"]) * 86400 + hours * 3600 + minutes * 60 + seconds
    if len(parts) == 1:  # minutes
        return parts[0] * 60
    if len(parts) == 2:  # minutes:seconds
        return parts[0] * 60 + parts[1]
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def worker_lifetime(walltime_s, margin_s=None):
    """(lifetime, stagger) in seconds for workers of a job limited to ``walltime_s``.

    A worker lives ``lifetime +- stagger``; the latest it retires, ``lifetime + stagger``, is
    ``margin_s`` before the walltime. ``margin_s=None`` takes 10 % of the walltime, at least 60 s.
    The stagger is 5 % of the walltime, at most 5 minutes, so that workers started together do not
    all retire at the same moment.
    """
    if margin_s is None:
        margin_s = max(MIN_MARGIN_S, MARGIN_FRACTION * walltime_s)
    stagger = min(300, 0.05 * walltime_s)
    lifetime = walltime_s - margin_s - stagger
    return int(lifetime), int(stagger)


def _check_not_blank(name, value):
    if isinstance(value, str) and not value.strip():
        raise ParameterError(name, f"must be a non-empty string, got {value!r}")


def _check_memory(name, memory):
    try:
        from dask.utils import parse_bytes

        if parse_bytes(memory) <= 0:
            raise ValueError
    except (ValueError, TypeError):
        raise ParameterError(name, f"must be a positive size like '4 GiB' or '500MB', got {memory!r}") from None


def _check_walltime(name, walltime):
    walltime_s = parse_walltime(walltime, name)
    if walltime_s < MIN_WALLTIME_S:
        raise ParameterError(
            name,
            f"must be at least {MIN_WALLTIME_S // 60} minutes (workers retire before it), got {walltime!r}",
        )
    return walltime_s


def _effective_walltime(slurm):
    """The walltime worker jobs get: the sweep config's, else the dask-jobqueue configuration's."""
    if slurm["walltime"] is not None:
        return slurm["walltime"]
    walltime = dask_config_value("jobqueue.slurm.walltime")
    if walltime is None:
        raise ParameterError(
            "cluster.slurm.walltime",
            "is set neither in the sweep config nor in the dask-jobqueue configuration (jobqueue.slurm.walltime)",
        )
    _check_walltime("jobqueue.slurm.walltime (dask configuration)", walltime)
    return walltime


def _check_slurm(slurm):
    """The checks of the (schema-valid, default-filled) ``slurm`` section the schema cannot express."""
    prefix = "cluster.slurm"
    for key in ("queue", "account", "log_directory", "local_directory", "interface"):
        _check_not_blank(f"{prefix}.{key}", slurm[key])
    if slurm["min_jobs"] > slurm["max_jobs"]:
        raise ParameterError(
            f"{prefix}.min_jobs", f"must be <= cluster.slurm.max_jobs = {slurm['max_jobs']}, got {slurm['min_jobs']}"
        )
    if slurm["memory"] is not None:
        _check_memory(f"{prefix}.memory", slurm["memory"])
    if slurm["walltime"] is not None:
        _check_walltime(f"{prefix}.walltime", slurm["walltime"])
    margin = slurm["lifetime_margin"]
    if margin is not None:
        walltime_s = parse_walltime(_effective_walltime(slurm))
        lifetime, _ = worker_lifetime(walltime_s, margin)
        if lifetime < 60:
            raise ParameterError(
                f"{prefix}.lifetime_margin",
                f"must lie in [0, walltime - stagger - 60 s] = [0, "
                f"{walltime_s - worker_lifetime(walltime_s, 0)[1] - 60}], got {margin!r}",
            )


def validate_cluster_spec(spec=None, **overrides):
    """The cluster spec with defaults filled in, checked; keywords (not None) override the spec.

    The schema's ``cluster`` section checks types, ranges and keys and fills the defaults; the few
    rules it cannot express are listed in the module docstring.

    Parameters
    ----------
    spec : dict or None
        The ``cluster`` section of a sweep config (see the module docstring); None = all defaults.
    **overrides
        Top-level keys (``kind``, ``n_workers``, ``threads_per_worker``, ``address``, ``slurm``);
        a value of None means "not given".

    Returns
    -------
    dict
        Every top-level key, a new dict; ``slurm`` is a complete, checked dict (checked even when
        ``kind`` is not slurm, so that a typo is not discovered only on the cluster). ``n_workers``
        stays None when not given (resolved when the cluster starts).

    Raises
    ------
    ParameterError
        naming ``cluster.<key>`` for an unknown key, a wrong type or a value out of range.
    """
    if spec is None:
        spec = {}
    # A mapping first: top-level None values ("not given") are dropped and the keywords merged in
    # before the schema sees the section.
    if not isinstance(spec, dict):
        raise ParameterError("cluster", f"must be a mapping, got {type(spec).__name__}")
    out = {k: v for k, v in spec.items() if v is not None}
    out.update({k: v for k, v in overrides.items() if v is not None})
    out = copy.deepcopy(out)
    validate({"cluster": out}, _SCHEMA)
    if out["kind"] == "address" and out["address"] is None:
        raise ParameterError("cluster.address", "is required when cluster.kind is 'address', e.g. 'tcp://host:8786'")
    _check_not_blank("cluster.address", out["address"])
    _check_not_blank("cluster.dashboard", out["dashboard"])
    _check_slurm(out["slurm"])
    cores = out["slurm"]["cores"]
    if out["kind"] == "slurm" and cores is not None and cores % out["threads_per_worker"]:
        raise ParameterError(
            "cluster.slurm.cores",
            f"must be a multiple of cluster.threads_per_worker = {out['threads_per_worker']}, got {cores}",
        )
    return out


def _quiet_logs():
    # The scheduler and nanny log every worker start/stop at INFO; a sweep's progress bar is the
    # user's view, so only warnings and errors get through.
    return logging.ERROR


def dashboard_address(spec):
    """Address the dask dashboard of ``spec`` binds to, or None when it is off (the default).

    ``dashboard: true`` takes any free port (":0"): several blocks on one machine each get their own,
    and the link is printed when the cluster starts.
    """
    dashboard = spec.get("dashboard", False)
    if dashboard is True:
        return ":0"
    return dashboard or None


def runs_in_process(spec):
    """Whether a block with this cluster spec runs its cells in its own process, without dask.

    True for a local cluster of one worker with one thread (``n_workers`` resolved as in
    :func:`make_cluster`) and no dashboard: a scheduler and a worker process would only add their
    start-up to the block.
    """
    resolved = validate_cluster_spec(spec)
    if resolved["kind"] != "local" or resolved["dashboard"]:
        return False
    n_workers = resolved["n_workers"] if resolved["n_workers"] is not None else available_cores()
    return n_workers == 1 and resolved["threads_per_worker"] == 1


def _require_bokeh():
    import importlib.util

    if importlib.util.find_spec("bokeh") is None:
        raise ParameterError(
            "cluster.dashboard", "the dask dashboard needs bokeh >= 3.1: pip install 'diffmem[dashboard]'"
        )


def _announce_dashboard(client, spec, log):
    if dashboard_address(spec) is not None:
        print(f"dask dashboard: {client.dashboard_link}", file=log, flush=True)


@contextlib.contextmanager
def _local_client(spec):
    from distributed import Client, LocalCluster

    n_workers = spec["n_workers"] if spec["n_workers"] is not None else available_cores()
    dashboard = dashboard_address(spec)
    if dashboard is not None:
        _require_bokeh()
    with LocalCluster(
        n_workers=n_workers,
        threads_per_worker=spec["threads_per_worker"],
        processes=True,
        dashboard_address=dashboard,
        # Without a dashboard the scheduler still serves HTTP (health, metrics), by default on port
        # 8787: concurrent blocks on one machine warned "Port 8787 is already in use". Any free port.
        scheduler_kwargs={} if dashboard is not None else {"dashboard_address": ":0"},
        silence_logs=_quiet_logs(),
    ) as cluster:
        with Client(cluster, timeout=CONNECT_TIMEOUT_S) as client:
            yield client


@contextlib.contextmanager
def _address_client(spec):
    from distributed import Client

    try:
        client = Client(spec["address"], timeout=CONNECT_TIMEOUT_S)
    except OSError as err:  # TimeoutError is an OSError
        raise ParameterError("cluster.address", f"no dask scheduler answered at {spec['address']!r}: {err}") from err
    # The scheduler belongs to someone else: close our connection only, never the cluster.
    with client:
        yield client


# dask-jobqueue's default job name; a site configuration that sets another one is kept.
_JOBQUEUE_DEFAULT_NAME = "dask-worker"


def slurm_cluster_kwargs(spec):
    """Keyword arguments of ``dask_jobqueue.SLURMCluster`` for a validated spec (pure, testable).

    Only the keys the sweep config sets are passed (the module docstring); the worker lifetime is
    always added, from the walltime the job will get (the config's, else the dask-jobqueue
    configuration's), after any ``worker-extra-args`` of that configuration.
    """
    slurm = spec["slurm"]
    walltime_s = parse_walltime(_effective_walltime(slurm))
    lifetime, stagger = worker_lifetime(walltime_s, slurm["lifetime_margin"])
    site_extra_args = list(dask_config_value("jobqueue.slurm.worker-extra-args") or [])
    kwargs = {
        "worker_extra_args": site_extra_args + [f"--lifetime={lifetime}s", f"--lifetime-stagger={stagger}s"],
        "silence_logs": "error",
    }
    if slurm["cores"] is not None:
        kwargs["cores"] = slurm["cores"]
        kwargs["processes"] = slurm["cores"] // spec["threads_per_worker"]
    for key in ("memory", "walltime", "queue", "account", "log_directory", "local_directory", "interface"):
        if slurm[key] is not None:
            kwargs[key] = slurm[key]
    for key in ("job_extra_directives", "job_script_prologue"):
        if slurm[key]:
            kwargs[key] = slurm[key]
    dashboard = dashboard_address(spec)
    if dashboard is not None:
        kwargs["scheduler_options"] = {"dashboard_address": dashboard}
    elif not dask_config_value("jobqueue.slurm.scheduler-options"):
        kwargs["scheduler_options"] = {"dashboard_address": None}
    if dask_config_value("jobqueue.slurm.name") in (None, _JOBQUEUE_DEFAULT_NAME):
        kwargs["job_name"] = "diffmem-worker"
    return kwargs


@contextlib.contextmanager
def _slurm_client(spec):
    from distributed import Client

    try:
        from dask_jobqueue import SLURMCluster
    except ImportError as err:
        raise ParameterError("cluster.kind", "'slurm' needs dask-jobqueue: pip install 'diffmem[workflow]'") from err
    if dashboard_address(spec) is not None:
        _require_bokeh()
    kwargs = slurm_cluster_kwargs(spec)
    try:
        cluster = SLURMCluster(**kwargs)
    except ValueError as err:
        # dask-jobqueue's "You must specify how much cores and memory per job you want to use".
        missing = [
            key
            for key in ("cores", "memory")
            if key not in kwargs and dask_config_value(f"jobqueue.slurm.{key}") is None
        ]
        if not missing:
            raise
        raise ParameterError(
            f"cluster.slurm.{missing[0]}",
            "is set neither in the sweep config nor in the dask-jobqueue configuration "
            f"(jobqueue.slurm.{missing[0]} in ~/.config/dask/jobqueue.yaml): {err}",
        ) from None
    with cluster:
        cluster.adapt(minimum_jobs=spec["slurm"]["min_jobs"], maximum_jobs=spec["slurm"]["max_jobs"])
        with Client(cluster) as client:
            yield client


def dask_config_value(key):
    """A value of the dask configuration (None when unset), dask-jobqueue's defaults included."""
    import dask.config

    try:
        import dask_jobqueue  # noqa: F401 - importing it loads its defaults into dask.config
    except ImportError:
        pass
    return dask.config.get(key, None)


@contextlib.contextmanager
def make_cluster(
    spec=None, *, kind=None, n_workers=None, threads_per_worker=None, address=None, slurm=None, dashboard=None, log=None
):
    """A dask ``Client`` connected to the cluster described by ``spec``; closed on exit.

    Parameters
    ----------
    spec : dict or None
        The ``cluster`` section of a sweep config (see the module docstring).
    kind, n_workers, threads_per_worker, address, slurm, dashboard
        Override the spec's keys when not None (keyword > spec > fallback).
    log : file or None
        Where the dashboard link is printed when the dashboard is on (default ``sys.stderr``).

    Yields
    ------
    distributed.Client
        ``local``: a ``LocalCluster`` of worker processes owned by this context (closed on exit);
        ``address``: a client of an existing scheduler (only the connection is closed);
        ``slurm``: a ``dask_jobqueue.SLURMCluster`` scaled by ``adapt`` between ``min_jobs`` and
        ``max_jobs`` worker jobs, all cancelled on exit.

    Raises
    ------
    ParameterError
        naming ``cluster.<key>`` for an invalid spec, before anything is started.

    Examples
    --------
    >>> with make_cluster({"kind": "local", "n_workers": 1}) as client:
    ...     client.submit(sum, [1, 2]).result()
    3
    """
    import sys

    resolved = validate_cluster_spec(
        spec,
        kind=kind,
        n_workers=n_workers,
        threads_per_worker=threads_per_worker,
        address=address,
        slurm=slurm,
        dashboard=dashboard,
    )
    factory = {"local": _local_client, "address": _address_client, "slurm": _slurm_client}
    with factory[resolved["kind"]](resolved) as client:
        _announce_dashboard(client, resolved, log or sys.stderr)
        yield client
