# A GPU cluster on EC2: num_nodes instances of one type in one subnet, a key
# pair from the cluster key, a security group (SSH from the caller only, all
# traffic between the nodes), an optional cluster placement group, and with
# network_tier best on EFA instance types one EFA per network card.
#
# skyterra's Jinja decided which blocks exist here (network source, custom
# image, spot, EFA); every value comes from terraform.tfvars.json.

locals {
  name = "skyterra-${var.cluster_name}"

  # Labels first: the module's own tags win (variable validation forbids clashes anyway).
  tags = merge(var.labels, {
    "skyterra-cluster" = var.cluster_name
  })

  node_names = [
    for k in range(var.num_nodes) : k == 0 ? "${var.cluster_name}-head" : "${var.cluster_name}-worker${k}"
  ]

  ssh_ipv4  = [for c in var.ssh_cidrs : c if !strcontains(c, ":")]
  ssh_ipv6  = [for c in var.ssh_cidrs : c if strcontains(c, ":")]
  port_ipv4 = [for c in coalesce(var.port_cidrs, var.ssh_cidrs) : c if !strcontains(c, ":")]
  port_ipv6 = [for c in coalesce(var.port_cidrs, var.ssh_cidrs) : c if strcontains(c, ":")]
}

# --- instance type and network ------------------------------------------------

# Fails at plan time, before anything exists, when EC2 does not know the type
# ("InvalidInstanceType: ... do not exist").
data "aws_ec2_instance_type" "selected" {
  instance_type = var.instance_type
}

# Zones of the region that offer the instance type. A zone that does not
# offer it fails here, at plan time, with EC2's own "Unsupported" wording (a
# capacity error to skyterra), so failover moves on before anything is created.
data "aws_ec2_instance_type_offerings" "zones" {
  location_type = "availability-zone"

  filter {
    name   = "instance-type"
    values = [data.aws_ec2_instance_type.selected.instance_type] # read after the type is known to exist
  }

  lifecycle {
    postcondition {
      condition     = length([for z in self.locations : z if var.zone == null || z == var.zone]) > 0
      error_message = "Unsupported: Your requested instance type (${var.instance_type}) is not supported in your requested Availability Zone (${coalesce(var.zone, var.region)})."
    }
  }
}

data "aws_vpc" "selected" {
  default = true
}

data "aws_subnets" "selected" {
  filter {
    name   = "vpc-id"
    values = [data.aws_vpc.selected.id]
  }

  filter {
    name   = "availability-zone"
    values = [for z in data.aws_ec2_instance_type_offerings.zones.locations : z if var.zone == null || z == var.zone]
  }

  filter {
    name   = "default-for-az"
    values = ["true"]
  }

  lifecycle {
    postcondition {
      condition     = length(self.ids) > 0
      error_message = "InvalidSubnet: the VPC has no subnet in ${coalesce(var.zone, "a zone of ${var.region} that offers ${var.instance_type}")}; give subnet_id, or another zone."
    }
  }
}

locals {
  # All nodes share one subnet (one zone): the lowest subnet id, so re-plans are stable.
  subnet_id = sort(data.aws_subnets.selected.ids)[0]
  vpc_id    = data.aws_vpc.selected.id
}

# --- image ---------------------------------------------------------------------

data "aws_ssm_parameter" "image" {
  name = var.image_ssm_parameter
}

locals {
  image_id = data.aws_ssm_parameter.image.insecure_value
}

# --- access --------------------------------------------------------------------

resource "aws_key_pair" "cluster" {
  key_name   = local.name
  public_key = trimspace(var.ssh_public_key)
  tags       = merge(local.tags, { Name = local.name })
}

resource "aws_security_group" "cluster" {
  name        = local.name
  description = "skyterra cluster: SSH from the caller, all traffic between nodes"
  vpc_id      = local.vpc_id
  tags        = merge(local.tags, { Name = local.name })

  ingress {
    description      = "SSH from the caller"
    from_port        = 22
    to_port          = 22
    protocol         = "tcp"
    cidr_blocks      = local.ssh_ipv4
    ipv6_cidr_blocks = local.ssh_ipv6
  }

  ingress {
    description = "All traffic between the cluster nodes"
    from_port   = 0
    to_port     = 0
    protocol    = "-1"
    self        = true
  }

  dynamic "ingress" {
    for_each = var.ports
    content {
      description      = "Task port(s)"
      from_port        = ingress.value.from_port
      to_port          = ingress.value.to_port
      protocol         = "tcp"
      cidr_blocks      = local.port_ipv4
      ipv6_cidr_blocks = local.port_ipv6
    }
  }


  egress {
    description      = "All outbound traffic"
    from_port        = 0
    to_port          = 0
    protocol         = "-1"
    cidr_blocks      = ["0.0.0.0/0"]
    ipv6_cidr_blocks = ["::/0"]
  }
}

# --- nodes ---------------------------------------------------------------------

# Only for instance types that support it (burstable t2/t3 do not).
resource "aws_placement_group" "cluster" {
  count = var.placement_group && var.num_nodes > 1 && contains(data.aws_ec2_instance_type.selected.supported_placement_strategies, "cluster") ? 1 : 0

  name     = local.name
  strategy = "cluster"
  tags     = merge(local.tags, { Name = local.name })
}


# Changing between spot and on-demand replaces the nodes (the market options
# themselves are ignored after creation, see below).
resource "terraform_data" "market" {
  input = "on-demand"
}

resource "aws_instance" "node" {
  count = var.num_nodes

  ami                         = local.image_id
  instance_type               = var.instance_type
  subnet_id                   = local.subnet_id
  vpc_security_group_ids      = [aws_security_group.cluster.id]
  key_name                    = aws_key_pair.cluster.key_name
  associate_public_ip_address = var.associate_public_ip
  placement_group             = one(aws_placement_group.cluster[*].name)

  user_data = templatefile("${path.module}/user_data.sh.tftpl", {
    ssh_user = var.ssh_user
  })

  root_block_device {
    volume_type           = "gp3"
    volume_size           = var.disk_size
    iops                  = var.disk_iops
    throughput            = var.disk_throughput
    delete_on_termination = true
    tags                  = merge(local.tags, { Name = local.node_names[count.index] })
  }

  metadata_options {
    http_endpoint = "enabled"
    http_tokens   = "required"
  }

  tags = merge(local.tags, {
    Name                 = local.node_names[count.index]
    "skyterra-node-rank" = tostring(count.index)
  })

  lifecycle {
    replace_triggered_by = [terraform_data.market]
  }
}

# Where skyterra reaches each node over SSH: its public IP (the Elastic IP of its
# primary EFA with EFA), or the private IP when it has none.
locals {
  node_ssh_ips = [for n in aws_instance.node : n.public_ip != "" ? n.public_ip : n.private_ip]
}

# Power state (skyterra stop / start): a value in the tfvars, so a plan after a
# stop or start shows no drift. A stopped instance keeps its EBS root volume;
# it comes back with a new public IP. (One-time spot instances cannot stop:
# skyterra refuses before planning.)
resource "aws_ec2_instance_state" "node" {
  count = var.num_nodes

  instance_id = aws_instance.node[count.index].id
  state       = var.nodes_running ? "running" : "stopped"
}
