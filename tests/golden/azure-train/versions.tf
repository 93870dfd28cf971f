# Provider requirements of the Azure cluster module, written for azurerm 4.x
# (accelerated_networking_enabled, mandatory subscription_id, features {}).
terraform {
  required_version = ">= 1.5"

  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = ">= 4.0, < 5.0"
    }
  }
}

# azurerm 4.x requires a subscription: var.subscription_id, or ARM_SUBSCRIPTION_ID
# in the environment when it is null. "core" registers only the resource
# providers a VM needs (Compute, Network, Storage, ...), so a user with rights
# on the subscription's VMs but not on every resource provider can still apply.
provider "azurerm" {
  features {}

  subscription_id                 = var.subscription_id
  resource_provider_registrations = "core"
}
