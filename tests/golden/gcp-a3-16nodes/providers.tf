# The provider configuration: only in a root module. skyterra writes this file into
# the cluster directories it applies and into `skyterra render` output; a pipeline
# that calls the module as a child (with count, for_each or depends_on) leaves it
# out (`skyterra render --no-provider`) and configures the provider itself.
# project = null lets the provider fall back to GOOGLE_CLOUD_PROJECT /
# GOOGLE_PROJECT / CLOUDSDK_CORE_PROJECT from the environment.
provider "google" {
  project = var.project
  region  = var.region
  zone    = var.zone
}
