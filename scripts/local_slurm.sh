#!/usr/bin/env bash
# A single-node Slurm on this machine, for the `slurm` test tier and for trying the Slurm launcher.
#
#   scripts/local_slurm.sh start    install Debian's slurm-wlm if missing, start munged, slurmctld, slurmd
#   scripts/local_slurm.sh status   what runs, and sinfo
#   scripts/local_slurm.sh stop     stop only the daemons this script started
#
# Needs root (apt-get, daemons). Idempotent: `start` twice starts nothing the second time, and a
# daemon that was already running before (someone else's munged) is used, never stopped.
# No cgroups: proctrack/linuxproc tracks job processes by parentage, task/none binds nothing, so
# it also runs inside containers. Resources: select/cons_tres with CR_CPU_Memory, one node with
# every CPU and a little less memory than the machine has.
set -euo pipefail

STATE=${LOCAL_SLURM_STATE:-/var/lib/local_slurm}   # pid files of what we started
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by selfimprove scripts/local_slurm.sh"
PARTITION=${LOCAL_SLURM_PARTITION:-debug}

need_root() {
  if [ "$(id -u)" != 0 ]; then echo "local_slurm.sh: run as root (it installs packages and starts daemons)" >&2; exit 2; fi
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

install() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null; then return; fi
  echo "installing slurm-wlm (about a minute)..."
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm
}

write_conf() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    echo "keeping the existing $CONF (not written by this script)"; return
  fi
  local host cpus mem_mb
  host=$(hostname -s)
  cpus=$(nproc)
  # RealMemory a little below the machine's: slurmd refuses a node that reports less than configured
  mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.95}' /proc/meminfo)
  mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
  cat > "$CONF.tmp" <<EOF
$MARK
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
JobRequeue=1
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# finished jobs stay visible to squeue/scontrol for 5 minutes
MinJobAge=300
KillWait=10
NodeName=$host CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
}

wait_for() {  # wait_for SECONDS COMMAND...: poll until the command succeeds
  local t=$1; shift
  for _ in $(seq 1 $((t * 2))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.5; done
  return 1
}

start() {
  need_root
  install
  write_conf
  mkdir -p "$STATE"
  # munge: the package made the key; the daemon runs as the munge user
  if pgrep -x munged >/dev/null; then
    :
  else
    mkdir -p /run/munge && chown munge:munge /run/munge
    su -s /bin/sh munge -c "/usr/sbin/munged"
    wait_for 10 pgrep -x munged
    pgrep -x munged > "$STATE/munged.pid"
  fi
  if ! pgrep -x slurmctld >/dev/null; then
    /usr/sbin/slurmctld
    wait_for 20 test -s /run/slurmctld.pid
    cp /run/slurmctld.pid "$STATE/slurmctld.pid"
  fi
  if ! pgrep -x slurmd >/dev/null; then
    /usr/sbin/slurmd
    wait_for 20 test -s /run/slurmd.pid
    cp /run/slurmd.pid "$STATE/slurmd.pid"
  fi
  # a node that was down (e.g. after a restart) is brought back
  wait_for 30 sh -c "sinfo -h -o %T | grep -qE 'idle|mix|alloc|down|drain'" || true
  if sinfo -h -o %T | grep -qE 'down|drain'; then
    scontrol update NodeName="$(hostname -s)" State=RESUME >/dev/null 2>&1 || true
  fi
  if ! wait_for 30 sh -c "sinfo -h -o %T | grep -qE 'idle|mix|alloc'"; then
    echo "local_slurm.sh: the node did not come up; see /var/log/slurm/slurmd.log and slurmctld.log" >&2
    sinfo >&2 || true
    exit 1
  fi
  sinfo
}

stop() {
  need_root
  # reverse order; only what this script started (its pid files), each by its own pid
  for d in slurmd slurmctld munged; do
    if alive "$STATE/$d.pid"; then
      kill "$(cat "$STATE/$d.pid")"
      for _ in $(seq 1 20); do alive "$STATE/$d.pid" || break; sleep 0.5; done
      echo "stopped $d"
    fi
    rm -f "$STATE/$d.pid"
  done
}

status() {
  for d in munged slurmctld slurmd; do
    if pgrep -x "$d" >/dev/null; then
      if alive "$STATE/$d.pid"; then echo "$d: running (started by this script, pid $(cat "$STATE/$d.pid"))"
      else echo "$d: running (not started by this script)"; fi
    else
      echo "$d: not running"
    fi
  done
  command -v sinfo >/dev/null && sinfo 2>&1 || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
