"""diffmem.pipeline.cluster.make_cluster(kind='slurm') against the real local SLURM: dask workers as jobs."""

import os
import subprocess
import time

import pytest

from diffmem.pipeline.cluster import make_cluster

pytestmark = pytest.mark.slurm

# Tasks are stdlib functions: workers in SLURM jobs cannot import this test module (pytest puts
# tests/ on sys.path only in this process), and distributed pickles functions by reference.
SLURM_JOB_ID = "SLURM_JOB_ID"


def _slurm_spec(partition, log_dir, **slurm):
    return {
        "kind": "slurm",
        "threads_per_worker": 1,
        "slurm": {
            "queue": partition,
            "cores": 1,
            "memory": "1 GiB",
            "walltime": "00:10:00",
            "max_jobs": 2,
            "log_directory": str(log_dir),
            **slurm,
        },
    }


def _wait_for_no_jobs(squeue_ids, name, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not squeue_ids(name):
            return True
        time.sleep(1)
    return False


def test_tasks_run_inside_slurm_jobs_and_jobs_end_with_the_context(local_slurm, squeue, tmp_path):
    assert _wait_for_no_jobs(squeue, "diffmem-worker")  # no leftovers from an earlier test
    with make_cluster(_slurm_spec(local_slurm, tmp_path)) as client:
        # adapt() starts from zero jobs: submitting work must make it request worker jobs
        futures = [client.submit(os.getenv, SLURM_JOB_ID, pure=False) for _ in range(8)]
        job_ids = set(client.gather(futures, errors="raise"))
        assert None not in job_ids, "a task ran outside a SLURM job"
        assert all(job.isdigit() for job in job_ids)
        assert 1 <= len(job_ids) <= 2  # max_jobs bounds the concurrent worker jobs
        script = client.cluster.job_script()
        assert f"#SBATCH -p {local_slurm}" in script and "--lifetime=" in script
    # leaving the context cancels the worker jobs
    assert _wait_for_no_jobs(squeue, "diffmem-worker"), squeue("diffmem-worker")


def test_worker_job_killed_by_slurm_is_replaced_and_work_completes(local_slurm, squeue, tmp_path):
    """scancel of a worker job mid-task: the scheduler reschedules its task on a new job."""
    assert _wait_for_no_jobs(squeue, "diffmem-worker")
    spec = _slurm_spec(local_slurm, tmp_path, max_jobs=1)
    with make_cluster(spec) as client:
        first_job = client.submit(os.getenv, SLURM_JOB_ID, pure=False).result(timeout=120)
        # a long task lands on that only worker; cancel its job while it runs
        slow = client.submit(time.sleep, 8, pure=False)
        deadline = time.monotonic() + 30
        while not client.processing() or not any(client.processing().values()):
            assert time.monotonic() < deadline, "task never started"
            time.sleep(0.2)
        subprocess.run(["scancel", first_job], check=True)
        # adapt() submits a new job; the task is recomputed there (retries not needed: the
        # scheduler reschedules tasks of a lost worker by itself)
        slow.result(timeout=180)
        second_job = client.submit(os.getenv, SLURM_JOB_ID, pure=False).result(timeout=120)
        assert second_job is not None
        assert second_job != first_job
    assert _wait_for_no_jobs(squeue, "diffmem-worker")


def _job_state(job_id):
    out = subprocess.run(["scontrol", "show", "job", str(job_id)], capture_output=True, text=True).stdout
    for field in out.split():
        if field.startswith("JobState="):
            return field.removeprefix("JobState=")
    return None


@pytest.mark.slow
def test_workers_retire_before_walltime_and_are_replaced(local_slurm, squeue, tmp_path):
    """A worker job ends by itself (COMPLETED, not TIMEOUT) before its walltime; adapt replaces it.

    walltime 3 min with lifetime_margin 111 s gives lifetime 60 s +- 9 s (cluster.worker_lifetime):
    the job must be gone well before 180 s, and SLURM must record a normal end, not a kill.
    """
    assert _wait_for_no_jobs(squeue, "diffmem-worker")
    spec = _slurm_spec(local_slurm, tmp_path, walltime="00:03:00", lifetime_margin=111, min_jobs=1, max_jobs=1)
    with make_cluster(spec) as client:
        first_job = client.submit(os.getenv, SLURM_JOB_ID, pure=False).result(timeout=120)
        started = time.monotonic()
        while first_job in squeue("diffmem-worker"):
            assert time.monotonic() - started < 150, "worker job still running near its walltime"
            time.sleep(2)
        ended_after = time.monotonic() - started
        assert _job_state(first_job) == "COMPLETED"
        # min_jobs=1: adapt submits a new worker job, and work continues on it
        second_job = client.submit(os.getenv, SLURM_JOB_ID, pure=False).result(timeout=120)
        assert second_job != first_job
    # lifetime 60 s +- 9 s counted from worker start, which precedes `started` by < 60 s
    assert ended_after < 180 - 60
    assert _wait_for_no_jobs(squeue, "diffmem-worker")
