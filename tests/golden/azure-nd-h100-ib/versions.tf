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
