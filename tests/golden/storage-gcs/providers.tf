# The provider of this root module: credentials and project from the environment
# (GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_CLOUD_PROJECT) unless var.project is set.
provider "google" {
  project = var.project
}
