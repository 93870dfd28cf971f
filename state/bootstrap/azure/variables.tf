variable "subscription_id" {
  type        = string
  description = "Azure subscription that owns the state storage account."

  validation {
    condition     = can(regex("^[0-9a-fA-F-]{36}$", var.subscription_id))
    error_message = "The subscription_id must be a subscription GUID."
  }
}

variable "location" {
  type        = string
  description = "Azure region, e.g. \"eastus\"."
}

variable "resource_group_name" {
  type        = string
  description = "Resource group created for the state storage account."
  default     = "skyterra-state"

  validation {
    condition     = can(regex("^[-\\w._()]{1,90}$", var.resource_group_name))
    error_message = "The resource_group_name must be 1-90 letters, digits, '-', '_', '.', '(' or ')'."
  }
}

variable "storage_account_name" {
  type        = string
  description = "Storage account name (globally unique, 3-24 lowercase letters and digits)."

  validation {
    condition     = can(regex("^[a-z0-9]{3,24}$", var.storage_account_name))
    error_message = "The storage_account_name must be 3-24 lowercase letters and digits."
  }
}

variable "container_name" {
  type        = string
  description = "Blob container that holds the state files."
  default     = "tfstate"

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]{1,61}[a-z0-9])$", var.container_name))
    error_message = "The container_name must be 3-63 lowercase letters, digits and '-'."
  }
}

variable "soft_delete_days" {
  type        = number
  description = "Days deleted blobs and containers stay recoverable."
  default     = 30

  validation {
    condition     = var.soft_delete_days >= 1 && var.soft_delete_days <= 365 && floor(var.soft_delete_days) == var.soft_delete_days
    error_message = "The soft_delete_days must be a whole number from 1 to 365."
  }
}

variable "tags" {
  type        = map(string)
  description = "Tags of the resource group and the storage account."
  default     = {}
}
