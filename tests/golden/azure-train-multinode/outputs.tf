# Node 0 is the head: every list below is in node order, head first.

output "node_ips" {
  description = "Public IPv4 address of every node, head first."
  value       = [for ip in azurerm_public_ip.node : ip.ip_address]
}

output "node_private_ips" {
  description = "Private (virtual network) IPv4 address of every node, head first."
  value       = [for nic in azurerm_network_interface.node : nic.private_ip_address]
}

output "node_names" {
  description = "Virtual machine name of every node, head first."
  value       = [for vm in azurerm_linux_virtual_machine.node : vm.name]
}

output "instance_ids" {
  description = "Azure resource id of every node's virtual machine, head first."
  value       = [for vm in azurerm_linux_virtual_machine.node : vm.id]
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
