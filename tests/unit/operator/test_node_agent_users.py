"""Which user a container runs as: container over pod settings, runAsNonRoot without a uid, groups."""

from typing import Any

from kubetune_devtools.devstack.node_agent.process import user_of


def pod(security: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"spec": {"securityContext": security or {}, "containers": [{"name": "main"}]}}


def test_root_by_default() -> None:
    assert user_of(pod(), {"name": "main"}) == (None, None, [])


def test_container_settings_win_and_group_defaults_to_uid() -> None:
    container = {"name": "main", "securityContext": {"runAsUser": 2000}}
    assert user_of(pod({"runAsUser": 1000, "runAsGroup": 1000}), container) == (2000, 1000, [])
    assert user_of(pod({"runAsUser": 3000}), {"name": "main"}) == (3000, 3000, [])


def test_run_as_non_root_without_uid_uses_the_images_user() -> None:
    assert user_of(pod({"runAsNonRoot": True}), {"name": "main"}) == (1000, 1000, [])
    container = {"name": "main", "securityContext": {"runAsNonRoot": True}}
    assert user_of(pod(), container)[0] == 1000


def test_fs_group_and_supplemental_groups_join_the_process() -> None:
    assert user_of(
        pod({"runAsUser": 1000, "fsGroup": 2000, "supplementalGroups": [3000]}), {"name": "m"}
    ) == (
        1000,
        1000,
        [3000, 2000],
    )
