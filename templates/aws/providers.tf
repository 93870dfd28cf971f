# The provider configuration: only in a root module. skyterra writes this file into
# the cluster directories it applies and into `skyterra render` output; a pipeline
# that calls the module as a child (with count, for_each or depends_on) leaves it
# out (`skyterra render --no-provider`) and configures the provider itself.
provider "aws" {
  region = var.region
}
