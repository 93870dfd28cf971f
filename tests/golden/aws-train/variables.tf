# Values arrive only through terraform.tfvars.json (written by skyterra's
# clouds/aws.py), never pasted into HCL. Validations refer only to their own
# variable (cross-variable validation needs Terraform >= 1.9); checks that
# involve two variables are preconditions in main.tf.

# --- where ---------------------------------------------------------------------

variable "region" {
  type        = string
  description = "AWS region of the cluster, e.g. \"us-east-1\"."

  validation {
    condition     = can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+$", var.region))
    error_message = "The region must be an AWS region name such as \"us-east-1\"."
  }
}

variable "zone" {
  type        = string
  description = "Availability zone of every node, e.g. \"us-east-1a\"; null lets the module take the first suitable subnet of the region (sorted by id)."
  default     = null

  validation {
    condition     = var.zone == null || can(regex("^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-[0-9]+[a-z](-[a-z0-9-]+)?$", var.zone))
    error_message = "The zone must be an availability zone name such as \"us-east-1a\"."
  }
}

variable "vpc_id" {
  type        = string
  description = "VPC to launch in; null means the region's default VPC (then the zone's default subnet is used). Only read when no subnet_id is given."
  default     = null

  validation {
    condition     = var.vpc_id == null || can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "The vpc_id must look like \"vpc-0123456789abcdef0\"."
  }
}

variable "subnet_id" {
  type        = string
  description = "Subnet of every node; null picks one in vpc_id (or the default VPC) and zone."
  default     = null

  validation {
    condition     = var.subnet_id == null || can(regex("^subnet-[0-9a-f]{8,17}$", var.subnet_id))
    error_message = "The subnet_id must look like \"subnet-0123456789abcdef0\"."
  }
}

variable "associate_public_ip" {
  type        = bool
  description = "Whether every node gets a public IPv4 address; null follows the subnet's setting (default subnets give one). Set false for private subnets reached over VPN/peering (node_ips then holds private IPs), true for a custom subnet that does not map public IPs."
  default     = null
}

# --- what ----------------------------------------------------------------------

variable "cluster_name" {
  type        = string
  description = "Cluster name; prefixes the names of every resource (skyterra-<cluster_name>) and the node Name tags."

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

variable "instance_type" {
  type        = string
  description = "EC2 instance type of every node, e.g. \"g6.12xlarge\"."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]*\\.[a-z0-9-]+$", var.instance_type))
    error_message = "The instance_type must look like \"g6.12xlarge\" (family.size)."
  }
}

variable "placement_group" {
  type        = bool
  description = "Put the nodes in a `cluster` placement group (low-latency network between nodes) when num_nodes > 1. Some instance types (burstable t2/t3) do not support it."
  default     = true
}

variable "efa_interfaces" {
  type        = number
  description = "EFA interfaces per node, one per network card (0: none, one ordinary ENA interface). Used only when skyterra rendered the module with EFA (network_tier best on an EFA instance type): p4d.24xlarge 4, p5.48xlarge 32, p5en.48xlarge 16, p6-b200.48xlarge 8."
  default     = 0

  validation {
    condition     = var.efa_interfaces >= 0 && var.efa_interfaces <= 32 && floor(var.efa_interfaces) == var.efa_interfaces
    error_message = "The efa_interfaces must be a whole number from 0 to 32."
  }
}

variable "image_id" {
  type        = string
  description = "AMI of every node. null means the AMI named by image_ssm_parameter. Used only when skyterra rendered the module with a custom image."
  default     = null

  validation {
    condition     = var.image_id == null || can(regex("^ami-([0-9a-f]{8}|[0-9a-f]{17})$", var.image_id))
    error_message = "The image_id must look like \"ami-0123456789abcdef0\"."
  }
}

variable "image_ssm_parameter" {
  type        = string
  description = "Public SSM parameter that holds the AMI id when no image_id is given; by default the x86_64 Deep Learning Base OSS NVIDIA driver AMI (Ubuntu 22.04)."
  default     = "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"

  validation {
    condition     = can(regex("^/[A-Za-z0-9_./-]+$", var.image_ssm_parameter))
    error_message = "The image_ssm_parameter must be an SSM parameter path such as \"/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id\"."
  }
}

