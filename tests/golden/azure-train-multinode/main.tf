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

resource "azurerm_public_ip" "node" {
  count = var.num_nodes

  name                = "${var.cluster_name}-${count.index}-ip"
  location            = azurerm_resource_group.cluster.location
  resource_group_name = azurerm_resource_group.cluster.name
  allocation_method   = "Static"
  sku                 = "Standard"
  zones               = var.zone == null ? null : [var.zone]
  tags                = local.tags
}

resource "azurerm_network_interface" "node" {
  count = var.num_nodes

  name                           = "${var.cluster_name}-${count.index}-nic"
  location                       = azurerm_resource_group.cluster.location
  resource_group_name            = azurerm_resource_group.cluster.name
  accelerated_networking_enabled = var.accelerated_networking
  tags                           = local.tags

  ip_configuration {
    name                          = "primary"
    subnet_id                     = azurerm_subnet.nodes.id
    private_ip_address_allocation = "Dynamic"
    public_ip_address_id          = azurerm_public_ip.node[count.index].id
  }
}

# The NSG goes on each NIC (not on the subnet) so that a given subnet keeps its
# own rules untouched.
resource "azurerm_network_interface_security_group_association" "node" {
  count = var.num_nodes

  network_interface_id      = azurerm_network_interface.node[count.index].id
  network_security_group_id = azurerm_network_security_group.cluster.id
}

resource "azurerm_linux_virtual_machine" "node" {
  count = var.num_nodes

  name                            = "${var.cluster_name}-${count.index}"
  computer_name                   = "${var.cluster_name}-${count.index}"
  location                        = azurerm_resource_group.cluster.location
  resource_group_name             = azurerm_resource_group.cluster.name
  size                            = var.vm_size
  zone                            = var.zone
  admin_username                  = var.ssh_user
  disable_password_authentication = true
  network_interface_ids           = [azurerm_network_interface.node[count.index].id]
  custom_data                     = var.custom_data == "" ? null : base64encode(var.custom_data)
  tags                            = local.tags

  proximity_placement_group_id = azurerm_proximity_placement_group.cluster.id

  admin_ssh_key {
    username   = var.ssh_user
    public_key = trimspace(var.ssh_public_key)
  }

  os_disk {
    name                 = "${var.cluster_name}-${count.index}-osdisk"
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

  depends_on = [azurerm_network_interface_security_group_association.node]
}

locals {
  node_public_ips  = [for ip in azurerm_public_ip.node : ip.ip_address]
  node_private_ips = [for nic in azurerm_network_interface.node : nic.private_ip_address]
  node_names       = [for vm in azurerm_linux_virtual_machine.node : vm.name]
  instance_ids     = [for vm in azurerm_linux_virtual_machine.node : vm.id]
}
