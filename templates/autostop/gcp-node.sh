# skyterra autostop, GCP: stop = a guest shutdown, which Compute Engine turns into
# a stopped (TERMINATED) instance, disks kept. down = the node deletes itself through
# the compute API with its service account's token from the metadata server (the
# module binds roles/compute.instanceAdmin.v1 on this cluster's instances only); no
# key is stored on the node. Without that account (autodown set after launch) the
# node shuts down instead and the next `skyterra status` deletes what is left.
md=http://metadata.google.internal/computeMetadata/v1
get() { curl -sf -m 10 -H 'Metadata-Flavor: Google' "$md/$1"; }
if [ "${SKYTERRA_AUTOSTOP_ACTION:-stop}" = down ]; then
  token=$(get instance/service-accounts/default/token \
    | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')
  project=$(get project/project-id)
  zone=$(get instance/zone)
  zone=${zone##*/}
  name=$(get instance/name)
  url="https://compute.googleapis.com/compute/v1/projects/$project/zones/$zone/instances/$name"
  # The token goes to curl on stdin (-K -), never on a command line.
  if [ -n "$token" ] && printf 'header = "Authorization: Bearer %s"\n' "$token" \
      | curl -sf -m 30 -K - -X DELETE "$url" >/dev/null; then
    echo "$(date +%s) gcp: down: deleting instance $name"
    exit 0
  fi
  echo "$(date +%s) gcp: down: the compute API refused the delete of $name; shutting down"
fi
echo "$(date +%s) gcp: ${SKYTERRA_AUTOSTOP_ACTION:-stop}: shutdown -h now"
sudo -n shutdown -h now || shutdown -h now
