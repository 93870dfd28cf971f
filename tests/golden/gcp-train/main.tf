# GPU cluster on Compute Engine: num_nodes instances in one zone, node 0 is the
# head. Rendered by skyterra: the Jinja switches below decide structure only
# (GPU attachment, spot, placement, opened ports, GPUDirect NICs); every value
# is a variable.

locals {
  network_tag = "skyterra-${var.cluster_name}"
  labels      = merge(var.labels, { "skyterra-cluster" = var.cluster_name })
}

# SSH from the caller's address only.
resource "google_compute_firewall" "ssh" {
  name          = "${local.network_tag}-ssh"
  network       = var.network
  direction     = "INGRESS"
  source_ranges = var.ssh_source_ranges
  target_tags   = [local.network_tag]

  allow {
    protocol = "tcp"
    ports    = ["22"]
  }
}

# All traffic between the nodes of this cluster (NCCL, torchrun rendezvous).
resource "google_compute_firewall" "internal" {
  name        = "${local.network_tag}-internal"
  network     = var.network
  direction   = "INGRESS"
  source_tags = [local.network_tag]
  target_tags = [local.network_tag]

  allow {
    protocol = "all"
  }
}

resource "google_compute_instance" "node" {
  count = var.num_nodes

  # skyterra stop / start: a value in the tfvars (TERMINATED = stopped, disks kept).
  desired_status = var.nodes_running ? "RUNNING" : "TERMINATED"

  name         = "${var.cluster_name}-${count.index}"
  machine_type = var.machine_type
  zone         = var.zone
  tags         = [local.network_tag]
  labels       = local.labels

  boot_disk {
    auto_delete = true

    initialize_params {
      image  = var.image
      size   = var.disk_size_gb
      type   = var.disk_type
      labels = local.labels
    }
  }

  network_interface {
    network    = var.subnetwork == null ? var.network : null
    subnetwork = var.subnetwork

    # Ephemeral public IP: skyterra reaches the nodes over SSH.
    access_config {}
  }

  scheduling {
    # GPU instances cannot live-migrate.
    on_host_maintenance = "TERMINATE"
    automatic_restart   = true
  }

  metadata = {
    "ssh-keys"       = "${var.ssh_user}:${trimspace(var.ssh_public_key)}"
    "enable-oslogin" = "FALSE"
    "startup-script" = var.startup_script
  }

  dynamic "service_account" {
    for_each = var.service_account == null ? [] : [var.service_account]
    content {
      email  = service_account.value.email
      scopes = service_account.value.scopes
    }
  }

  depends_on = [google_compute_firewall.ssh, google_compute_firewall.internal]
}
