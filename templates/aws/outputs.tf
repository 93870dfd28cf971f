output "node_ips" {
  description = "Address to reach every node over SSH, head first: the public IP (with EFA the Elastic IP of the primary interface), or the private IP when the node has none (associate_public_ip = false)."
  value       = local.node_ssh_ips
}

output "node_private_ips" {
  description = "Private (VPC) IP of every node, head first; nodes talk to each other over these."
  value       = aws_instance.node[*].private_ip
}

output "node_names" {
  description = "Node names (the Name tags), head first: <cluster>-head, <cluster>-worker1, ..."
  value       = local.node_names
}

output "instance_ids" {
  description = "EC2 instance ids, head first."
  value       = aws_instance.node[*].id
}

output "ssh_user" {
  description = "Login user of every node."
  value       = var.ssh_user
}

output "ssh_port" {
  description = "SSH port of every node."
  value       = 22
}

output "ssh_private_key_path" {
  description = "Private key that logs in to every node."
  value       = var.ssh_private_key_path
}

output "region" {
  description = "Region of the nodes."
  value       = var.region
}

output "zone" {
  description = "Availability zone of the nodes (all nodes share one subnet)."
  value       = aws_instance.node[0].availability_zone
}

output "security_group_id" {
  description = "The cluster's security group."
  value       = aws_security_group.cluster.id
}

output "image_id" {
  description = "AMI the nodes run."
  value       = local.image_id
}
