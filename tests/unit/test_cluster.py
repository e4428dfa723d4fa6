"""Unit tests of diffmem.pipeline.cluster: spec validation, walltime arithmetic, and a real LocalCluster."""

import os

import pytest

from diffmem.errors import ParameterError
from diffmem.pipeline import cluster

# --- walltime parsing: SLURM's documented formats (sbatch(1), --time) --------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("30", 30 * 60),  # minutes
        ("30:15", 30 * 60 + 15),  # minutes:seconds
        ("01:02:03", 3600 + 2 * 60 + 3),  # hours:minutes:seconds
        ("2-0", 2 * 86400),  # days-hours
        ("1-02", 86400 + 2 * 3600),
        ("1-02:30", 86400 + 2 * 3600 + 30 * 60),  # days-hours:minutes
        ("1-02:30:05", 86400 + 2 * 3600 + 30 * 60 + 5),
    ],
)
def test_parse_walltime_formats(text, seconds):
    assert cluster.parse_walltime(text) == seconds


@pytest.mark.parametrize("bad", ["", "1h", "01:02:03:04", "-5", "1-", None, 60, "a:b"])
def test_parse_walltime_rejects(bad):
    with pytest.raises(ParameterError, match=r"cluster\.slurm\.walltime"):
        cluster.parse_walltime(bad)


@pytest.mark.parametrize("walltime_s", [180, 600, 3600, 86400, 7 * 86400])
def test_worker_lifetime_retires_before_walltime(walltime_s):
    lifetime, stagger = cluster.worker_lifetime(walltime_s)
    # The latest possible retirement must leave at least the minimum margin before SLURM's kill.
    assert lifetime > 0 and stagger >= 0
    assert lifetime + stagger <= walltime_s - cluster.MIN_MARGIN_S
    # and workers of one job batch must not all retire at the same instant (except tiny walltimes)
    assert stagger > 0


def test_worker_lifetime_explicit_margin():
    lifetime, stagger = cluster.worker_lifetime(3600, margin_s=600)
    assert lifetime + stagger == 3000


# --- spec validation ----------------------------------------------------------------------------------


def test_defaults_are_local():
    spec = cluster.validate_cluster_spec(None)
    assert spec["kind"] == "local" and spec["threads_per_worker"] == 1 and spec["n_workers"] is None


def test_keyword_overrides_spec():
    spec = cluster.validate_cluster_spec({"kind": "local", "n_workers": 2}, n_workers=1)
    assert spec["n_workers"] == 1
    # None means "not given": the spec's value stays
    spec = cluster.validate_cluster_spec({"kind": "local", "n_workers": 2}, n_workers=None)
    assert spec["n_workers"] == 2


@pytest.mark.parametrize(
    "spec, key",
    [
        ({"kind": "pbs"}, "cluster.kind"),
        ({"workers": 2}, "cluster.workers"),  # unknown key
        ({"n_workers": 0}, "cluster.n_workers"),
        ({"n_workers": 1.5}, "cluster.n_workers"),
        ({"n_workers": "2"}, "cluster.n_workers"),
        ({"n_workers": True}, "cluster.n_workers"),
        ({"threads_per_worker": 0}, "cluster.threads_per_worker"),
        ({"kind": "address"}, "cluster.address"),  # required for this kind
        ({"kind": "address", "address": ""}, "cluster.address"),
        ({"kind": "slurm", "slurm": {"cores": 0}}, "cluster.slurm.cores"),
        ({"kind": "slurm", "slurm": {"max_jobs": 0}}, "cluster.slurm.max_jobs"),
        ({"kind": "slurm", "slurm": {"min_jobs": 3, "max_jobs": 2}}, "cluster.slurm.min_jobs"),
        ({"kind": "slurm", "slurm": {"memory": "lots"}}, "cluster.slurm.memory"),
        ({"kind": "slurm", "slurm": {"memory": -1}}, "cluster.slurm.memory"),
        ({"kind": "slurm", "slurm": {"walltime": "1h"}}, "cluster.slurm.walltime"),
        ({"kind": "slurm", "slurm": {"walltime": "00:01:00"}}, "cluster.slurm.walltime"),
        ({"kind": "slurm", "slurm": {"walltime": "00:10:00", "lifetime_margin": 590}}, "cluster.slurm.lifetime_margin"),
        ({"kind": "slurm", "slurm": {"lifetime_margin": -1}}, "cluster.slurm.lifetime_margin"),
        ({"kind": "slurm", "slurm": {"partition": "x"}}, "cluster.slurm.partition"),  # unknown
        ({"kind": "slurm", "slurm": {"job_extra_directives": "--gres=gpu:1"}}, "cluster.slurm.job_extra_directives"),
        ({"kind": "slurm", "slurm": ["queue"]}, "cluster.slurm"),
        ({"kind": "slurm", "threads_per_worker": 2, "slurm": {"cores": 3}}, "cluster.slurm.cores"),
        # a typo in an unused slurm section is still reported
        ({"kind": "local", "slurm": {"qeue": "x"}}, "cluster.slurm.qeue"),
    ],
)
def test_invalid_specs_name_the_key(spec, key):
    with pytest.raises(ParameterError) as info:
        cluster.validate_cluster_spec(spec)
    assert info.value.name == key
    assert str(info.value).startswith(f"{key}:")


