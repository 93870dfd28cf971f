# The provider configuration: only in a root module. skyterra writes this file into
# the cluster directories it applies and into `skyterra render` output; a pipeline
# that calls the module as a child (with count, for_each or depends_on) leaves it
# out (`skyterra render --no-provider`) and configures the provider itself.
# azurerm 4.x requires a subscription: var.subscription_id, or ARM_SUBSCRIPTION_ID
# in the environment when it is null. "core" registers only the resource
# providers a VM needs (Compute, Network, Storage, ...), so a user with rights
# on the subscription's VMs but not on every resource provider can still apply.
provider "azurerm" {
  features {}

  subscription_id                 = var.subscription_id
  resource_provider_registrations = "core"
}
