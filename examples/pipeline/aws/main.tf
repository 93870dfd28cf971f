# A pipeline's own Terraform root on AWS that creates the training nodes through the
# module `skyterra render --cloud aws --no-provider --out train` wrote into ./train.
#
# The root owns what a child module must not have: the provider configuration (so the
# module can be called with count, for_each or depends_on) and the state backend. It
# also owns the SSH ingress: `skyterra render` leaves ssh_cidrs to the caller.
#
#   terraform init && terraform plan -var 'ssh_cidrs=["203.0.113.7/32"]' -out plan.tfplan
#   terraform apply plan.tfplan && terraform output -json > outputs.json
#   skyterra attach train --from-outputs outputs.json

terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}

variable "ssh_cidrs" {
  type        = list(string)
  description = "Addresses allowed to SSH to the nodes, e.g. your CI runner's /32."
}

variable "training_enabled" {
  type        = bool
  description = "Whether the training cluster exists (count = 0 tears it down)."
  default     = true
}

locals {
  train = jsondecode(file("${path.module}/train/terraform.tfvars.json"))
}

provider "aws" {
  region = local.train.region
}

module "train" {
  source = "./train"
  count  = var.training_enabled ? 1 : 0

  ssh_cidrs = var.ssh_cidrs

  associate_public_ip  = local.train.associate_public_ip
  cluster_name         = local.train.cluster_name
  disk_iops            = local.train.disk_iops
  disk_size            = local.train.disk_size
  disk_throughput      = local.train.disk_throughput
  image_id             = local.train.image_id
  image_ssm_parameter  = local.train.image_ssm_parameter
  instance_type        = local.train.instance_type
  labels               = local.train.labels
  num_nodes            = local.train.num_nodes
  placement_group      = local.train.placement_group
  port_cidrs           = local.train.port_cidrs
  ports                = local.train.ports
  region               = local.train.region
  ssh_private_key_path = local.train.ssh_private_key_path
  ssh_public_key       = local.train.ssh_public_key
  ssh_user             = local.train.ssh_user
  subnet_id            = local.train.subnet_id
  vpc_id               = local.train.vpc_id
  zone                 = local.train.zone
}

# What `skyterra attach` reads (node_ips head first, ssh_user, key).
output "node_ips" {
  description = "Public address of every node, head first."
  value       = try(module.train[0].node_ips, [])
}

output "node_private_ips" {
  description = "Private address of every node, head first."
  value       = try(module.train[0].node_private_ips, [])
}

output "ssh_user" {
  description = "Login user of every node."
  value       = try(module.train[0].ssh_user, null)
}

output "ssh_private_key_path" {
  description = "Private key that logs in to every node."
  value       = try(module.train[0].ssh_private_key_path, null)
}
