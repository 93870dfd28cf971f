# The account is found by name (like the cluster module's role assignments do), so
# the user names only the account, not its resource group.
data "azurerm_resources" "account" {
  name = var.account
  type = "Microsoft.Storage/storageAccounts"
}

resource "azurerm_storage_container" "bucket" {
  name                  = var.bucket_name
  storage_account_id    = data.azurerm_resources.account.resources[0].id
  container_access_type = "private"
  metadata              = var.metadata
}