def test_not_a_mapping():
    with pytest.raises(ParameterError, match="^cluster: must be a mapping"):
        cluster.validate_cluster_spec(["local"])


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ParameterError, match="valid keys are .*n_workers"):
        cluster.validate_cluster_spec({"nworkers": 1})


def test_slurm_kwargs_give_workers_a_lifetime_below_walltime():
    spec = cluster.validate_cluster_spec(
        {
            "kind": "slurm",
            "threads_per_worker": 2,
            "slurm": {
                "cores": 4,
                "walltime": "02:00:00",
                "queue": "short",
                "account": "proj",
                "job_extra_directives": ["--gres=gpu:1"],
            },
        }
    )
    kwargs = cluster.slurm_cluster_kwargs(spec)
    assert kwargs["processes"] == 2 and kwargs["cores"] == 4  # 2 workers x 2 threads per job
    lifetime = int(kwargs["worker_extra_args"][0].removeprefix("--lifetime=").removesuffix("s"))
    stagger = int(kwargs["worker_extra_args"][1].removeprefix("--lifetime-stagger=").removesuffix("s"))
    assert lifetime + stagger <= 2 * 3600 - cluster.MIN_MARGIN_S
    assert kwargs["scheduler_options"]["dashboard_address"] is None


def test_slurm_job_script_has_requested_directives():
    """The real dask-jobqueue renders our settings into the sbatch script (no job is submitted)."""
    pytest.importorskip("dask_jobqueue")
    from dask_jobqueue import SLURMCluster

    spec = cluster.validate_cluster_spec(
        {
            "kind": "slurm",
            "slurm": {
                "walltime": "00:30:00",
                "queue": "short",
                "account": "proj",
                "cores": 1,
                "memory": "2 GiB",
                "job_extra_directives": ["--gres=gpu:1"],
            },
        }
    )
    with SLURMCluster(**cluster.slurm_cluster_kwargs(spec)) as slurm_cluster:
        script = slurm_cluster.job_script()
    assert "#SBATCH -p short" in script
    assert "#SBATCH -A proj" in script
    assert "#SBATCH -t 00:30:00" in script
    assert "#SBATCH --gres=gpu:1" in script
    assert "--lifetime=" in script and "--lifetime-stagger=" in script


def test_slurm_kwargs_pass_only_what_the_sweep_config_sets():
    import dask.config

    with dask.config.set({"jobqueue.slurm.walltime": "02:00:00"}):
        spec = cluster.validate_cluster_spec({"kind": "slurm", "slurm": {"queue": "short"}})
        kwargs = cluster.slurm_cluster_kwargs(spec)
    assert kwargs["queue"] == "short"
    for key in (
        "cores",
        "processes",
        "memory",
        "walltime",
        "account",
        "job_extra_directives",
        "job_script_prologue",
        "log_directory",
        "local_directory",
        "interface",
    ):
        assert key not in kwargs, key
    # the lifetime still follows the walltime the job will get: the site's 2 hours
    lifetime = int(kwargs["worker_extra_args"][0].removeprefix("--lifetime=").removesuffix("s"))
    stagger = int(kwargs["worker_extra_args"][1].removeprefix("--lifetime-stagger=").removesuffix("s"))
    assert lifetime + stagger == 2 * 3600 - 0.1 * 2 * 3600


