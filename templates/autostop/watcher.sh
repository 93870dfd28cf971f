#!/usr/bin/env bash
# skyterra's idle watcher: the one script behind autostop on every cloud.
#
# It runs next to the head node's job files (~/.skyterra/jobs/<id>/pid and rc,
# written by skyterra's detached jobs) and, once the cluster has been idle for
# SKYTERRA_AUTOSTOP_IDLE_SECONDS, writes an event file and execs its arguments:
# the command that stops or removes the nodes. On a cloud it runs ON the head
# node (installed over SSH after launch, see skyterra/idle_watcher.py) and its
# arguments are fire.sh (workers first, then the head itself); on the local
# cloud it runs on this machine and its arguments run node-down.sh.
#
# Idle (SkyPilot's wait_for): no job has a pid file without an rc file and a
# live process, and (jobs_and_ssh) no interactive SSH session is open; with
# `none` the clock runs from the start whatever runs. The clock restarts when
# a job starts or ends.
#
# Settings come from the environment only (no value is parsed from a file):
#   SKYTERRA_AUTOSTOP_IDLE_SECONDS  idle time before firing
#   SKYTERRA_AUTOSTOP_TICK          seconds between looks
#   SKYTERRA_AUTOSTOP_WAIT_FOR      jobs_and_ssh | jobs | none
#   SKYTERRA_AUTOSTOP_ACTION        stop | down (written to the event file)
#   SKYTERRA_AUTOSTOP_REASON        "autodowned after 30 min idle" (event file)
#   SKYTERRA_AUTOSTOP_JOBS          the head's jobs directory
#   SKYTERRA_AUTOSTOP_EVENT         the event file to write when firing
#   SKYTERRA_AUTOSTOP_HOST_PIDS     1: the watcher runs outside the node (local
#                                   cloud): pids in the job files are the node's,
#                                   found in this /proc by NSpid and the node
#                                   marker SKYTERRA_NODE_ID; 0: on the node itself
set -u
idle=$SKYTERRA_AUTOSTOP_IDLE_SECONDS
tick=$SKYTERRA_AUTOSTOP_TICK
jobs=$SKYTERRA_AUTOSTOP_JOBS
marker=${SKYTERRA_NODE_ID:-}

node_procs() { # pids (as this /proc names them) of the node's processes
  if [ "$SKYTERRA_AUTOSTOP_HOST_PIDS" != 1 ]; then
    ls /proc | grep -x '[0-9][0-9]*'
    return
  fi
  grep -lzxF -- "SKYTERRA_NODE_ID=$marker" /proc/[0-9]*/environ 2>/dev/null \
    | sed 's#^/proc/\([0-9]*\)/environ$#\1#'
}

alive() { # $1: a pid of this /proc; not a zombie
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [ "${stat%% *}" != Z ]
}

job_alive() { # $1: pid as the node sees it
  local p ns
  [ -n "$1" ] || return 1
  if [ "$SKYTERRA_AUTOSTOP_HOST_PIDS" != 1 ]; then
    alive "$1"
    return
  fi
  for p in $(node_procs); do
    ns=$(awk '/^NSpid:/ { print $NF }' "/proc/$p/status" 2>/dev/null)
    if [ "$ns" = "$1" ] && alive "$p"; then return 0; fi
  done
  return 1
}

ssh_session() { # an interactive login: sshd names its session process "sshd: USER@pts/N"
  local p
  for p in $(node_procs); do
    tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null \
      | grep -Eq '^sshd(-session)?: [^ ]*@pts/' && return 0
  done
  return 1
}

last=$(date +%s)
while :; do
  now=$(date +%s)
  busy=0
  if [ "$SKYTERRA_AUTOSTOP_WAIT_FOR" != none ]; then
    for d in "$jobs"/*/; do
      [ -d "$d" ] || continue
      if [ -f "$d/rc" ]; then
        m=$(stat -c %Y "$d/rc" 2>/dev/null || echo 0)
        [ "$m" -gt "$last" ] && last=$m
      elif [ -f "$d/pid" ]; then
        m=$(stat -c %Y "$d/pid" 2>/dev/null || echo 0)
        [ "$m" -gt "$last" ] && last=$m
        job_alive "$(cat "$d/pid" 2>/dev/null)" && busy=1
      else # pending: its files are being written (setup before run counts as a job)
        m=$(stat -c %Y "$d" 2>/dev/null || echo 0)
        [ "$m" -gt "$last" ] && last=$m
      fi
    done
    if [ "$SKYTERRA_AUTOSTOP_WAIT_FOR" = jobs_and_ssh ] && ssh_session; then busy=1; fi
  fi
  [ "$busy" = 1 ] && last=$now
  if [ $((now - last)) -ge "$idle" ]; then
    printf '{"action": "%s", "at": %s, "reason": "%s"}\n' "$SKYTERRA_AUTOSTOP_ACTION" "$now" \
      "$SKYTERRA_AUTOSTOP_REASON" >"$SKYTERRA_AUTOSTOP_EVENT.tmp"
    mv -f "$SKYTERRA_AUTOSTOP_EVENT.tmp" "$SKYTERRA_AUTOSTOP_EVENT"
    exec "$@"
  fi
  sleep "$tick"
done
