# A bucket skyterra creates on a store that has no Terraform provider on this
# machine (the GCS and Azure Blob emulators: gcp-storage-emulator, Azurite). The
# bucket is still a resource in its own state (SKYTERRA_HOME/storage/<name>/):
# Terraform's built-in terraform_data, created and destroyed by rclone. No
# provider to download.
terraform {
  required_version = ">= 1.5"
}
