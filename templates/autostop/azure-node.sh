# skyterra autostop, Azure: a guest shutdown does not deallocate a VM (Azure keeps
# billing it), so the node asks ARM itself: deallocate (autostop) or delete
# (autodown) its own VM, or its instance of the cluster's scale set. The token is
# the user-assigned managed identity's, from IMDS (the module gives that identity
# Virtual Machine Contributor on this cluster's VMs only); no key is stored on the node.
imds=http://169.254.169.254/metadata
q() { curl -sf -m 10 -H Metadata:true "$imds/$1"; }
compute=$(q "instance/compute?api-version=2021-02-01")
field() { printf '%s' "$compute" | sed -n "s/.*\"$1\" *: *\"\([^\"]*\)\".*/\1/p"; }
sub=$(field subscriptionId)
group=$(field resourceGroupName)
name=$(field name)
vmss=$(field vmScaleSetName)
token=$(q "identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F" \
  | sed -n 's/.*"access_token" *: *"\([^"]*\)".*/\1/p')
base="https://management.azure.com/subscriptions/$sub/resourceGroups/$group/providers/Microsoft.Compute"
if [ -n "$vmss" ]; then
  target="$base/virtualMachineScaleSets/$vmss/virtualMachines/${name##*_}"
else
  target="$base/virtualMachines/$name"
fi
if [ "${SKYTERRA_AUTOSTOP_ACTION:-stop}" = down ]; then
  method=DELETE url="$target?api-version=2024-07-01"
else
  method=POST url="$target/deallocate?api-version=2024-07-01"
fi
echo "$(date +%s) azure: ${SKYTERRA_AUTOSTOP_ACTION:-stop}: $method $name"
# The token goes to curl on stdin (-K -), never on a command line.
if [ -n "$token" ] && printf 'header = "Authorization: Bearer %s"\n' "$token" \
    | curl -sf -m 60 -K - -X "$method" -H 'Content-Length: 0' "$url" >/dev/null; then
  exit 0
fi
echo "$(date +%s) azure: ARM refused; shutting down (the VM stays allocated until deallocated)"
sudo -n shutdown -h now || shutdown -h now