def test_site_jobqueue_configuration_reaches_the_job_script():
    """cores, memory, walltime and extra worker arguments from jobqueue.yaml, none from the sweep config."""
    pytest.importorskip("dask_jobqueue")
    import dask.config
    from dask_jobqueue import SLURMCluster

    site = {
        "jobqueue.slurm.cores": 3,
        "jobqueue.slurm.memory": "3 GiB",
        "jobqueue.slurm.walltime": "00:45:00",
        "jobqueue.slurm.job-extra-directives": ["--qos=site"],
        "jobqueue.slurm.worker-extra-args": ["--no-nanny"],
    }
    with dask.config.set(site):
        spec = cluster.validate_cluster_spec({"kind": "slurm", "slurm": {"queue": "short"}})
        with SLURMCluster(**cluster.slurm_cluster_kwargs(spec)) as slurm_cluster:
            script = slurm_cluster.job_script()
    assert "#SBATCH -t 00:45:00" in script
    assert "#SBATCH --cpus-per-task=3" in script
    assert "#SBATCH --mem=3G" in script
    assert "#SBATCH --qos=site" in script
    assert "--no-nanny" in script and "--lifetime=" in script


def test_slurm_without_cores_anywhere_names_the_key():
    pytest.importorskip("dask_jobqueue")
    import dask.config

    with dask.config.set({"jobqueue.slurm.cores": None, "jobqueue.slurm.memory": None}):
        with pytest.raises(ParameterError) as info:
            with cluster.make_cluster({"kind": "slurm", "slurm": {"queue": "short"}}):
                pass
    assert info.value.name == "cluster.slurm.cores"


@pytest.mark.parametrize(
    "spec, expected",
    [
        ({"kind": "local", "n_workers": 1}, True),
        ({"kind": "local", "n_workers": 2}, False),
        ({"kind": "local", "n_workers": 1, "threads_per_worker": 2}, False),
        ({"kind": "local", "n_workers": 1, "dashboard": True}, False),  # the user asked for dask
        ({"kind": "address", "address": "tcp://127.0.0.1:8786"}, False),
    ],
)
def test_runs_in_process_only_for_one_local_worker(spec, expected):
    assert cluster.runs_in_process(spec) is expected


def test_runs_in_process_when_the_job_has_one_core(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert cluster.runs_in_process({"kind": "local"})


def test_dashboard_is_off_by_default_and_its_link_printed_when_on():
    import io

    pytest.importorskip("bokeh")
    assert cluster.dashboard_address(cluster.validate_cluster_spec(None)) is None
    log = io.StringIO()
    with cluster.make_cluster({"kind": "local", "n_workers": 1, "dashboard": True}, log=log) as client:
        link = client.dashboard_link
    assert log.getvalue().strip() == f"dask dashboard: {link}"
    assert link.startswith("http://") and not link.rstrip("/").endswith(":0/status")


# --- cores ----------------------------------------------------------------------------------------------


def test_available_cores_respects_slurm_allocation(monkeypatch):
    from dask.system import cpu_count

    affinity = cpu_count()  # the affinity mask and any cgroup CPU quota
    assert affinity <= len(os.sched_getaffinity(0))
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert cluster.available_cores() == affinity
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    assert cluster.available_cores() == 1
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", str(affinity + 10))  # never more than we may use
    assert cluster.available_cores() == affinity


# --- a real LocalCluster --------------------------------------------------------------------------------


def _pid():
    return os.getpid()


def test_local_cluster_runs_tasks_in_worker_processes_and_closes():
    with cluster.make_cluster({"kind": "local", "n_workers": 1}) as client:
        info = client.scheduler_info()
        assert len(info["workers"]) == 1
        (worker,) = info["workers"].values()
        assert worker["nthreads"] == 1
        assert client.submit(_pid, pure=False).result() != os.getpid()  # a separate process
        cluster_obj = client.cluster
    assert client.status == "closed"
    assert cluster_obj.status.name == "closed"


def test_local_cluster_default_workers_is_available_cores(monkeypatch):
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")  # makes the fallback 1 on any machine
    with cluster.make_cluster({"kind": "local"}) as client:
        assert len(client.scheduler_info()["workers"]) == 1


def test_address_kind_connects_to_existing_scheduler_without_closing_it():
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None, silence_logs=50) as existing:
        with cluster.make_cluster({"kind": "address", "address": existing.scheduler_address}) as client:
            assert client.submit(sum, [2, 3]).result() == 5
        # our exit closed only the connection; the scheduler still serves
        assert existing.status.name == "running"
        assert len(existing.scheduler_info["workers"]) == 1


def test_address_kind_unreachable_names_key(monkeypatch):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2)  # nothing listens on port 1
    with pytest.raises(ParameterError, match=r"^cluster\.address"):
        with cluster.make_cluster({"kind": "address", "address": "tcp://127.0.0.1:1"}):
            pass
