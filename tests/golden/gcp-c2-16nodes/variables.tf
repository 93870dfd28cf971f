# Every value of the module arrives through terraform.tfvars.json (written by
# skyterra.clouds.gcp). main.tf only ever refers to these variables, so no user
# string is ever parsed as HCL.
#
# Validations only refer to their own variable (cross-variable validation needs
# Terraform >= 1.9).

variable "cluster_name" {
  type        = string
  description = "Cluster name; prefixes every resource name (instances <cluster_name>-<k>, firewall rules and the placement policy skyterra-<cluster_name>-*)."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.cluster_name))
    error_message = "The cluster_name must be 1-40 characters of lowercase letters, digits and '-', start with a letter and not end with '-' (GCP resource names are RFC 1035 labels of at most 63 characters, and skyterra adds prefixes and suffixes)."
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

variable "project" {
  type        = string
  description = "GCP project id. null: the provider reads GOOGLE_CLOUD_PROJECT (or GOOGLE_PROJECT, CLOUDSDK_CORE_PROJECT) from the environment."
  default     = null

  validation {
    condition     = var.project == null || can(regex("^[a-z][-a-z0-9:.]{4,61}[a-z0-9]$", var.project))
    error_message = "The project must be a GCP project id such as \"my-project-123\"."
  }
}

variable "region" {
  type        = string
  description = "Region of the cluster, e.g. \"us-central1\"; the placement policy lives here."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "The region must be a GCP region name such as \"us-central1\"."
  }
}

variable "zone" {
  type        = string
  description = "Zone every node is created in, e.g. \"us-central1-a\"."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+-[a-z]$", var.zone))
    error_message = "The zone must be a GCP zone name such as \"us-central1-a\"."
  }
}

variable "machine_type" {
  type        = string
  description = "Machine type of every node, e.g. \"g2-standard-48\" (L4 x4 built in) or \"n1-standard-8\" (GPUs attached with gpu_type/gpu_count)."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]*(-[a-z0-9]+)+$", var.machine_type))
    error_message = "The machine_type must be a GCP machine type name such as \"g2-standard-48\"."
  }
}

variable "gpu_type" {
  type        = string
  description = "Accelerator type attached through guest_accelerator (N1 machine types only), e.g. \"nvidia-tesla-t4\". null for machine types with built-in GPUs (A2, A3, G2) and CPU-only nodes."
  default     = null

  validation {
    condition     = var.gpu_type == null || can(regex("^nvidia-[a-z0-9-]+$", var.gpu_type))
    error_message = "The gpu_type must be a GCP accelerator type such as \"nvidia-tesla-t4\"."
  }
}

variable "gpu_count" {
  type        = number
  description = "Number of attached accelerators per node (with gpu_type); 0 when nothing is attached."
  default     = 0

  validation {
    condition     = contains([0, 1, 2, 4, 8], var.gpu_count)
    error_message = "The gpu_count must be 0, 1, 2, 4 or 8."
  }
}

variable "gpu_nic_count" {
  type        = number
  description = "Extra GPUDirect NICs per node, each in a VPC of its own (a3-highgpu-8g: 4 for TCPX, a3-megagpu-8g: 8 for TCPXO). Used only when skyterra rendered the module with GPUDirect NICs (network_tier best)."
  default     = 0

  validation {
    condition     = contains([0, 4, 8], var.gpu_nic_count)
    error_message = "The gpu_nic_count must be 0, 4 (GPUDirect-TCPX) or 8 (GPUDirect-TCPXO)."
  }
}

variable "gpu_nic_range" {
  type        = string
  description = "IPv4 range the GPUDirect subnets are cut from: one /(prefix+8) per GPU NIC, e.g. 10.200.0.0/16 gives 10.200.0.0/24, 10.200.1.0/24, ..."
  default     = "10.200.0.0/16"

  validation {
    condition     = can(cidrsubnet(var.gpu_nic_range, 8, 7)) && !strcontains(var.gpu_nic_range, ":") && try(tonumber(split("/", var.gpu_nic_range)[1]) <= 20, false)
    error_message = "The gpu_nic_range must be an IPv4 range of /20 or larger (each GPU NIC gets a /(prefix+8) of it), such as \"10.200.0.0/16\"."
  }
}

variable "spot_termination_action" {
  type        = string
  description = "What GCP does to a spot node it preempts: \"DELETE\" (default; the cluster is relaunched) or \"STOP\". Only used by spot clusters."
  default     = "DELETE"

  validation {
    condition     = contains(["DELETE", "STOP"], var.spot_termination_action)
    error_message = "The spot_termination_action must be \"DELETE\" or \"STOP\"."
  }
}

variable "disk_size_gb" {
  type        = number
  description = "Boot disk size in GB; must be at least the image's size (Deep Learning VM images need about 50 GB)."
  default     = 256

  validation {
    condition     = var.disk_size_gb >= 10 && var.disk_size_gb <= 65536 && floor(var.disk_size_gb) == var.disk_size_gb
    error_message = "The disk_size_gb must be a whole number from 10 to 65536."
  }
}