variable "disk_size" {
  type        = number
  description = "Root volume size of every node in GiB (gp3)."
  default     = 256

  validation {
    condition     = var.disk_size >= 8 && var.disk_size <= 16384 && floor(var.disk_size) == var.disk_size
    error_message = "The disk_size must be a whole number of GiB from 8 to 16384 (the gp3 limit)."
  }
}

variable "disk_iops" {
  type        = number
  description = "Provisioned IOPS of the gp3 root volume; null keeps the gp3 baseline (3000)."
  default     = null

  validation {
    condition     = var.disk_iops == null || (coalesce(var.disk_iops, 0) >= 3000 && coalesce(var.disk_iops, 0) <= 16000)
    error_message = "The disk_iops must be null or from 3000 to 16000 (gp3)."
  }
}

variable "disk_throughput" {
  type        = number
  description = "Throughput of the gp3 root volume in MiB/s; null keeps the gp3 baseline (125)."
  default     = null

  validation {
    condition     = var.disk_throughput == null || (coalesce(var.disk_throughput, 0) >= 125 && coalesce(var.disk_throughput, 0) <= 1000)
    error_message = "The disk_throughput must be null or from 125 to 1000 MiB/s (gp3)."
  }
}

variable "labels" {
  type        = map(string)
  description = "Task labels, added as tags to every resource (next to Name and skyterra-cluster)."
  default     = {}

  validation {
    condition = alltrue([
      for k, v in var.labels :
      length(k) >= 1 && length(k) <= 128 && length(v) <= 256 && !startswith(lower(k), "aws:")
      && !contains(["Name", "skyterra-cluster", "skyterra-node-rank"], k)
    ])
    error_message = "The labels must have keys of 1-128 characters (not starting with \"aws:\", not Name, skyterra-cluster or skyterra-node-rank) and values of at most 256 characters."
  }
}

# --- access --------------------------------------------------------------------

variable "ssh_user" {
  type        = string
  description = "Login user of the image: \"ubuntu\" for the Ubuntu Deep Learning AMI, \"ec2-user\" for Amazon Linux. The user data prepares this user's home."

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "The ssh_user must be a plain Linux user name (lowercase letters, digits, '_', '-'; at most 32 characters)."
  }
}

variable "ssh_public_key" {
  type        = string
  description = "OpenSSH public key (one line) of the cluster; imported as the EC2 key pair skyterra-<cluster_name>."

  validation {
    condition = (
      length(split("\n", trimspace(var.ssh_public_key))) == 1
      && can(regex("^(ssh-rsa|ssh-ed25519|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( [^\r]*)?$", trimspace(var.ssh_public_key)))
    )
    error_message = "The ssh_public_key must be a single-line OpenSSH RSA, ED25519 or ECDSA public key such as \"ssh-ed25519 AAAA... comment\" (EC2 imports no other types)."
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

variable "ssh_cidrs" {
  type        = list(string)
  description = "Addresses allowed to SSH to the nodes (port 22): the caller's public address as a /32 (IPv4) or /128 (IPv6). There is no default on purpose: never 0.0.0.0/0 unless asked for."

  validation {
    condition     = length(var.ssh_cidrs) > 0 && alltrue([for c in var.ssh_cidrs : can(cidrhost(c, 0))])
    error_message = "The ssh_cidrs must be a non-empty list of CIDR blocks such as [\"203.0.113.7/32\"]."
  }
}

variable "ports" {
  type = list(object({
    from_port = number
    to_port   = number
  }))
  description = "TCP port ranges opened to port_cidrs (the task's resources.ports)."
  default     = []

  validation {
    condition = alltrue([
      for p in var.ports :
      p.from_port >= 1 && p.from_port <= p.to_port && p.to_port <= 65535
      && floor(p.from_port) == p.from_port && floor(p.to_port) == p.to_port
    ])
    error_message = "The ports must be ranges with 1 <= from_port <= to_port <= 65535."
  }
}

variable "port_cidrs" {
  type        = list(string)
  description = "Addresses allowed to reach `ports`; null means the same as ssh_cidrs."
  default     = null

  validation {
    condition     = var.port_cidrs == null || alltrue([for c in coalesce(var.port_cidrs, []) : can(cidrhost(c, 0))])
    error_message = "The port_cidrs must be null or a list of CIDR blocks such as [\"203.0.113.0/24\"]."
  }
}

variable "nodes_running" {
  type        = bool
  description = "false stops every instance (EBS volumes kept, compute not billed); true starts them again (skyterra stop / start)."
  default     = true
}

