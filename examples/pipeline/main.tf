# A pipeline's Terraform root that creates the training nodes through the
# module `skyterra render` wrote into ./train (see README.md). skyterra is not
# needed to plan or apply this root: it only attaches to the outputs afterwards.
#
# A child module does not read its own terraform.tfvars.json, so the root reads
# it and passes every value on. This block matches the local cloud's module;
# for aws/gcp/azure, copy the module block from train/README.md.

terraform {
  required_version = ">= 1.4"
}

locals {
  train = jsondecode(file("${path.module}/train/terraform.tfvars.json"))
}

module "train" {
  source = "./train"

  cluster_name         = local.train.cluster_name
  num_nodes            = local.train.num_nodes
  subnet_cidr          = local.train.subnet_cidr
  ssh_port             = local.train.ssh_port
  ssh_user             = local.train.ssh_user
  ssh_public_key       = local.train.ssh_public_key
  ssh_private_key_path = local.train.ssh_private_key_path
  nodes_dir            = local.train.nodes_dir
  node_path            = local.train.node_path
  node_env             = local.train.node_env
  zone                 = local.train.zone
}

# What `skyterra attach` reads (node_ips head first, ssh_user, key, port).
output "node_ips" {
  description = "Address of every node, head first."
  value       = module.train.node_ips
}

output "node_private_ips" {
  description = "Address other nodes reach each node on, head first."
  value       = module.train.node_private_ips
}

output "instance_ids" {
  description = "Node ids, head first."
  value       = module.train.instance_ids
}

output "ssh_user" {
  description = "Login user of every node."
  value       = module.train.ssh_user
}

output "ssh_port" {
  description = "SSH port of every node."
  value       = module.train.ssh_port
}

output "ssh_private_key_path" {
  description = "Private key that logs in to every node."
  value       = module.train.ssh_private_key_path
}

output "zone" {
  description = "Zone of the nodes."
  value       = module.train.zone
}
