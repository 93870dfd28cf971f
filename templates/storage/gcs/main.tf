resource "google_storage_bucket" "bucket" {
  name                        = var.bucket_name
  project                     = var.project
  location                    = var.location
  force_destroy               = var.force_destroy
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  labels                      = var.labels
}
