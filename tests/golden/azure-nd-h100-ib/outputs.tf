# Node 0 is the head: every list below is in node order, head first.

output "node_ips" {
  description = "Public IPv4 address of every node, head first."
  value       = local.node_public_ips
}

output "node_private_ips" {
  description = "Private (virtual network) IPv4 address of every node, head first."
  value       = local.node_private_ips
}

output "node_names" {
  description = "Virtual machine name of every node, head first."
  value       = local.node_names
}

output "instance_ids" {
  description = "Azure resource id of every node's virtual machine (a scale set instance's VM id with InfiniBand), head first."
  value       = local.instance_ids
}

output "ssh_user" {
  description = "Admin user whose authorized key is the cluster key."
  value       = var.ssh_user
}

output "resource_group" {
  description = "Resource group that holds every resource of the cluster."
  value       = azurerm_resource_group.cluster.name
}

output "location" {
  description = "Azure region of the cluster."
  value       = var.location
}