variable "disk_type" {
  type        = string
  description = "Boot disk type: pd-standard, pd-balanced, pd-ssd, or hyperdisk-balanced (required by A3 Ultra, A4 and other hyperdisk-only machine series)."
  default     = "pd-balanced"

  validation {
    condition     = contains(["pd-standard", "pd-balanced", "pd-ssd", "pd-extreme", "hyperdisk-balanced"], var.disk_type)
    error_message = "The disk_type must be one of pd-standard, pd-balanced, pd-ssd, pd-extreme, hyperdisk-balanced."
  }
}

variable "image" {
  type        = string
  description = "Boot image: a self link, projects/<p>/global/images/<name>, or an image family projects/<p>/global/images/family/<family>. skyterra uses a Deep Learning VM family (NVIDIA driver and CUDA installed) unless the task gives image_id."

  validation {
    condition     = length(trimspace(var.image)) > 0 && length(regexall("[\\s\"]", var.image)) == 0
    error_message = "The image must be a non-empty image name, family or self link without spaces or quotes."
  }
}

variable "network" {
  type        = string
  description = "VPC network of the nodes and of the firewall rules (name or self link). Give the subnetwork's network when subnetwork is set."
  default     = "default"

  validation {
    condition     = length(trimspace(var.network)) > 0
    error_message = "The network must not be empty."
  }
}

variable "subnetwork" {
  type        = string
  description = "Subnetwork of the nodes (name or self link, in the cluster's region). null: the network's auto-mode subnetwork."
  default     = null
}

variable "ssh_user" {
  type        = string
  description = "Login user created on every node by the guest agent from the ssh-keys metadata."

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user))
    error_message = "The ssh_user must be a lowercase Linux user name of at most 32 characters."
  }
}

variable "ssh_public_key" {
  type        = string
  description = "OpenSSH public key (one line, \"<type> <base64> [comment]\") of the cluster; written to the instance metadata as ssh-keys = \"<ssh_user>:<key>\"."

  validation {
    condition = (
      length(split("\n", trimspace(var.ssh_public_key))) == 1
      && can(regex("^(ssh-[a-z0-9]+|ecdsa-sha2-nistp[0-9]+|sk-[-a-z0-9@.]+) [A-Za-z0-9+/]+={0,3}( [^\r]*)?$", trimspace(var.ssh_public_key)))
    )
    error_message = "The ssh_public_key must be a single-line OpenSSH public key such as \"ssh-ed25519 AAAA... comment\"."
  }
}

variable "ssh_source_ranges" {
  type        = list(string)
  description = "CIDRs allowed to reach port 22 of the nodes: the caller's public address (skyterra detects it). Never the whole internet by default."

  validation {
    condition     = length(var.ssh_source_ranges) > 0 && alltrue([for cidr in var.ssh_source_ranges : can(cidrhost(cidr, 0))])
    error_message = "The ssh_source_ranges must list at least one CIDR such as \"203.0.113.7/32\" (the caller's public address)."
  }
}

variable "ports" {
  type        = list(string)
  description = "TCP ports or ranges (\"8080\", \"8000-8010\") the task opens on every node to port_source_ranges."
  default     = []

  validation {
    condition     = alltrue([for port in var.ports : can(regex("^[0-9]{1,5}(-[0-9]{1,5})?$", port))])
    error_message = "Each entry of ports must be a port (\"8080\") or a range (\"8000-8010\")."
  }
}

variable "port_source_ranges" {
  type        = list(string)
  description = "CIDRs allowed to reach the task's ports; skyterra uses the caller's address unless configured otherwise."
  default     = []

  validation {
    condition     = alltrue([for cidr in var.port_source_ranges : can(cidrhost(cidr, 0))])
    error_message = "Each entry of port_source_ranges must be a CIDR such as \"203.0.113.7/32\"."
  }
}

variable "labels" {
  type        = map(string)
  description = "Labels of the task (resources.labels), put on every instance and boot disk; skyterra adds skyterra-cluster = cluster_name."
  default     = {}

  validation {
    condition = alltrue([
      for key, value in var.labels :
      can(regex("^[\\p{Ll}][\\p{Ll}\\p{Lo}\\p{N}_-]{0,62}$", key)) && can(regex("^[\\p{Ll}\\p{Lo}\\p{N}_-]{0,63}$", value))
    ]) && length(var.labels) <= 63
    error_message = "GCP labels: keys start with a lowercase letter, keys and values use only lowercase letters, digits, '_' and '-', at most 63 characters each, at most 63 labels."
  }
}

variable "startup_script" {
  type        = string
  description = "Shell script run as root at every boot (metadata startup-script); skyterra's prepares the node (installs uv). Empty: none."
  default     = ""
}

variable "service_account" {
  type = object({
    email  = optional(string)
    scopes = optional(list(string), ["cloud-platform"])
  })
  description = "Service account of the nodes (null email: the project's default compute service account). null: the nodes run without a service account."
  default     = null
}

variable "nodes_running" {
  type        = bool
  description = "false stops every instance (desired_status TERMINATED: disks kept, compute not billed); true starts them again (skyterra stop / start)."
  default     = true
}
