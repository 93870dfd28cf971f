#!/usr/bin/env bash
# Start one local node: a real `sshd -D` bound to SKYTERRA_NODE_IP:SKYTERRA_SSH_PORT
# with its own host key, the cluster's authorized key and its own home.
#
# As root the node is a machine of its own: its sshd runs in a private mount
# namespace with a copy-on-write overlay of the host's filesystem as its `/`
# (node-root.sh), so installs, /opt, /data, /tmp and /dev/shm are per node and
# the host is never changed. Not root: no namespaces; nodes share the host's
# filesystem and only HOME differs (skyterra warns at launch).
#
# Layout of the node directory (0700):
#   .skyterra-node          marks the directory as ours (node-down.sh only removes such dirs)
#   ssh_host_ed25519_key    host key (+ .pub)
#   authorized_keys         the cluster's public key
#   env.sh                  environment of every session (HOME, PATH, node_env, marker)
#   session.sh              ForceCommand wrapper: cd ~ and run the command / shell / sftp
#   bashrc                  rc file of interactive logins
#   sshd_config, sshd.pid, sshd.log
#   known_hosts_line        the host key as ssh-keyscan prints it, for known_hosts
#   home/                   HOME and cwd of every session
#   fs/                     root only: the node's filesystem layer (upper/, work/,
#                           sub/N/, tmp/; root/ is the merged view, mounted only
#                           inside the node's namespace)
#
# Input: environment variables set by the terraform_data provisioner (see main.tf).
# Values are only ever used as data: written with printf %q, never evaluated.
#
# If anything fails after the first file was created, the node is torn down
# again (node-down.sh) before exiting 1: Terraform does not run destroy
# provisioners of the tainted resource a failed create leaves behind.
set -euo pipefail

here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)

name=${SKYTERRA_NODE_NAME:?SKYTERRA_NODE_NAME is not set}
dir=${SKYTERRA_NODE_DIR:?SKYTERRA_NODE_DIR is not set}
dir=${dir%/}
ip=${SKYTERRA_NODE_IP:?SKYTERRA_NODE_IP is not set}
port=${SKYTERRA_SSH_PORT:?SKYTERRA_SSH_PORT is not set}
user=${SKYTERRA_SSH_USER:?SKYTERRA_SSH_USER is not set}
pubkey=${SKYTERRA_SSH_PUBLIC_KEY:?SKYTERRA_SSH_PUBLIC_KEY is not set}
node_path=${SKYTERRA_NODE_PATH:?SKYTERRA_NODE_PATH is not set}
zone=${SKYTERRA_ZONE:-local-a}
read -ra env_keys <<<"${SKYTERRA_NODE_ENV_KEYS:-}"

created=0
restart=0
log_shown=0

say() { echo "node-up: node $name ($ip:$port): $*" >&2; }

# Print an error (and the tail of the sshd log) and exit 1; the EXIT trap cleans up.
fail() {
  say "ERROR: $*"
  if [[ -s $dir/sshd.log ]]; then
    echo "---- last lines of $dir/sshd.log ----" >&2
    tail -n 15 -- "$dir/sshd.log" >&2 || true
    echo "----" >&2
  fi
  log_shown=1
  exit 1
}

