#!/usr/bin/env bash
# Stop the single-node SLURM started by tests/slurm/start-local-slurm.sh.
#
# Cancels the jobs still queued or running, then ends slurmd, slurmctld and (if that script started
# it) munged, each by the pid recorded in $DIFFMEM_SLURM_DIR (default /tmp/diffmem-slurm), and waits
# until they are gone. Processes it did not start are left alone. Idempotent.
set -uo pipefail

STATE_DIR=${DIFFMEM_SLURM_DIR:-/tmp/diffmem-slurm}
say() { echo "stop-local-slurm: $*"; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pidfile() {  # stop_pidfile NAME PIDFILE
    local name=$1 file=$2 pid
    if ! alive "$file"; then
        rm -f "$file"
        return
    fi
    pid=$(cat "$file")
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        say "$name did not stop in 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$file"
}

if alive "$STATE_DIR/run/slurmctld.pid" && command -v scancel >/dev/null; then
    # Jobs first, so that no slurmstepd or dask worker outlives the daemons.
    jobs=$(squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %i 2>/dev/null | tr '\n' ' ')
    if [ -n "${jobs// /}" ]; then
        say "cancelling jobs $jobs"
        # shellcheck disable=SC2086
        scancel $jobs 2>/dev/null
        for _ in $(seq 100); do
            [ -z "$(squeue -h -t PENDING,RUNNING,CONFIGURING,COMPLETING -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
fi

stop_pidfile slurmd "$STATE_DIR/run/slurmd.pid"
stop_pidfile slurmctld "$STATE_DIR/run/slurmctld.pid"
stop_pidfile munged "$STATE_DIR/run/munged.pid"
say "stopped"
