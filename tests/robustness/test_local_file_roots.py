"""Any local path a bot names on a sandbox with `localFileRoots`: the answer is an envelope, and a
file is read only from under a root (`..`, symbolic links, NUL bytes, odd encodings included);
never an internal error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from gateway.config import parse_config
from gateway.supervisor import Supervisor
from tests.robustness.conftest import FUZZ

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8 + b"root file"
SECRET = b"\x89PNG\r\n\x1a\n" + b"\x00" * 8 + b"not for bots"

pieces = st.sampled_from(["..", ".", "in.png", "out.png", "link.png", "loop", "", "x\x00y", "é"])


@FUZZ
@given(parts=st.lists(pieces | st.text(max_size=6), max_size=6), url=st.booleans())
async def test_any_path_reads_only_under_a_root(
    tmp_path_factory: Any, parts: list[str], url: bool
) -> None:
    base: Path = tmp_path_factory.mktemp("roots")
    root, outside = base / "root", base / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "in.png").write_bytes(PNG)
    (outside / "out.png").write_bytes(SECRET)
    (root / "link.png").symlink_to(outside / "out.png")
    (root / "loop").symlink_to(root / "loop")
    path = "/".join([str(root), *parts])
    file = ("file://" + path) if url else path
    backend = {"database": ":memory:", "localFileRoots": [str(root)]}
    supervisor = Supervisor(parse_config({"backend": backend}, env={}))
    await supervisor.start()
    try:
        answer = await supervisor.dispatcher.call(
            "upload_group_file", {"group_id": 30001, "file": file, "name": "f.png"}
        )
        listing = await supervisor.dispatcher.call("get_group_root_files", {"group_id": 30001})
    finally:
        await supervisor.stop()
    assert answer["retcode"] in (0, 1200, 1400), answer
    assert "internal error" not in answer.get("message", ""), answer
    if answer["retcode"] == 0:
        # What was stored came from under the root: the secret's size differs from the root's.
        sizes = [f["file_size"] for f in listing["data"]["files"]]
        assert sizes == [len(PNG)], (file, sizes)
