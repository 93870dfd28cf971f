# skyterra autostop, AWS: the node shuts itself down. The instance's
# instance_initiated_shutdown_behavior (set by the module: "stop" for autostop,
# "terminate" for autodown) makes EC2 stop or terminate it; no AWS key is needed.
echo "$(date +%s) aws: ${SKYTERRA_AUTOSTOP_ACTION:-stop}: shutdown -h now"
sudo -n shutdown -h now || shutdown -h now
