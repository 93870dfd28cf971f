"""Shared SSH connections: socket paths that fit a UNIX socket, private directories, and a
master reused only for the host key it checked."""

from __future__ import annotations

import os
import stat

import pytest

from skyterra import connection
from skyterra.errors import ConfigError

SUN_PATH = 108
SSH_SUFFIX = 17  # ssh binds "<ControlPath>.<16 random chars>" first, then renames


def test_a_short_cluster_dir_keeps_its_sockets_inside(tmp_path):
    ssh_dir = tmp_path / "c" / "ssh"
    path = connection.control_path(ssh_dir, "root", "127.100.1.2", 22)
    assert path.parent == ssh_dir / "cm"
    assert len(str(path)) + SSH_SUFFIX < SUN_PATH


def test_a_deep_cluster_dir_uses_a_short_private_dir(tmp_path):
    ssh_dir = tmp_path.joinpath(*["a-rather-long-directory-name"] * 5) / "ssh"
    path = connection.control_path(ssh_dir, "root", "127.100.1.2", 22)
    assert len(str(path)) + SSH_SUFFIX < SUN_PATH
    assert not str(path).startswith(str(ssh_dir))
    made = connection.ensure_socket_dir(ssh_dir)
    try:
        for directory in (made, made.parent):
            info = os.lstat(directory)
            assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.geteuid()
        # whose sockets these are, for leak checks (tests/leaks.py)
        assert (made / connection.OWNER_FILE).read_text().strip() == str(ssh_dir)
    finally:
        connection.close(ssh_dir)
        assert not made.exists()
        try:
            made.parent.rmdir()  # the per-user dir, unless real sockets live there
        except OSError:
            pass
    # Two clusters never share a socket directory.
    other = connection.socket_dir(ssh_dir.parent / "other" / "ssh")
    assert other != made


def test_a_socket_dir_someone_else_could_write_is_refused(tmp_path):
    ssh_dir = tmp_path / "c" / "ssh"
    target = tmp_path / "elsewhere"
    target.mkdir()
    ssh_dir.mkdir(parents=True)
    (ssh_dir / "cm").symlink_to(target)
    with pytest.raises(ConfigError, match="not a directory owned by you"):
        connection.ensure_socket_dir(ssh_dir)


def test_the_socket_follows_the_pinned_host_key(tmp_path):
    ssh_dir = tmp_path / "ssh"
    first = connection.control_path(ssh_dir, "u", "127.0.0.2", 22, "127.0.0.2 ssh-ed25519 AAA")
    second = connection.control_path(ssh_dir, "u", "127.0.0.2", 22, "127.0.0.2 ssh-ed25519 BBB")
    assert first != second
    assert first == connection.control_path(ssh_dir, "u", "127.0.0.2", 22,
                                            "127.0.0.2 ssh-ed25519 AAA")


def test_pinned_keys_are_reread_when_known_hosts_changes(tmp_path):
    known = tmp_path / "known_hosts"
    known.write_text("[127.0.0.2]:2222 ssh-ed25519 AAA\n")
    assert connection.pinned_keys(known)["[127.0.0.2]:2222"].endswith("AAA")
    known.write_text("[127.0.0.2]:2222 ssh-ed25519 BBBB\n")
    assert connection.pinned_keys(known)["[127.0.0.2]:2222"].endswith("BBBB")


def test_closing_a_cluster_without_connections_is_a_no_op(tmp_path):
    assert connection.close(tmp_path / "ssh") == 0
