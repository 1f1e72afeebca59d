"""Sandbox `trans_group_file`: a temporary group file becomes permanent; answers checked against
NapCat's schema."""

from __future__ import annotations

import base64

from tests.napcat_schema import validate_data
from tests.sandbox_client import SandboxClient

CAROL, LAB = 20003, 30001
FOURTEEN_DAYS = 14 * 24 * 3600


async def temporary_file(sandbox: SandboxClient) -> str:
    data = await sandbox.ok(
        "sandbox_upload_group_file",
        group_id=LAB,
        user_id=CAROL,
        name="big.iso",
        file="base64://" + base64.b64encode(b"iso").decode(),
        temporary=True,
    )
    file_id: str = data["file_id"]
    return file_id


async def test_a_temporary_upload_has_busid_104_and_a_dead_time(sandbox: SandboxClient) -> None:
    file_id = await temporary_file(sandbox)
    notice = await sandbox.notice("group_upload")
    assert notice["file"]["busid"] == 104
    [file] = (await sandbox.ok("get_group_root_files", group_id=LAB))["files"]
    assert (file["file_id"], file["busid"]) == (file_id, 104)
    assert file["dead_time"] == file["upload_time"] + FOURTEEN_DAYS


async def test_trans_group_file_makes_it_permanent(sandbox: SandboxClient) -> None:
    file_id = await temporary_file(sandbox)
    data = await sandbox.ok("trans_group_file", group_id=str(LAB), file_id=file_id)
    validate_data("trans_group_file", data)
    assert data == {"ok": True}
    [file] = (await sandbox.ok("get_group_root_files", group_id=LAB))["files"]
    assert (file["busid"], file["dead_time"]) == (102, 0)


async def test_a_permanent_file_cannot_be_kept_again(sandbox: SandboxClient) -> None:
    file_id = await temporary_file(sandbox)
    await sandbox.ok("trans_group_file", group_id=LAB, file_id=file_id)
    body = await sandbox.call("trans_group_file", group_id=LAB, file_id=file_id)
    assert (body["retcode"], body["message"]) == (
        1200,
        f"group file {file_id!r} is already permanent",
    )
