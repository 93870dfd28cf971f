# The remote state of skyterra clusters on GCP: a private, versioned GCS bucket.
# GCS locks state by itself (no lock table). Encryption at rest is always on
# (Google-managed keys, or the given Cloud KMS key).

provider "google" {
  project = var.project
}

resource "google_storage_bucket" "state" {
  name                        = var.bucket_name
  location                    = var.location
  force_destroy               = var.force_destroy
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = merge({ "managed-by" = "skyterra-state-bootstrap" }, var.labels)

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.noncurrent_version_days
    }
    action {
      type = "Delete"
    }
  }

  dynamic "encryption" {
    for_each = var.kms_key_name == "" ? [] : [var.kms_key_name]
    content {
      default_kms_key_name = encryption.value
    }
  }
}
