# rclone reaches the store through the remote SKY, whose settings (endpoint,
# credentials) skyterra passes to Terraform as RCLONE_CONFIG_SKY_* environment
# variables for each command: they are never written to the state. The bucket's
# name reaches the shell only as an environment variable, used quoted. The store is
# an emulator on this machine: one attempt, so an unreachable one fails at once.
resource "terraform_data" "bucket" {
  input = {
    bucket = var.bucket_name
    store  = var.store
  }

  provisioner "local-exec" {
    command = "rclone --retries 1 --low-level-retries 2 --contimeout 10s mkdir \"SKY:$SKYTERRA_BUCKET\""
    environment = {
      SKYTERRA_BUCKET = self.input.bucket
    }
  }

  # Deletes the bucket and everything in it (skyterra storage delete, or the destroy
  # of the last cluster of a `persistent: false` bucket).
  provisioner "local-exec" {
    when    = destroy
    command = "rclone --retries 1 --low-level-retries 2 --contimeout 10s purge \"SKY:$SKYTERRA_BUCKET\""
    environment = {
      SKYTERRA_BUCKET = self.input.bucket
    }
  }
}
