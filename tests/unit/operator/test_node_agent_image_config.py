"""How the node agent turns an image and a container spec into a process (pure parts of images.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubetune_devtools.devstack.node_agent import images
from kubetune_devtools.devstack.node_agent.env import ContainerConfigError, container_argv
from kubetune_devtools.devstack.node_agent.images import ImageConfig
from kubetune_devtools.devstack.node_agent.launcher import path_in_root
from kubetune_devtools.devstack.node_agent.process import user_of

TRAINER = ImageConfig(
    image_id="sha256:1",
    rootfs=Path("/nonexistent"),
    entrypoint=("python", "-m", "kubetune_trainer"),
    cmd=("--help",),
    env=("PATH=/opt/venv/bin:/usr/bin", "HF_HUB_OFFLINE=1", "EMPTY="),
    working_dir="/home/kubetune",
    user="1000:1000",
)


@pytest.mark.parametrize(
    ("image", "repository"),
    [
        ("kubetune/trainer:0.1.0", "kubetune/trainer"),
        ("kubetune/trainer", "kubetune/trainer"),
        ("registry:5000/kubetune/trainer:1", "registry:5000/kubetune/trainer"),
        ("registry:5000/kubetune/trainer", "registry:5000/kubetune/trainer"),
        ("kubetune/trainer@sha256:" + "0" * 64, "kubetune/trainer"),
        ("kubetune.dev/checkout:latest", "kubetune.dev/checkout"),
    ],
)
def test_repository_drops_tag_and_digest_but_not_a_registry_port(image: str, repository: str) -> None:
    assert images.repository_of(image) == repository


def test_only_the_checkout_repository_runs_the_checkout() -> None:
    assert images.runs_checkout("kubetune.dev/checkout")
    assert images.runs_checkout("kubetune.dev/checkout:anything")
    assert not images.runs_checkout("kubetune/trainer:0.1.0")
    assert not images.runs_checkout("evil.example.com/kubetune.dev/checkout")


def test_command_and_args_follow_the_kubernetes_rule_over_entrypoint_and_cmd() -> None:
    def argv(**container: list[str]) -> list[str]:
        return container_argv({"name": "c", **container}, {"X": "1"}, TRAINER)

    assert argv() == ["python", "-m", "kubetune_trainer", "--help"]
    assert argv(args=["--config", "$(X)"]) == ["python", "-m", "kubetune_trainer", "--config", "1"]
    assert argv(command=["sh", "-c"]) == ["sh", "-c"]  # command drops CMD too
    assert argv(command=["sh"], args=["-c", "$(X)"]) == ["sh", "-c", "1"]


def test_an_image_without_entrypoint_or_cmd_and_no_command_is_a_config_error() -> None:
    bare = ImageConfig(image_id="sha256:2", rootfs=Path("/nonexistent"))
    with pytest.raises(ContainerConfigError, match="no command"):
        container_argv({"name": "c"}, {}, bare)
    with pytest.raises(ContainerConfigError, match=r"kubetune\.dev/checkout"):
        container_argv({"name": "c"}, {})


def test_image_env_lines_become_a_mapping() -> None:
    assert images.image_env(TRAINER) == {"PATH": "/opt/venv/bin:/usr/bin", "HF_HUB_OFFLINE": "1", "EMPTY": ""}


def test_image_user_numeric_named_and_root(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nkubetune:x:1000:1000::/home/kubetune:/usr/sbin/nologin\n"
    )

    def user(value: str) -> tuple[int, int | None]:
        return images.image_user(ImageConfig(image_id="i", rootfs=tmp_path, user=value))

    assert user("1000:1000") == (1000, 1000)
    assert user("1000") == (1000, None)
    assert user("kubetune") == (1000, None)
    assert user("") == (0, 0)
    with pytest.raises(ValueError, match="nobody"):
        user("nobody")
    assert images.home_of(ImageConfig(image_id="i", rootfs=tmp_path), 1000) == "/home/kubetune"
    assert images.home_of(ImageConfig(image_id="i", rootfs=tmp_path), 4242) == "/"


def pod(**security: object) -> dict[str, object]:
    return {"spec": {"securityContext": security, "containers": []}}


def test_the_pod_wins_over_the_image_user_and_run_as_non_root_refuses_a_root_image() -> None:
    assert user_of(pod(), {}, (1000, 1000)) == (1000, 1000, [])
    assert user_of(pod(runAsUser=2000), {}, (1000, 1000)) == (2000, 2000, [])
    assert user_of(pod(runAsGroup=3000), {}, (1000, None)) == (1000, 3000, [])
    assert user_of(pod(runAsNonRoot=True), {}, (1000, None)) == (1000, 1000, [])
    with pytest.raises(ContainerConfigError, match="runAsNonRoot and image will run as root"):
        user_of(pod(runAsNonRoot=True), {}, (0, 0))
    # The checkout's environment has no USER: runAsNonRoot alone runs as the images' user.
    assert user_of(pod(runAsNonRoot=True), {}) == (1000, 1000, [])


def test_mount_targets_follow_the_images_symlinks_inside_its_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "run").mkdir(parents=True)
    (root / "var").mkdir()
    (root / "var" / "run").symlink_to("/run")  # Debian's: absolute, so it must not leave the root
    (root / "etc").mkdir()
    (root / "etc" / "alt").symlink_to("../run")
    (root / "loop").symlink_to("loop")
    secrets = "/var/run/secrets/kubernetes.io/serviceaccount"
    assert path_in_root(str(root), secrets) == root / "run/secrets/kubernetes.io/serviceaccount"
    assert path_in_root(str(root), "/etc/alt/x") == root / "run" / "x"
    assert path_in_root(str(root), "/../../etc/hosts") == root / "etc" / "hosts"  # `..` stops at the root
    assert path_in_root("/", "/var/run/x") == Path("/var/run/x")
    with pytest.raises(OSError, match="too many symbolic links"):
        path_in_root(str(root), "/loop/x")
