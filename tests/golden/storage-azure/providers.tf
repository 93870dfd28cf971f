# The provider of this root module. azurerm 4.x needs a subscription: var.subscription_id
# or ARM_SUBSCRIPTION_ID. No resource provider registration: only a container is made.
provider "azurerm" {
  features {}

  subscription_id                 = var.subscription_id
  resource_provider_registrations = "none"
  storage_use_azuread             = true
}
