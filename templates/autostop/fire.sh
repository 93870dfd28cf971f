#!/usr/bin/env bash
# What the head's watcher (watcher.sh) execs when a cloud cluster has been idle
# long enough: every worker runs its node action (over SSH with the autostop key,
# which each worker accepts only from the head's address and only for that
# command), then the head runs its own. The node action is the cloud's
# (templates/autostop/<cloud>-node.sh): a guest shutdown, or a call to the
# cloud's API with the node's own identity. Values come from env.sh:
#   SKYTERRA_AUTOSTOP_WORKERS   private IPs of the workers (space-separated)
#   SKYTERRA_AUTOSTOP_HEAD_IP   the head's private IP (the address workers accept)
#   SKYTERRA_AUTOSTOP_SSH_USER / SKYTERRA_AUTOSTOP_SSH_PORT
set -u
cd "$HOME" || exit 1
d=.skyterra/autostop
for ip in $SKYTERRA_AUTOSTOP_WORKERS; do
  timeout 120 ssh -F /dev/null -i "$d/id_ed25519" -b "$SKYTERRA_AUTOSTOP_HEAD_IP" \
    -p "$SKYTERRA_AUTOSTOP_SSH_PORT" -o BatchMode=yes -o IdentitiesOnly=yes \
    -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile="$d/known_hosts" \
    -o GlobalKnownHostsFile=/dev/null -o ConnectTimeout=20 -o LogLevel=ERROR \
    "$SKYTERRA_AUTOSTOP_SSH_USER@$ip" "bash $d/node-action.sh" </dev/null \
    >>"$d/fire.log" 2>&1 &
done
wait
echo "$(date +%s) workers done; head: node action" >>"$d/fire.log"
exec bash "$d/node-action.sh" >>"$d/fire.log" 2>&1 </dev/null
