# Provider requirements of the GCP cluster module. The google provider 6.x
# changed guest_accelerator to block-only syntax and made labels
# non-authoritative (effective_labels); this module is written for 6.x and 7.x.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
  }
}
