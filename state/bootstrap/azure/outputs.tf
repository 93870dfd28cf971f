output "storage_account_name" {
  description = "Name of the state storage account."
  value       = azurerm_storage_account.state.name
}

output "skyterra_backend" {
  description = "The `backend:` mapping for ~/.skyterra/config.yaml or .skyterra.yaml."
  value = {
    type                 = "azurerm"
    resource_group_name  = azurerm_resource_group.state.name
    storage_account_name = azurerm_storage_account.state.name
    container_name       = azurerm_storage_container.state.name
  }
}
