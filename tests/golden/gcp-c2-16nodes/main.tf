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

# Compact placement: all nodes close together on a low-latency network.
#
# No vm_count: with vm_count = N, Compute Engine holds every instance of the
# policy until all N are requested, while Terraform creates at most 10 resources
# at a time (-parallelism=10), so a cluster of more than 10 nodes waited on
# itself. Google's API reference recommends leaving vm_count unset "unless you
# use a compact policy and you want your policy to work only if it contains
# this exact number of VMs"; without it the policy is best-effort compact and
# works at any node count and any parallelism (at most 150 VMs per policy).
resource "google_compute_resource_policy" "placement" {
  name   = "${local.network_tag}-placement"
  region = var.region

  group_placement_policy {
    collocation = "COLLOCATED"
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
    # Compact placement does not allow live migration: host maintenance
    # terminates the node, and it is not restarted elsewhere, away from the others.
    on_host_maintenance = "TERMINATE"
    automatic_restart   = false
  }

  resource_policies = [google_compute_resource_policy.placement.self_link]

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
