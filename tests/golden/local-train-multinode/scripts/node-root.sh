#!/usr/bin/env bash
# Give one local node a filesystem of its own, then exec its sshd inside it.
#
# node-up.sh runs this (as root) as PID 1 of a private mount and PID namespace:
# `unshare -m -p --fork --kill-child --propagation private -- bash node-root.sh
# DIR CMD...`; CMD (sshd) stays PID 1. Nothing mounted here is visible on the
# host, and every mount vanishes with the namespace: when sshd exits, the
# kernel kills every other process of the node, and the namespace is gone.
#
# The node sees the host's files copy-on-write: an overlay of / (and of every
# other writable host filesystem) whose upper layer is DIR/fs/. Writes to
# /usr, /opt, /etc, /tmp, a venv's site-packages ... land there; the host is
# never changed. /tmp is copy-on-write like the rest (not an empty one): a
# virtualenv or a dataset the user keeps below /tmp is there on the node too,
# the node's writes stay its own. Per node, fresh: /dev/shm (tmpfs).
# /proc is the node's own (it lists only the node's processes; the host's
# /proc still sees them all, and node-down.sh finds them there by their
# environment marker). /sys and /dev are the host's. The node dir itself is
# bind-mounted at its own path, so home, sshd_config, host key and logs are
# the real files.
#
# Layout under DIR/fs: root/ (the merged view, a mount point only inside the
# namespace), upper/ + work/ (layer of /), sub/N/{upper,work} (layer of the
# N-th other writable filesystem).
set -euo pipefail

dir=${1:?usage: node-root.sh NODE_DIR COMMAND...}
shift
fs=$dir/fs
root=$fs/root

# Errors go where node-up.sh looks when the node does not come up.
exec 2>>"$dir/sshd.log"

# The host's mounts as this namespace got them (parents before children).
# Fields: mount point (octal escapes for odd characters) and options.
mapfile -t host_mounts < <(awk '{ print $2 " " $4 }' /proc/self/mounts)

mkdir -p -m 0755 -- "$fs/upper" "$fs/work" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$fs/upper,workdir=$fs/work" "$root"

# Other host filesystems (e.g. /home, a separate /var): writable ones get a
# layer of their own (read-only when that fails), read-only ones are bound as
# they are. The kernel's own trees come next, and mounts below the node dir are ours.
n=0
for entry in "${host_mounts[@]}"; do
  mp=${entry% *}
  opts=${entry#* }
  case $mp in
    / | /proc | /proc/* | /sys | /sys/* | /dev | /dev/* | *\\*) continue ;;
    "$dir" | "$dir"/*) continue ;;
  esac
  if [[ -f $mp && -f $root$mp ]]; then # a file bound over the root fs (containers)
    mount --bind -- "$mp" "$root$mp"
    mount -o remount,bind,ro -- "$root$mp"
    continue
  fi
  [[ -d $mp && -d $root$mp ]] || continue
  if [[ ,$opts, == *,ro,* ]]; then
    mount --rbind -- "$mp" "$root$mp"
    continue
  fi
  n=$((n + 1))
  mkdir -p -m 0755 -- "$fs/sub/$n/upper" "$fs/sub/$n/work"
  if ! mount -t overlay overlay \
    -o "lowerdir=$mp,upperdir=$fs/sub/$n/upper,workdir=$fs/sub/$n/work" "$root$mp"; then
    # Some filesystems cannot be an overlay's lower layer: never let the node
    # write to the host's copy, show it read-only instead.
    echo "node-root: $mp cannot be overlaid; the node sees it read-only" >&2
    mount --rbind -- "$mp" "$root$mp"
    mount -o remount,bind,ro -- "$root$mp"
  fi
done

mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
mount --rbind /sys "$root/sys"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"

# Last, so that it also covers a node dir below another overlaid tree (e.g. /tmp).
mkdir -p -- "$root$dir"
mount --bind -- "$dir" "$root$dir"

# The node's home is $HOME (the node dir's home/), not the host account's home
# directory that OpenSSH's client would otherwise read: keys and known hosts a
# task puts in ~/.ssh (SkyPilot's sky-key as ~/.ssh/id_rsa, for node-to-node
# SSH) are found there, as on a VM. Only this node's layer of /etc changes.
mkdir -p -- "$root/etc/ssh/ssh_config.d"
cat >"$root/etc/ssh/ssh_config.d/00-skyterra-node-home.conf" <<'CONF'
Host *
  IdentityFile ${HOME}/.ssh/id_rsa
  IdentityFile ${HOME}/.ssh/id_ecdsa
  IdentityFile ${HOME}/.ssh/id_ed25519
  UserKnownHostsFile ${HOME}/.ssh/known_hosts
CONF

# pivot_root, not just chroot: a chroot is not the root of the mount namespace, and
# tools that enter a namespace later (`runc exec`, i.e. podman exec of a task
# container) would land in the namespace's real root, the host's /. After the
# pivot the host's / is detached; chroot only where pivot_root is missing.
cd -- "$root"
if command -v pivot_root >/dev/null 2>&1 && pivot_root . .; then
  umount -l .
  cd /
  exec "$@"
fi
exec chroot -- "$root" "$@"
