# The AWS cluster module. Plain HCL except main.tf.j2, where skyterra's Jinja
# only decides which blocks exist; every value arrives in terraform.tfvars.json.
terraform {
  required_version = ">= 1.5"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.0"
    }
  }
}
