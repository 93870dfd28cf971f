# A GCS bucket skyterra creates for a task's `name:` mount, in its own small module
# and state (SKYTERRA_HOME/storage/<name>/) so that it outlives the clusters using it.
terraform {
  required_version = ">= 1.5"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 6.0, < 8.0"
    }
  }
}
