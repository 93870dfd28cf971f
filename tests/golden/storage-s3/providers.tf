# The provider of this root module. With an emulator endpoint (AWS_ENDPOINT_URL_S3 or
# AWS_ENDPOINT_URL: moto, LocalStack, MinIO) it talks to that endpoint with path-style
# URLs and skips the checks only AWS itself answers.
provider "aws" {
  region = var.region
}
