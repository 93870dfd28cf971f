# Every value of the module arrives through terraform.tfvars.json (written by
# skyterra.clouds.azure). main.tf only ever refers to these variables, so no
# user string is ever parsed as HCL.
#
# Validations only refer to their own variable (cross-variable validation needs
# Terraform >= 1.9).

variable "cluster_name" {
  type        = string
  description = "Cluster name; the resource group is skyterra-<cluster_name>, virtual machines <cluster_name>-<k>."

  validation {
    condition     = can(regex("^[a-z]([-a-z0-9]{0,38}[a-z0-9])?$", var.cluster_name))
    error_message = "The cluster_name must be 1-40 characters of lowercase letters, digits and '-', start with a letter and not end with '-'."
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

variable "subscription_id" {
  type        = string
  description = "Azure subscription id. null: the provider reads ARM_SUBSCRIPTION_ID from the environment (azurerm 4.x needs one or the other)."
  default     = null

  validation {
    condition     = var.subscription_id == null || can(regex("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$", var.subscription_id))
    error_message = "The subscription_id must be a subscription GUID such as \"00000000-0000-0000-0000-000000000000\"."
  }
}

variable "location" {
  type        = string
  description = "Azure region of every resource, e.g. \"eastus\"."

  validation {
    condition     = can(regex("^[a-z][a-z0-9]+$", var.location))
    error_message = "The location must be an Azure region name such as \"eastus\" (lowercase, no spaces)."
  }
}

variable "zone" {
  type        = string
  description = "Availability zone (\"1\", \"2\" or \"3\") of every node. null: no zone (regional placement)."
  default     = null

  validation {
    condition     = var.zone == null || can(regex("^[1-3]$", var.zone))
    error_message = "The zone must be \"1\", \"2\", \"3\" or null."
  }
}

variable "vm_size" {
  type        = string
  description = "VM size of every node, e.g. \"Standard_NC24ads_A100_v4\", \"Standard_ND96isr_H100_v5\", \"Standard_NC4as_T4_v3\"."

  validation {
    condition     = can(regex("^Standard_[A-Za-z0-9_-]+$", var.vm_size))
    error_message = "The vm_size must be an Azure VM size such as \"Standard_NC24ads_A100_v4\"."
  }
}

variable "accelerated_networking" {
  type        = bool
  description = "Enable accelerated networking (SR-IOV) on every NIC; every NC/ND/NV GPU size of the current generations supports it."
  default     = true
}

variable "os_disk_size_gb" {
  type        = number
  description = "OS disk size in GB; at least the image's size (the Ubuntu HPC image needs about 64 GB)."
  default     = 256

  validation {
    condition     = var.os_disk_size_gb >= 30 && var.os_disk_size_gb <= 4095 && floor(var.os_disk_size_gb) == var.os_disk_size_gb
    error_message = "The os_disk_size_gb must be a whole number from 30 to 4095."
  }
}

variable "os_disk_type" {
  type        = string
  description = "Storage account type of the OS disk: Premium_LRS for sizes with premium storage (an 's' in the size name), StandardSSD_LRS otherwise."
  default     = "Premium_LRS"

  validation {
    condition     = contains(["Standard_LRS", "StandardSSD_LRS", "Premium_LRS", "StandardSSD_ZRS", "Premium_ZRS"], var.os_disk_type)
    error_message = "The os_disk_type must be one of Standard_LRS, StandardSSD_LRS, Premium_LRS, StandardSSD_ZRS, Premium_ZRS."
  }
}

variable "image" {
  type = object({
    publisher = string
    offer     = string
    sku       = string
    version   = optional(string, "latest")
  })
  description = "Marketplace image of the nodes (source_image_reference). Default: microsoft-dsvm ubuntu-hpc 2204 (NVIDIA driver, CUDA, NCCL and InfiniBand drivers installed). Ignored when image_id is set."
  default = {
    publisher = "microsoft-dsvm"
    offer     = "ubuntu-hpc"
    sku       = "2204"
    version   = "latest"
  }

  validation {
    condition = alltrue([
      for part in [var.image.publisher, var.image.offer, var.image.sku, var.image.version] :
      can(regex("^[A-Za-z0-9][A-Za-z0-9._-]*$", part))
    ])
    error_message = "The image publisher, offer, sku and version must be plain names such as \"microsoft-dsvm\", \"ubuntu-hpc\", \"2204\", \"latest\"."
  }
}

variable "image_id" {
  type        = string
  description = "Resource id of a custom, shared-gallery or community-gallery image (source_image_id), from the task's image_id. null: use image."
  default     = null

  validation {
    condition     = var.image_id == null || can(regex("^/[A-Za-z0-9/._-]+$", var.image_id))
    error_message = "The image_id must be an Azure image resource id such as \"/subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Compute/images/<name>\"."
  }
}

variable "address_space" {
  type        = string
  description = "Address space of the cluster's own virtual network and its single subnet (when subnet_id is null)."
  default     = "10.42.0.0/16"

  validation {
    condition     = can(cidrhost(var.address_space, 0)) && tonumber(split("/", var.address_space)[1]) <= 26
    error_message = "The address_space must be an IPv4 CIDR with a prefix length of at most /26, e.g. \"10.42.0.0/16\"."
  }
}

variable "subnet_id" {
  type        = string
  description = "Resource id of an existing subnet for the nodes (in location). null: the module creates a virtual network and subnet."
  default     = null

  validation {
    condition     = var.subnet_id == null || can(regex("^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft.Network/virtualNetworks/[^/]+/subnets/[^/]+$", var.subnet_id))
    error_message = "The subnet_id must be a subnet resource id: /subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.Network/virtualNetworks/<vnet>/subnets/<subnet>."
  }
}

variable "ssh_user" {
  type        = string
  description = "Admin user of every node; the cluster key is its authorized key."

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_-]{0,31}$", var.ssh_user)) && !contains(["root", "admin", "administrator", "user", "test", "guest"], var.ssh_user)
    error_message = "The ssh_user must be a lowercase Linux user name of at most 32 characters that Azure allows as an admin name (not root, admin, user, test, guest, ...)."
  }
}

variable "ssh_public_key" {
  type        = string
  description = "OpenSSH public key of the cluster (ssh-ed25519, or ssh-rsa of at least 2048 bits: what Azure accepts)."

  validation {
    condition = (
      length(split("\n", trimspace(var.ssh_public_key))) == 1
      && can(regex("^(ssh-ed25519|ssh-rsa) [A-Za-z0-9+/]+={0,3}( [^\r]*)?$", trimspace(var.ssh_public_key)))
    )
    error_message = "The ssh_public_key must be a single-line ssh-ed25519 or ssh-rsa OpenSSH public key (Azure accepts no other key type)."
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

variable "tags" {
  type        = map(string)
  description = "Tags of the task (resources.labels), put on every resource; skyterra adds skyterra-cluster = cluster_name."
  default     = {}

  validation {
    condition = alltrue([
      for key, value in var.tags :
      length(key) <= 512 && length(value) <= 256 && length(regexall("[<>%&\\\\?/]", key)) == 0
    ]) && length(var.tags) <= 49
    error_message = "Azure tags: keys of at most 512 characters without < > % & \\ ? /, values of at most 256 characters, at most 49 tags."
  }
}

variable "custom_data" {
  type        = string
  description = "Script (or cloud-init config) run by cloud-init at first boot; skyterra's prepares the node (installs uv). Empty: none."
  default     = ""

  validation {
    condition     = length(base64encode(var.custom_data)) <= 87380
    error_message = "The custom_data must be at most 65535 bytes (Azure's limit for custom data)."
  }
}
