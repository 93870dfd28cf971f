# The remote state of skyterra clusters on Azure: a private storage account
# (HTTPS/TLS 1.2 only, no public blobs, encrypted at rest by the platform) with
# blob versioning and soft delete, and one private container. The azurerm
# backend locks state with blob leases (no lock table).

provider "azurerm" {
  features {}
  subscription_id = var.subscription_id
}

locals {
  tags = merge({ "managed-by" = "skyterra-state-bootstrap" }, var.tags)
}

resource "azurerm_resource_group" "state" {
  name     = var.resource_group_name
  location = var.location
  tags     = local.tags
}

resource "azurerm_storage_account" "state" {
  name                            = var.storage_account_name
  resource_group_name             = azurerm_resource_group.state.name
  location                        = azurerm_resource_group.state.location
  account_tier                    = "Standard"
  account_replication_type        = "GRS"
  account_kind                    = "StorageV2"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  shared_access_key_enabled       = true
  tags                            = local.tags

  blob_properties {
    versioning_enabled = true

    delete_retention_policy {
      days = var.soft_delete_days
    }

    container_delete_retention_policy {
      days = var.soft_delete_days
    }
  }
}

resource "azurerm_storage_container" "state" {
  name                  = var.container_name
  storage_account_id    = azurerm_storage_account.state.id
  container_access_type = "private"
}
