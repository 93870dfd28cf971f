# N "nodes" on this machine. Node k is a real `sshd -D` bound to
# cidrhost(subnet_cidr, k + 2):ssh_port with its own host key, the cluster's
# authorized key and its own home directory <nodes_dir>/<cluster_name>-<k>/home.
#
# Every value reaches the scripts through `environment` (never through the
# command string): `interpreter` is an argv list, so no shell parses anything.
#
# A node's whole description is its `input`, and the same object is
# `triggers_replace`: a changed node is replaced (create-time provisioners do not
# run on in-place updates), an unchanged one is left alone. The description does
# not contain num_nodes, so scaling 2 -> 3 only adds node 2.

locals {
  nodes_dir = trimsuffix(var.nodes_dir, "/")

  # Only the node_env keys travel in one variable (they are validated names);
  # each value travels in its own environment variable.
  node_env_keys = join(" ", sort(keys(var.node_env)))

  nodes = [
    for k in range(var.num_nodes) : {
      cluster        = var.cluster_name
      index          = tostring(k)
      name           = k == 0 ? "${var.cluster_name}-head" : "${var.cluster_name}-worker${k}"
      id             = "${var.cluster_name}-${k}"
      dir            = "${local.nodes_dir}/${var.cluster_name}-${k}"
      ip             = cidrhost(var.subnet_cidr, k + 2)
      ssh_port       = tostring(var.ssh_port)
      ssh_user       = var.ssh_user
      ssh_public_key = trimspace(var.ssh_public_key)
      # The module's bin/ first: the simulated nvidia-smi and dmesg of the GPU check.
      node_path = "${abspath(path.module)}/bin:${var.node_path}"
      node_env  = var.node_env
      zone      = var.zone
    }
  ]

  zone_unavailable = contains(var.unavailable_zones, var.zone)
}

resource "terraform_data" "node" {
  count = var.num_nodes

  input            = local.nodes[count.index]
  triggers_replace = local.nodes[count.index]

  lifecycle {
    precondition {
      # Node k uses host number k + 2; the last usable one is 2^(32-prefix) - 2.
      condition     = var.num_nodes + 2 <= pow(2, 32 - tonumber(split("/", var.subnet_cidr)[1])) - 1
      error_message = "The subnet_cidr is too small for num_nodes nodes (node k uses host number k + 2)."
    }
  }

  provisioner "local-exec" {
    interpreter = ["bash"]
    command     = "${path.module}/scripts/node-up.sh"
    environment = merge(
      {
        for k, v in self.input.node_env : "SKYTERRA_NODE_ENV__${k}" => v
      },
      {
        SKYTERRA_CLUSTER          = self.input.cluster
        SKYTERRA_NODE_INDEX       = self.input.index
        SKYTERRA_NODE_NAME        = self.input.name
        SKYTERRA_NODE_DIR         = self.input.dir
        SKYTERRA_NODE_IP          = self.input.ip
        SKYTERRA_SSH_PORT         = self.input.ssh_port
        SKYTERRA_SSH_USER         = self.input.ssh_user
        SKYTERRA_SSH_PUBLIC_KEY   = self.input.ssh_public_key
        SKYTERRA_NODE_PATH        = self.input.node_path
        SKYTERRA_NODE_ENV_KEYS    = local.node_env_keys
        SKYTERRA_ZONE             = self.input.zone
        SKYTERRA_ZONE_UNAVAILABLE = local.zone_unavailable ? "1" : "0"
        SKYTERRA_BOOT_DELAY       = tostring(var.boot_delay_seconds)
        # Not part of a node's description (input): a new relay key does not replace nodes.
        SKYTERRA_RELAY_KEY  = var.relay_public_key
        SKYTERRA_RELAY_FROM = cidrhost(var.subnet_cidr, 2)
      },
    )
  }

  # Destroy-time provisioners may only reference self. node-down.sh succeeds
  # when the node is already gone, so destroying twice works. (Terraform skips
  # this for tainted resources: node-up.sh cleans up after a failed create.)
  provisioner "local-exec" {
    when        = destroy
    interpreter = ["bash"]
    command     = "${path.module}/scripts/node-down.sh"
    environment = {
      SKYTERRA_NODE_NAME = self.output.name
      SKYTERRA_NODE_DIR  = self.output.dir
      SKYTERRA_NODE_IP   = self.output.ip
      SKYTERRA_SSH_PORT  = self.output.ssh_port
    }
  }
}

# Power state of every node (stop/start): `nodes_running` is a value in the
# tfvars, so stopping is a plan like any other and a second plan shows no drift.
# Changing it replaces this small resource, whose create-time provisioner then
# stops the node (node-down.sh with SKYTERRA_NODE_KEEP=1: every process ends,
# home and filesystem layer stay) or starts it again (node-up.sh restarts the
# sshd of a stopped node with its own host key; a running node is left alone).
resource "terraform_data" "power" {
  count = var.num_nodes

  input            = { running = var.nodes_running, dir = terraform_data.node[count.index].output.dir }
  triggers_replace = { running = var.nodes_running, node = terraform_data.node[count.index].id }

  provisioner "local-exec" {
    interpreter = ["bash"]
    command     = "${path.module}/scripts/${self.input.running ? "node-up.sh" : "node-down.sh"}"
    environment = merge(
      {
        for k, v in terraform_data.node[count.index].output.node_env : "SKYTERRA_NODE_ENV__${k}" => v
      },
      {
        SKYTERRA_NODE_KEEP        = "1"
        SKYTERRA_CLUSTER          = terraform_data.node[count.index].output.cluster
        SKYTERRA_NODE_INDEX       = terraform_data.node[count.index].output.index
        SKYTERRA_NODE_NAME        = terraform_data.node[count.index].output.name
        SKYTERRA_NODE_DIR         = terraform_data.node[count.index].output.dir
        SKYTERRA_NODE_IP          = terraform_data.node[count.index].output.ip
        SKYTERRA_SSH_PORT         = terraform_data.node[count.index].output.ssh_port
        SKYTERRA_SSH_USER         = terraform_data.node[count.index].output.ssh_user
        SKYTERRA_SSH_PUBLIC_KEY   = terraform_data.node[count.index].output.ssh_public_key
        SKYTERRA_NODE_PATH        = terraform_data.node[count.index].output.node_path
        SKYTERRA_NODE_ENV_KEYS    = local.node_env_keys
        SKYTERRA_ZONE             = terraform_data.node[count.index].output.zone
        SKYTERRA_ZONE_UNAVAILABLE = "0"
      },
    )
  }
}
