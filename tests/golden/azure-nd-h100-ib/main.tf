# GPU cluster on Azure: num_nodes Linux VMs in one resource group, node 0 is the
# head. Rendered by skyterra: the Jinja switches below decide structure only
# (own network, opened ports, image source, spot, placement, one InfiniBand
# scale set or standalone VMs); every value is a variable.

locals {
  name = "skyterra-${var.cluster_name}"
  tags = merge(var.tags, { "skyterra-cluster" = var.cluster_name })
}

# Every resource of the cluster lives here; destroying the cluster empties it.
resource "azurerm_resource_group" "cluster" {
  name     = local.name
  location = var.location
  tags     = local.tags
}

resource "azurerm_virtual_network" "cluster" {
  name                = "${local.name}-vnet"
  location            = azurerm_resource_group.cluster.location
  resource_group_name = azurerm_resource_group.cluster.name
  address_space       = [var.address_space]
  tags                = local.tags
}

resource "azurerm_subnet" "nodes" {
  name                 = "nodes"
  resource_group_name  = azurerm_resource_group.cluster.name
  virtual_network_name = azurerm_virtual_network.cluster.name
  address_prefixes     = [var.address_space]
}

# Inbound: SSH from the caller's address only, everything inside the virtual
# network, and the task's ports. Azure's default rules deny all other inbound.
resource "azurerm_network_security_group" "cluster" {
  name                = "${local.name}-nsg"
  location            = azurerm_resource_group.cluster.location
  resource_group_name = azurerm_resource_group.cluster.name
  tags                = local.tags

  security_rule {
    name                       = "ssh-from-caller"
    priority                   = 100
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "Tcp"
    source_port_range          = "*"
    destination_port_range     = "22"
    source_address_prefixes    = var.ssh_source_ranges
    destination_address_prefix = "*"
  }

  security_rule {
    name                       = "intra-cluster"
    priority                   = 110
    direction                  = "Inbound"
    access                     = "Allow"
    protocol                   = "*"
    source_port_range          = "*"
    destination_port_range     = "*"
    source_address_prefix      = "VirtualNetwork"
    destination_address_prefix = "VirtualNetwork"
  }
}

# All nodes in one datacenter for low latency between them. Naming the VM size
# lets Azure pick a datacenter that has it (and allows pinning the zone).
resource "azurerm_proximity_placement_group" "cluster" {
  name                = "${local.name}-ppg"
  location            = azurerm_resource_group.cluster.location
  resource_group_name = azurerm_resource_group.cluster.name
  allowed_vm_sizes    = [var.vm_size]
  zone                = var.zone
  tags                = local.tags
}

# InfiniBand: Azure configures the IB fabric only between VMs of one scale set
# (or availability set), so ND-series nodes are the instances of one uniform
# scale set in a single placement group (at most 100 instances). Each instance
# gets its own public IP for SSH; the NSG sits on the scale set's NIC.
resource "azurerm_linux_virtual_machine_scale_set" "nodes" {
  name                            = "${local.name}-vmss"
  computer_name_prefix            = var.cluster_name
  location                        = azurerm_resource_group.cluster.location
  resource_group_name             = azurerm_resource_group.cluster.name
  sku                             = var.vm_size
  instances                       = var.num_nodes
  zones                           = var.zone == null ? null : [var.zone]
  admin_username                  = var.ssh_user
  disable_password_authentication = true
  custom_data                     = var.custom_data == "" ? null : base64encode(var.custom_data)
  overprovision                   = false
  single_placement_group          = true
  upgrade_mode                    = "Manual"
  tags                            = local.tags

  proximity_placement_group_id = azurerm_proximity_placement_group.cluster.id

  admin_ssh_key {
    username   = var.ssh_user
    public_key = trimspace(var.ssh_public_key)
  }

  os_disk {
    caching              = "ReadWrite"
    storage_account_type = var.os_disk_type
    disk_size_gb         = var.os_disk_size_gb
  }

  source_image_reference {
    publisher = var.image.publisher
    offer     = var.image.offer
    sku       = var.image.sku
    version   = var.image.version
  }

  network_interface {
    name                           = "primary"
    primary                        = true
    accelerated_networking_enabled = var.accelerated_networking
    network_security_group_id      = azurerm_network_security_group.cluster.id

    ip_configuration {
      name      = "primary"
      primary   = true
      subnet_id = azurerm_subnet.nodes.id

      public_ip_address {
        name = "public"
      }
    }
  }
}

# The instances' addresses (the scale set resource does not export them).
data "azurerm_virtual_machine_scale_set" "nodes" {
  name                = azurerm_linux_virtual_machine_scale_set.nodes.name
  resource_group_name = azurerm_resource_group.cluster.name
}

locals {
  # Instances in rank order: by their numeric instance id.
  instances_by_id = {
    for i in data.azurerm_virtual_machine_scale_set.nodes.instances : format("%06d", tonumber(i.instance_id)) => i
  }
  instances = [for id in sort(keys(local.instances_by_id)) : local.instances_by_id[id]]

  node_public_ips  = [for i in local.instances : i.public_ip_address]
  node_private_ips = [for i in local.instances : i.private_ip_address]
  node_names       = [for i in local.instances : i.name]
  instance_ids     = [for i in local.instances : i.virtual_machine_id]
}
