output "bucket" {
  description = "The container's name."
  value       = azurerm_storage_container.bucket.name
}

output "url" {
  description = "The container as a file_mounts source."
  value       = "https://${var.account}.blob.core.windows.net/${azurerm_storage_container.bucket.name}"
}