on_exit() {
  local rc=$?
  if ((rc != 0 && created)); then
    ((log_shown)) || say "ERROR: setup failed (exit $rc)"
    SKYTERRA_NODE_KEEP=$restart SKYTERRA_NODE_DIR=$dir SKYTERRA_NODE_NAME=$name \
      bash "$here/node-down.sh" >/dev/null 2>&1 \
      || say "cleanup failed: run SKYTERRA_NODE_DIR=$dir bash $here/node-down.sh"
    say "removed everything this node had started; nothing is left behind"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- capacity simulation (test only): fail before creating anything ----------
if [[ ${SKYTERRA_ZONE_UNAVAILABLE:-0} == 1 ]]; then
  echo "Error: InsufficientInstanceCapacity: We currently do not have sufficient capacity" \
    "to launch node $name in zone $zone (simulated: zone $zone is listed in unavailable_zones)." >&2
  exit 1
fi

# ---- preflight: nothing is created until these pass --------------------------
[[ $dir == /?*/?* ]] || fail "node directory '$dir' must be an absolute path below a directory"
[[ $port =~ ^[0-9]+$ ]] || fail "bad ssh port '$port'"
[[ $ip =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "node address '$ip' is not a loopback address"

find_tool() { # name, fallback candidates...
  local t
  if [[ $1 == sshd && -n ${SKYTERRA_SSHD:-} ]]; then
    echo "$SKYTERRA_SSHD"
    return
  fi
  t=$(command -v "$1" 2>/dev/null) && [[ $t == /* ]] && { echo "$t"; return; }
  shift
  for t in "$@"; do
    [[ -x $t ]] && { echo "$t"; return; }
  done
  return 1
}
sshd=$(find_tool sshd /usr/sbin/sshd /usr/local/sbin/sshd /sbin/sshd) \
  || fail "sshd not found (install openssh-server; SKYTERRA_SSHD may name it)"
[[ $sshd == /* && -x $sshd ]] || fail "sshd '$sshd' is not an absolute path to an executable"
keygen=$(find_tool ssh-keygen /usr/bin/ssh-keygen) || fail "ssh-keygen not found"
keyscan=$(find_tool ssh-keyscan /usr/bin/ssh-keyscan) || fail "ssh-keyscan not found"
setsid_bin=$(find_tool setsid /usr/bin/setsid /bin/setsid) || fail "setsid not found (util-linux)"
sftp_server=""
for c in "$(dirname -- "$sshd")/../lib/openssh/sftp-server" \
  /usr/lib/openssh/sftp-server /usr/libexec/openssh/sftp-server \
  /usr/lib/ssh/sftp-server /usr/libexec/sftp-server /usr/lib/misc/sftp-server; do
  if [[ -x $c ]]; then
    sftp_server=$(cd -- "$(dirname -- "$c")" && pwd)/sftp-server
    break
  fi
done
bash_bin=$BASH

# Root: the node gets its own filesystem (see node-root.sh); else the shared one.
isolated=0
launcher=()
if ((EUID == 0)); then
  unshare_bin=$(find_tool unshare /usr/bin/unshare /bin/unshare) \
    || fail "unshare not found (util-linux); it gives each node its own filesystem"
  find_tool chroot /usr/sbin/chroot /usr/bin/chroot >/dev/null \
    || fail "chroot not found (coreutils); it gives each node its own filesystem"
  grep -qw overlay /proc/filesystems 2>/dev/null || modprobe overlay 2>/dev/null || true
  grep -qw overlay /proc/filesystems 2>/dev/null \
    || fail "the kernel has no overlayfs (modprobe overlay); it gives each node its own filesystem"
  isolated=1
  launcher=("$unshare_bin" -m -p --fork --kill-child --propagation private --
    "$bash_bin" "$here/node-root.sh" "$dir")
fi

if ((EUID != 0)); then
  me=$(id -un)
  [[ $user == "$me" ]] \
    || fail "running as $me (not root): sshd can only log in $me, but ssh_user is '$user'; set ssh_user to '$me'"
  unpriv=1024
  [[ -r /proc/sys/net/ipv4/ip_unprivileged_port_start ]] \
    && read -r unpriv </proc/sys/net/ipv4/ip_unprivileged_port_start
  ((port >= unpriv)) \
    || fail "running as $me (not root): port $port is privileged; use a port above 1024 (e.g. 2222)"
fi

# sshd of this node already running (node-up re-run): refresh known_hosts_line, done.
sshd_pid() {
  local pid=""
  [[ -r $dir/sshd.pid ]] && { read -r pid <"$dir/sshd.pid" || true; }
  [[ $pid =~ ^[0-9]+$ ]] && grep -qzF -- "$dir/sshd_config" "/proc/$pid/cmdline" 2>/dev/null \
    && echo "$pid"
}

alive() {
  local stat
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  stat=${stat##*) }
  [[ ${stat%% *} != Z ]]
}

# The pid of the (only) child of process $1.
child_of() {
  local c="" f
  { read -r c _ <"/proc/$1/task/$1/children"; } 2>/dev/null || true
  [[ -n $c ]] && { echo "$c"; return 0; }
  for f in /proc/[0-9]*/status; do # kernels without CONFIG_PROC_CHILDREN
    if grep -qx "PPid:[[:space:]]*$1" "$f" 2>/dev/null; then
      f=${f#/proc/}
      echo "${f%%/*}"
      return 0
    fi
  done
  return 1
}

now_ms() {
  local t=${EPOCHREALTIME:-}
  if [[ -n $t ]]; then
    t=${t/,/.}
    echo $((10#${t%.*} * 1000 + 10#${t#*.} / 1000))
  else
    echo $(($(date +%s) * 1000))
  fi
}

# Waits (<= 10 s) until the node's sshd listens, then writes known_hosts_line: the
# host key as ssh-keyscan prints it. The line is made from the key generated above,
# once sshd logged that it listens on the node's address: an sshd that could not bind
# (someone else holds the address) exits instead, and no key exchange is spent on a
# key we already know (each costs ~0.1 s of CPU, and a launch starts many nodes).
# Only when sshd does not log that line (another sshd version) is ssh-keyscan asked,
# and its key must be ours. $1: pid of the sshd to watch.
wait_for_host_key() {
  local pid=$1 kind want line deadline host
  read -r kind want _ <"$dir/ssh_host_ed25519_key.pub"
  deadline=$(($(now_ms) + 10000))
  host=$ip
  [[ $port == 22 ]] || host="[$ip]:$port"
  while :; do
    alive "$pid" || fail "sshd exited during startup (address in use? a mount failed? see the log below)"
    line=""
    if grep -qF "Server listening on $ip port $port" "$dir/sshd.log" 2>/dev/null; then
      line="$host $kind $want"
    elif (($(now_ms) > deadline - 8000)); then
      line=$("$keyscan" -T 1 -t ed25519 -p "$port" "$ip" 2>/dev/null | grep -v '^#' | head -n 1 || true)
    fi
    if [[ -n $line ]]; then
      local _h _t key
      read -r _h _t key <<<"$line"
      [[ $key == "$want" ]] \
        || fail "$ip:$port answers with a different host key (another sshd on this address?)"
      printf '%s\n' "$line" >"$dir/known_hosts_line.tmp"
      mv -f -- "$dir/known_hosts_line.tmp" "$dir/known_hosts_line"
      return 0
    fi
    (($(now_ms) < deadline)) || fail "sshd did not answer on $ip:$port within 10 s"
    sleep 0.01
  done
}

if [[ -e $dir || -L $dir ]]; then
  [[ -d $dir && ! -L $dir && -f $dir/.skyterra-node ]] \
    || fail "$dir exists and is not a skyterra node directory; refusing to touch it"
  if pid=$(sshd_pid) && alive "$pid"; then
    created=1 # from here on a failure tears the (broken) node down
    # A running node (e.g. the power-state resource created right after the node) keeps
    # its known_hosts_line; only a missing one is made again.
    [[ -s $dir/known_hosts_line ]] || wait_for_host_key "$pid"
    say "already running (sshd pid $pid)"
    created=0
    exit 0
  fi
  if [[ -f $dir/stopped && -f $dir/sshd_config && -f $dir/ssh_host_ed25519_key ]]; then
    # A stopped node (skyterra stop, autostop): start its sshd again with the same
    # host key, home and filesystem layer, like an instance that is started again.
    restart=1
  else
    # A stale node (sshd dead): start from scratch, like a replaced instance.
    SKYTERRA_NODE_KEEP=0 SKYTERRA_NODE_DIR=$dir SKYTERRA_NODE_NAME=$name bash "$here/node-down.sh"
  fi
fi

# ---- create ---------------------------------------------------------------------
umask 077
if ((restart)); then
  created=1 # a failed restart stops the node again (node-down keeps a stopped node's files)
else
mkdir -p -- "$(dirname -- "$dir")"
mkdir -m 0700 -- "$dir" || fail "cannot create $dir"
created=1
printf '%s\n' "$name" >"$dir/.skyterra-node"
mkdir -m 0700 -- "$dir/home"

"$keygen" -q -t ed25519 -N '' -C "skyterra-$name" -f "$dir/ssh_host_ed25519_key" </dev/null >/dev/null \
  || fail "ssh-keygen failed"
printf '%s\n' "$pubkey" >"$dir/authorized_keys"
# Workers also trust the cluster's relay key, from the head's address only: the head
# fans commands out to them (skyterra/relay.py). The key is data, checked to be one.
relay_key=${SKYTERRA_RELAY_KEY:-}
relay_from=${SKYTERRA_RELAY_FROM:-}
if [[ -n $relay_key && ${SKYTERRA_NODE_INDEX:-0} != 0 ]]; then
  [[ $relay_key =~ ^ssh-ed25519\ [A-Za-z0-9+/]+={0,3}(\ [A-Za-z0-9._@-]+)?$ ]] \
    || fail "the relay key is not a single ssh-ed25519 public key"
  [[ $relay_from =~ ^127\.[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "bad relay address '$relay_from'"
  printf 'restrict,from="%s" %s\n' "$relay_from" "$relay_key" >>"$dir/authorized_keys"
fi

# Environment of every session. node_env first, so that the module's own
# variables win (variables.tf also rejects HOME, PATH and SKYTERRA_NODE_ID).
{
  echo "# Generated by skyterra node-up.sh: environment of every session on this node."
  for k in "${env_keys[@]}"; do
    [[ $k =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || fail "bad node_env key '$k'"
    v="SKYTERRA_NODE_ENV__$k"
    printf 'export %s=%q\n' "$k" "${!v-}"
  done
  printf 'export HOME=%q\n' "$dir/home"
  printf 'export PATH=%q\n' "$node_path"
  printf 'export SKYTERRA_NODE_ID=%q\n' "$dir"
  printf 'export SKYTERRA_NODE_NAME=%q\n' "$name"
} >"$dir/env.sh"

{
  echo "# Generated by skyterra node-up.sh: rc file of interactive logins."
  printf '. %q\n' "$dir/env.sh"
  echo '[ -f "$HOME/.bashrc" ] && . "$HOME/.bashrc"'
  echo 'cd "$HOME"'
} >"$dir/bashrc"

# ForceCommand wrapper. sshd runs it through the user's login shell for every
# session: commands, rsync --server, sftp (SSH_ORIGINAL_COMMAND is then the
# Subsystem command) and interactive logins (SSH_ORIGINAL_COMMAND unset).
{
  printf '#!%s\n' "$bash_bin"
  echo "# Generated by skyterra node-up.sh: ForceCommand of node $name."
  printf '. %q\n' "$dir/env.sh"
  echo 'cd "$HOME" || exit 1'
  echo 'case ${SSH_ORIGINAL_COMMAND-} in'
  printf "  '') exec %q --rcfile %q -i ;;\n" "$bash_bin" "$dir/bashrc"
  if [[ -n $sftp_server ]]; then
    printf '  %q | internal-sftp) exec %q -d "$HOME" ;;\n' "$sftp_server" "$sftp_server"
  fi
  printf '  *) exec %q -c "$SSH_ORIGINAL_COMMAND" ;;\n' "$bash_bin"
  echo 'esac'
} >"$dir/session.sh"
chmod 0700 "$dir/session.sh"

# The paths below contain no whitespace, quotes, '%' or '#': variables.tf
# validates nodes_dir and cluster_name, ssh_user and the address are checked.
{
  echo "# Generated by skyterra node-up.sh for node $name."
  echo "ListenAddress $ip:$port"
  echo "HostKey $dir/ssh_host_ed25519_key"
  # In its own PID namespace sshd is PID 1 and would write "1": node-up.sh
  # writes sshd.pid itself, with the pid the host sees.
  if ((isolated)); then echo "PidFile none"; else echo "PidFile $dir/sshd.pid"; fi
  # The cluster's key, and the home's own file: keys added on the node (the relay key
  # the head uses to reach the workers, skyterra/relay.py) land there, as on a cloud VM.
  echo "AuthorizedKeysFile $dir/authorized_keys $dir/home/.ssh/authorized_keys"
  echo "AllowUsers $user"
  echo "PubkeyAuthentication yes"
  echo "PasswordAuthentication no"
  echo "KbdInteractiveAuthentication no"
  echo "PermitRootLogin prohibit-password"
  echo "PermitUserEnvironment no"
  echo "StrictModes no"
  echo "UsePAM no"
  echo "PrintMotd no"
  echo "PrintLastLog no"
  echo "X11Forwarding no"
  # Loopback only, so no post-quantum hybrid key exchange (OpenSSH's default,
  # sntrup761x25519: it guards recorded traffic against a future quantum computer,
  # which loopback traffic never meets). It costs ~60 ms of CPU per connection on each
  # side, and a launch of many nodes opens one connection per node at once.
  echo "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org"
  echo "MaxStartups 100:30:200"
  echo "MaxSessions 100"
  # SHLVL=1: the user's login shell, which sshd uses to run the ForceCommand,
  # then counts as nested and does not source the real ~/.bashrc (bash does that
  # for sshd sessions: slow, may print, and would break rsync/sftp).
  echo "SetEnv SKYTERRA_NODE_ID=$dir SHLVL=1"
  echo "ForceCommand $dir/session.sh"
  [[ -n $sftp_server ]] && echo "Subsystem sftp $sftp_server"
  echo "LogLevel INFO"
} >"$dir/sshd_config"

# As root, sshd needs its privilege-separation directory (`sshd -t` names it).
if ! out=$("$sshd" -t -f "$dir/sshd_config" 2>&1); then
  if ((EUID == 0)) && [[ $out =~ Missing\ privilege\ separation\ directory:\ ([^[:space:]]+) ]]; then
    mkdir -p -m 0755 -- "${BASH_REMATCH[1]}"
    out=$("$sshd" -t -f "$dir/sshd_config" 2>&1) || fail "sshd -t rejects the configuration: $out"
  else
    fail "sshd -t rejects the configuration: $out"
  fi
fi

fi # restart

# Start in its own session, with a clean environment that carries the node
# marker (sshd passes it to its per-connection processes). All fds point away
# from Terraform's pipes, or local-exec would wait for sshd to exit.
# setsid, bash node-root.sh and chroot all exec: $! ends up as sshd, or (own
# filesystem) as `unshare`, whose only child is sshd, PID 1 of the node.
: >"$dir/sshd.log"
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SKYTERRA_NODE_ID="$dir" ${TZ:+TZ="$TZ"} \
  "$setsid_bin" "${launcher[@]}" "$sshd" -D -f "$dir/sshd_config" -E "$dir/sshd.log" \
  </dev/null >/dev/null 2>&1 &
pid=$!

wait_for_host_key "$pid"
if ((isolated)); then
  child=$(child_of "$pid") || child=""
  [[ $child =~ ^[0-9]+$ ]] && grep -qzF -- "$dir/sshd_config" "/proc/$child/cmdline" 2>/dev/null \
    || fail "cannot find the node's sshd (child of unshare pid $pid)"
  printf '%s\n' "$child" >"$dir/sshd.pid"
  pid=$child
fi
# TEST ONLY: a node that takes a while to "boot", so tests can interrupt an apply.
if [[ ${SKYTERRA_BOOT_DELAY:-0} != 0 ]]; then
  sleep "$SKYTERRA_BOOT_DELAY"
fi
rm -f -- "$dir/stopped"
created=0
if ((isolated)); then
  say "up (sshd pid $pid, home $dir/home, own filesystem: writes land in $dir/fs)"
else
  say "up (sshd pid $pid, home $dir/home, host filesystem shared: not root)"
fi
