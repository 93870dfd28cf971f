# A Blob container skyterra creates for a task's `name:` mount, in its own small
# module and state (SKYTERRA_HOME/storage/<name>/) so that it outlives the clusters
# using it. The storage account is the user's; only the container is created here.
terraform {
  required_version = ">= 1.5"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
  }
}
