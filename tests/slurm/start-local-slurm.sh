#!/usr/bin/env bash
# Start a single-node SLURM (Debian/Ubuntu slurm-wlm + munge) on this machine's loopback.
#
# Idempotent: installs the packages if missing, writes /etc/slurm/slurm.conf (only if absent or
# written by this script before: a real site config is never touched), creates a munge key if none
# exists, starts munged, slurmctld and slurmd unless they already run, and waits until `sinfo` shows
# the node idle. Everything it starts is recorded by pid in $DIFFMEM_SLURM_DIR (default
# /tmp/diffmem-slurm); tests/slurm/stop-local-slurm.sh stops exactly those processes.
#
# Needs root (daemons, /etc) and apt-get when the packages are missing. Exit status 3 means "cannot
# run here" (not root / no package manager): the pytest fixture skips the SLURM tests on it.
#
# Usage: tests/slurm/start-local-slurm.sh           # then: sinfo; sbatch --wrap hostname
#        tests/slurm/stop-local-slurm.sh
set -euo pipefail

STATE_DIR=${DIFFMEM_SLURM_DIR:-/tmp/diffmem-slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by diffmem tests/slurm/start-local-slurm.sh"
PARTITION=${DIFFMEM_SLURM_PARTITION:-debug}
WAIT_S=${DIFFMEM_SLURM_WAIT_S:-60}

say() { echo "start-local-slurm: $*"; }
cannot() { echo "start-local-slurm: cannot run here: $*" >&2; exit 3; }

[ "$(id -u)" -eq 0 ] || cannot "needs root (it starts slurmctld, slurmd and munged)"

# --- packages -------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
   || ! command -v sbatch >/dev/null; then
    command -v apt-get >/dev/null || cannot "slurm-wlm/munge are missing and there is no apt-get"
    say "installing slurm-wlm and munge with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    # The package index may be empty on a fresh machine; `update` is cheap and makes install work.
    apt-get update -qq >/dev/null || say "apt-get update failed; trying the install anyway"
    if ! apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; then
        echo "start-local-slurm: apt-get install slurm-wlm munge failed" >&2
        exit 1
    fi
fi

mkdir -p "$STATE_DIR"/{spool/ctld,spool/d,log,run}
chmod 755 "$STATE_DIR"

alive() {  # alive PIDFILE: the pid in the file is a running process
    [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

# --- munge ----------------------------------------------------------------------------------------
if [ ! -s /etc/munge/munge.key ]; then
    say "creating a munge key"
    mkdir -p /etc/munge
    if command -v mungekey >/dev/null; then
        mungekey --create --keyfile=/etc/munge/munge.key
    else
        dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 755 /run/munge

if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already answers (not started by this script)"
else
    say "starting munged"
    # munged refuses to start as root; its pid file lets the stop script end exactly this process.
    runuser -u munge -- munged --pid-file=/run/munge/munged.pid --force
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break
        sleep 0.1
    done
    cp /run/munge/munged.pid "$STATE_DIR/run/munged.pid"
fi

# --- slurm.conf -----------------------------------------------------------------------------------
# slurmd and slurmctld identify themselves by the short hostname.
HOST=$(hostname -s)
if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    cannot "$CONF exists and was not written by this script; refusing to replace a real SLURM configuration"
fi
# The node's real shape (CPUs, sockets, cores, threads, memory) as slurmd itself detects it, so that
# slurmd never drains the node for having less than the config declares.
NODE_LINE=$(slurmd -C | head -n 1 | sed -E "s/^NodeName=[^ ]+/NodeName=$HOST/")
mkdir -p /etc/slurm
cat > "$CONF.new" <<EOF
$MARKER
# A single-node cluster on loopback for tests. State, logs and pid files live in $STATE_DIR.
ClusterName=diffmem-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# No cgroups in containers: track job processes by parent pid and bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# Cores and memory are the consumable resources, so several 1-core jobs share the node.
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# No slurmdbd: sacct does not work; squeue must keep finished jobs visible (MinJobAge) so that
# status pollers (the Snakemake SLURM executor with --slurm-status-command squeue) see them finish.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=3600
MpiDefault=none
ReturnToService=2
# Short grace periods so that scancel and job ends are fast in tests.
KillWait=5
SchedulerParameters=sched_interval=2
StateSaveLocation=$STATE_DIR/spool/ctld
SlurmdSpoolDir=$STATE_DIR/spool/d
SlurmctldPidFile=$STATE_DIR/run/slurmctld.pid
SlurmdPidFile=$STATE_DIR/run/slurmd.pid
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
if [ -f "$CONF" ] && cmp -s "$CONF" "$CONF.new"; then
    rm "$CONF.new"
else
    mv "$CONF.new" "$CONF"
    say "wrote $CONF"
fi

# --- daemons --------------------------------------------------------------------------------------
if alive "$STATE_DIR/run/slurmctld.pid"; then
    say "slurmctld already running (pid $(cat "$STATE_DIR/run/slurmctld.pid"))"
else
    say "starting slurmctld"
    # -c: start from a clean state (no jobs left over from an earlier run of this script)
    slurmctld -c
fi
if alive "$STATE_DIR/run/slurmd.pid"; then
    say "slurmd already running (pid $(cat "$STATE_DIR/run/slurmd.pid"))"
else
    say "starting slurmd"
    slurmd
fi

# --- wait until the node takes jobs ---------------------------------------------------------------
state=""
for _ in $(seq $((WAIT_S * 2))); do
    state=$(sinfo -h -n "$HOST" -o %T 2>/dev/null | head -n 1 || true)
    case "$state" in
        idle|mixed|allocated) break ;;
    esac
    sleep 0.5
done
case "$state" in
    idle|mixed|allocated) ;;
    *)
        echo "start-local-slurm: node $HOST is '${state:-unknown}' after ${WAIT_S}s; logs:" >&2
        tail -n 20 "$STATE_DIR/log/slurmctld.log" "$STATE_DIR/log/slurmd.log" >&2 || true
        exit 1 ;;
esac

say "node $HOST is $state in partition $PARTITION"
say "config $CONF; pids in $STATE_DIR/run; logs in $STATE_DIR/log"
say "stop with: $(dirname "$0")/stop-local-slurm.sh"
