output "node_ips" {
  description = "Address of every node, head first."
  value       = [for n in terraform_data.node : n.output.ip]
}

output "node_private_ips" {
  description = "Same as node_ips (loopback nodes have one address)."
  value       = [for n in terraform_data.node : n.output.ip]
}

output "node_names" {
  description = "Node names, head first: <cluster>-head, <cluster>-worker1, ..."
  value       = [for n in terraform_data.node : n.output.name]
}

output "instance_ids" {
  description = "Node ids (the node directory names <cluster>-<k>), head first."
  value       = [for n in terraform_data.node : n.output.id]
}

output "node_dirs" {
  description = "Node directories, head first. Each holds home/, sshd.log and known_hosts_line (the node's host key as `ssh-keyscan` prints it)."
  value       = [for n in terraform_data.node : n.output.dir]
}

output "ssh_user" {
  description = "Login user of every node."
  value       = var.ssh_user
}

output "ssh_port" {
  description = "SSH port of every node."
  value       = var.ssh_port
}

output "ssh_private_key_path" {
  description = "Private key that logs in to every node."
  value       = var.ssh_private_key_path
}

output "zone" {
  description = "Zone of the nodes."
  value       = var.zone
}

output "nodes_dir" {
  description = "Directory that holds the node directories."
  value       = trimsuffix(var.nodes_dir, "/")
}
