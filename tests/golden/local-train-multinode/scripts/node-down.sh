#!/usr/bin/env bash
# Stop one local node and remove its directory.
#
# Kills every process that carries the node's marker SKYTERRA_NODE_ID=<node dir>
# in its environment (the node's sshd is started with it, sshd passes it on to
# its per-connection processes, and the ForceCommand wrapper exports it, so it
# reaches every session and every job started from one, detached or not), plus
# the sshd named by the pid file or matched by its command line. TERM first,
# KILL what is left after a short wait. Then removes the node directory.
#
# Succeeds when the node is already gone, so destroying twice works.
#
# With SKYTERRA_NODE_KEEP=1 the node is only stopped (skyterra stop, autostop):
# its processes end as above, but the directory (home, host key, filesystem
# layer fs/upper) stays, marked `stopped`; node-up.sh starts it again.
#
# Input (environment): SKYTERRA_NODE_DIR (required), SKYTERRA_NODE_NAME (for messages),
# SKYTERRA_NODE_KEEP.
set -euo pipefail

# If we run inside a session of some node ourselves, drop the marker so that
# our own helper processes never match.
if [[ -n ${SKYTERRA_NODE_ID+x} ]]; then
  exec env -u SKYTERRA_NODE_ID "$BASH" "${BASH_SOURCE[0]}" "$@"
fi

dir=${SKYTERRA_NODE_DIR:?node-down.sh: SKYTERRA_NODE_DIR is not set}
dir=${dir%/}
name=${SKYTERRA_NODE_NAME:-$dir}

case $dir in
  /?*/?*) ;;
  *)
    echo "node-down: node $name: refusing node directory '$dir' (must be an absolute path below a directory)" >&2
    exit 1
    ;;
esac

# Never kill ourselves or an ancestor (terraform may itself run on a node).
declare -A protected=()
p=$$
while [[ $p =~ ^[0-9]+$ ]] && ((p > 1)); do
  protected[$p]=1
  p=$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || break
done

# Prints the pids of the node's processes, one per line.
node_pids() {
  local f pid
  {
    if [[ -r $dir/sshd.pid ]]; then
      read -r pid <"$dir/sshd.pid" || true
      if [[ ${pid:-} =~ ^[0-9]+$ ]] \
        && grep -qzF -- "$dir/sshd_config" "/proc/$pid/cmdline" 2>/dev/null; then
        echo "/proc/$pid/cmdline"
      fi
    fi
    grep -lzxF -- "SKYTERRA_NODE_ID=$dir" /proc/[0-9]*/environ 2>/dev/null || true
    grep -lzF -- "$dir/sshd_config" /proc/[0-9]*/cmdline 2>/dev/null || true
  } | while IFS= read -r f; do
    pid=${f#/proc/}
    pid=${pid%%/*}
    [[ -z ${protected[$pid]:-} ]] && echo "$pid"
  done | sort -un
}

# True while the process exists and is not a zombie.
alive() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# TERM the given processes and wait up to ~2 s for them to go; the survivors
# are left in `left`.
term_and_wait() {
  local pid
  kill -TERM "$@" 2>/dev/null || true
  for _ in {1..40}; do
    left=()
    for pid in "$@"; do
      if alive "$pid"; then left+=("$pid"); fi
    done
    ((${#left[@]} > 0)) || return 0
    sleep 0.05
  done
}

# A node that shares this machine's mounts (not root: no mount namespace, no fs/
# layer of its own) would leave its bucket mounts (rclone FUSE, listed by
# skyterra's attach script in ~/.skyterra/mounts/points) on the host when its
# processes die. Unmount them first, while rclone still runs; only rclone mounts.
unmount_buckets() {
  local list=$dir/home/.skyterra/mounts/points point type
  [[ ! -d $dir/fs && -r $list ]] || return 0
  while IFS= read -r point; do
    [[ $point == /* ]] || continue
    type=$(findmnt -n -o FSTYPE --mountpoint "$point" 2>/dev/null) || continue
    [[ $type == fuse.rclone ]] || continue
    fusermount3 -u -- "$point" 2>/dev/null || fusermount3 -u -z -- "$point" 2>/dev/null \
      || echo "node-down: node $name: could not unmount $point" >&2
  done <"$list"
  rm -f -- "$list"
}
unmount_buckets

# Jobs first, while the node itself is still up: as root the node's sshd is
# PID 1 of its PID namespace, and when it goes the kernel kills everything
# left at once. So a job that stops cleanly on TERM (saving a checkpoint, say)
# gets up to ~2 s before the node's sshd is stopped.
mapfile -t jobs < <(node_pids | while IFS= read -r pid; do
  grep -qzF -- "$dir/sshd_config" "/proc/$pid/cmdline" 2>/dev/null || echo "$pid"
done)
if ((${#jobs[@]} > 0)); then
  term_and_wait "${jobs[@]}"
fi

# TERM, wait up to ~2 s, KILL; repeat while new processes show up (a session
# that was starting during the first scan).
# (Each scan reads every process's environment: with many nodes on the machine that is
# the cost of a destroy, so a round that found nothing is the last scan.)
for round in 1 2 3 4 5 6; do
  mapfile -t pids < <(node_pids)
  ((${#pids[@]} > 0)) || break
  if ((round == 6)); then
    echo "node-down: node $name: processes still alive after KILL: ${pids[*]}" >&2
    exit 1
  fi
  term_and_wait "${pids[@]}"
  if ((${#left[@]} > 0)); then
    kill -KILL "${left[@]}" 2>/dev/null || true
    sleep 0.05
  fi
done

if [[ ${SKYTERRA_NODE_KEEP:-0} == 1 ]]; then
  if [[ -f $dir/.skyterra-node && ! -L $dir ]]; then
    rm -f -- "$dir/sshd.pid"
    : >"$dir/stopped"
  fi
  exit 0
fi

if [[ -e $dir || -L $dir ]]; then
  if [[ -f $dir/.skyterra-node && ! -L $dir ]]; then
    # The node's processes are gone, so is its mount namespace: fs/root is an
    # empty directory again. --one-file-system: never descend into a mount
    # (should this ever run inside the node's own namespace).
    # fs/upper holds whiteouts (character devices) and whatever jobs wrote.
    if ! rm -rf --one-file-system -- "$dir" 2>/dev/null; then
      # Jobs may have left read-only (or, as root, immutable) files behind.
      chattr -R -ia -- "$dir" 2>/dev/null || true
      chmod -R u+rwx -- "$dir" 2>/dev/null || true
      rm -rf --one-file-system -- "$dir"
    fi
  else
    echo "node-down: node $name: $dir is not a skyterra node directory; leaving it alone" >&2
  fi
fi
exit 0
