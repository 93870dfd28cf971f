# Values arrive only through terraform.tfvars.json. They reach the node scripts
# through the provisioners' environment maps, never through a shell string.
#
# Validations only refer to their own variable (cross-variable validation needs
# Terraform >= 1.9); checks that involve two variables are preconditions in main.tf.

variable "cluster_name" {
  type        = string
  description = "Cluster name; prefixes node names and node directory names."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$", var.cluster_name))
    error_message = "The cluster_name must be 1-63 characters of lowercase letters, digits and '-', start with a letter and not end with '-'."
  }
}

variable "num_nodes" {
  type        = number
  description = "Number of nodes; node 0 is the head."

  validation {
    condition     = var.num_nodes >= 1 && var.num_nodes <= 512 && floor(var.num_nodes) == var.num_nodes
    error_message = "The num_nodes must be a whole number from 1 to 512."
  }
}

variable "subnet_cidr" {
  type        = string
  description = "Loopback range of the cluster, e.g. \"127.88.3.0/24\"; node k listens on cidrhost(subnet_cidr, k + 2). Each concurrent cluster needs its own range."

  validation {
    condition = (
      can(cidrhost(var.subnet_cidr, 0))
      && can(regex("^127\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}/([89]|[12][0-9]|30)$", var.subnet_cidr))
    )
    error_message = "The subnet_cidr must be an IPv4 CIDR inside 127.0.0.0/8 with a prefix length from /8 to /30, e.g. \"127.88.3.0/24\"."
  }
}

variable "ssh_port" {
  type        = number
  description = "Port every node's sshd listens on (each node has its own address). 22 when run as root; a port above 1024 otherwise (node-up.sh checks)."

  validation {
    condition     = var.ssh_port >= 1 && var.ssh_port <= 65535 && floor(var.ssh_port) == var.ssh_port
    error_message = "The ssh_port must be a whole number from 1 to 65535."
  }
}

variable "ssh_user" {
  type        = string
  description = "Login user of the nodes: \"root\" when run as root, otherwise the invoking user (an unprivileged sshd can only log in its own user; node-up.sh checks)."

  validation {
    condition     = can(regex("^[A-Za-z_][A-Za-z0-9._-]{0,31}$", var.ssh_user))
    error_message = "The ssh_user must be a plain user name (letters, digits, '.', '_', '-'; at most 32 characters)."
  }
}

variable "ssh_public_key" {
  type        = string
  description = "OpenSSH public key (one line, \"<type> <base64> [comment]\") authorized on every node."

  validation {
    condition = (
      length(split("\n", trimspace(var.ssh_public_key))) == 1
      && can(regex("^(ssh-[a-z0-9]+|ecdsa-sha2-nistp[0-9]+|sk-[-a-z0-9@.]+) [A-Za-z0-9+/]+={0,3}( [^\r]*)?$", trimspace(var.ssh_public_key)))
    )
    error_message = "The ssh_public_key must be a single-line OpenSSH public key such as \"ssh-ed25519 AAAA... comment\" (no key options)."
  }
}

variable "ssh_private_key_path" {
  type        = string
  description = "Path of the cluster's private key; not used by the module, only echoed in the outputs."

  validation {
    condition     = length(var.ssh_private_key_path) > 0
    error_message = "The ssh_private_key_path must not be empty."
  }
}

variable "nodes_dir" {
  type        = string
  description = "Absolute directory under which node k lives in <nodes_dir>/<cluster_name>-<k> (sshd config, host key, logs, home/)."

  validation {
    # The path ends up in sshd_config and in the ForceCommand line: keep it to
    # characters that need no quoting there (no spaces, quotes, '%', '#', '$').
    condition = (
      can(regex("^(/[A-Za-z0-9._+@,:=-]+)+/?$", var.nodes_dir))
      && !can(regex("(^|/)\\.\\.?(/|$)", var.nodes_dir))
    )
    error_message = "The nodes_dir must be an absolute path without '.' or '..' components, made of letters, digits and ._+@,:=- only."
  }
}

variable "node_path" {
  type        = string
  description = "PATH of every session on the nodes (sshd resets PATH otherwise), so that nodes see the caller's python/torchrun."

  validation {
    condition     = length(var.node_path) > 0 && length(regexall("[\n\r]", var.node_path)) == 0
    error_message = "The node_path must be a non-empty single-line PATH value."
  }
}

variable "node_env" {
  type        = map(string)
  description = "Extra environment variables of every session on every node (e.g. GLOO_SOCKET_IFNAME = \"lo\")."
  default     = {}

  validation {
    condition = alltrue([
      for k in keys(var.node_env) :
      can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k)) && !contains(["HOME", "PATH", "SKYTERRA_NODE_ID"], k)
    ])
    error_message = "The node_env keys must be shell variable names (letters, digits, '_', not starting with a digit) other than HOME, PATH and SKYTERRA_NODE_ID (those are set by the module)."
  }
}

variable "zone" {
  type        = string
  description = "Name of the (simulated) zone the nodes are in."
  default     = "local-a"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$", var.zone))
    error_message = "The zone must be lowercase letters, digits and '-', e.g. \"local-a\"."
  }
}

variable "unavailable_zones" {
  type        = list(string)
  description = "TEST ONLY capacity simulation: when zone is listed here, creating any node fails with an InsufficientInstanceCapacity error and leaves nothing behind."
  default     = []
}

variable "boot_delay_seconds" {
  type        = number
  description = "TEST ONLY: seconds each node waits after its sshd is up before the create completes (a slow boot), so tests can interrupt an apply."
  default     = 0

  validation {
    condition     = var.boot_delay_seconds >= 0 && var.boot_delay_seconds <= 600
    error_message = "The boot_delay_seconds must be from 0 to 600."
  }
}

variable "nodes_running" {
  type        = bool
  description = "false stops every node (all its processes end; its home and filesystem layer are kept); true starts them again (skyterra stop / start)."
  default     = true
}

variable "relay_public_key" {
  type        = string
  description = "The cluster's relay key (OpenSSH ed25519 public key, one line), authorized on the workers from the head's address only, so that the head can fan commands out to them. Empty: none."
  default     = ""

  validation {
    condition     = var.relay_public_key == "" || can(regex("^ssh-ed25519 [A-Za-z0-9+/]+={0,3}( [A-Za-z0-9._@-]+)?$", var.relay_public_key))
    error_message = "The relay_public_key must be empty or a single-line ssh-ed25519 public key (\"ssh-ed25519 AAAA... comment\")."
  }
}
