# The local cloud needs no provider: every node is a terraform_data resource
# (built into Terraform since 1.4) whose local-exec provisioners start and stop
# a real sshd bound to a loopback address on this machine.
terraform {
  required_version = ">= 1.4"
}
