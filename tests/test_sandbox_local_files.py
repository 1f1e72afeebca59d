"""`backend.localFileRoots`: the local files a bot may name (by absolute path or `file://`) are
those under the listed directories, symbolic links and `..` resolved; others fail with 1200
naming the setting, on every action that reads a local path. Without it, any readable file, as
NapCat."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.config import parse_config
from gateway.supervisor import Supervisor

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8 + b"local file"
FRIEND, LAB = 20001, 30001


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    allowed = tmp_path / "allowed"
    outside = tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "in.png").write_bytes(PNG)
    (outside / "out.png").write_bytes(PNG)
    (allowed / "link.png").symlink_to(outside / "out.png")
    (outside / "folder").mkdir()
    return {
        "root": allowed,
        "inside": allowed / "in.png",
        "outside": outside / "out.png",
        "link": allowed / "link.png",
        "dotdot": allowed / ".." / "outside" / "out.png",
        "folder": outside / "folder",
    }


async def call(roots: list[str] | None, action: str, **params: Any) -> dict[str, Any]:
    backend: dict[str, Any] = {"database": ":memory:"}
    if roots is not None:
        backend["localFileRoots"] = roots
    supervisor = Supervisor(parse_config({"backend": backend}, env={}))
    await supervisor.start()
    try:
        return await supervisor.dispatcher.call(action, params)
    finally:
        await supervisor.stop()


def image(path: Path, url: bool) -> list[dict[str, Any]]:
    return [{"type": "image", "data": {"file": path.as_uri() if url else str(path)}}]


@pytest.mark.parametrize("url", [True, False], ids=["file-url", "path"])
async def test_a_file_under_a_root_is_read_others_are_refused(
    files: dict[str, Path], url: bool
) -> None:
    roots = [str(files["root"])]
    inside = await call(
        roots, "send_private_msg", user_id=FRIEND, message=image(files["inside"], url)
    )
    refused = {
        name: await call(roots, "send_private_msg", user_id=FRIEND, message=image(files[name], url))
        for name in ("outside", "link", "dotdot")
    }
    assert inside["retcode"] == 0, inside
    for name, answer in refused.items():
        assert answer["retcode"] == 1200, (name, answer)
        assert "backend.localFileRoots" in answer["message"], (name, answer)


async def test_every_action_reading_a_local_path_is_held_to_the_roots(
    files: dict[str, Path],
) -> None:
    roots = [str(files["root"])]
    outside = str(files["outside"])
    answers = {
        "upload_group_file": await call(
            roots, "upload_group_file", group_id=LAB, file=outside, name="x.png"
        ),
        "upload_private_file": await call(
            roots, "upload_private_file", user_id=FRIEND, file=outside, name="x.png"
        ),
        "send_online_file": await call(
            roots, "send_online_file", user_id=FRIEND, file_path=outside
        ),
        "send_online_folder": await call(
            roots, "send_online_folder", user_id=FRIEND, folder_path=str(files["folder"])
        ),
        "create_flash_task": await call(roots, "create_flash_task", files=[outside]),
    }
    for action, answer in answers.items():
        assert answer["retcode"] == 1200, (action, answer)
        assert "localFileRoots" in answer["message"], (action, answer)
    allowed = await call(
        roots, "upload_group_file", group_id=LAB, file=str(files["inside"]), name="in.png"
    )
    assert allowed["retcode"] == 0, allowed


async def test_without_roots_any_readable_file_and_with_none_listed_no_file(
    files: dict[str, Path],
) -> None:
    anywhere = await call(
        None, "send_private_msg", user_id=FRIEND, message=image(files["outside"], True)
    )
    nowhere = await call(
        [], "send_private_msg", user_id=FRIEND, message=image(files["inside"], True)
    )
    assert anywhere["retcode"] == 0, anywhere
    assert nowhere["retcode"] == 1200 and "localFileRoots" in nowhere["message"]
