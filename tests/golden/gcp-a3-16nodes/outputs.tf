# Node 0 is the head: every list below is in node order, head first.

output "node_ips" {
  description = "Public IPv4 address of every node, head first."
  value       = [for node in google_compute_instance.node : node.network_interface[0].access_config[0].nat_ip]
}

output "node_private_ips" {
  description = "Private (VPC) IPv4 address of every node, head first."
  value       = [for node in google_compute_instance.node : node.network_interface[0].network_ip]
}

output "node_names" {
  description = "Instance name of every node, head first."
  value       = [for node in google_compute_instance.node : node.name]
}

output "instance_ids" {
  description = "Server-assigned numeric instance id of every node, head first."
  value       = [for node in google_compute_instance.node : node.instance_id]
}

output "ssh_user" {
  description = "Login user whose authorized key is the cluster key."
  value       = var.ssh_user
}

output "zone" {
  description = "Zone every node runs in."
  value       = var.zone
}

output "region" {
  description = "Region of the cluster."
  value       = var.region
}
