"""What the QQ NT kernel answers for the calls NapCat passes straight through.

Several NapCat actions return the kernel's own answer object as `data` (`set_qq_profile`,
`set_input_status`, `_del_group_notice`, …): for a call that worked it is the kernel's general
result, `{"result": 0, "errMsg": ""}`. The sandbox answers the same, so a client that reads
`data.result` finds it.
"""

from __future__ import annotations

from typing import Any


def general_ok() -> dict[str, Any]:
    """The kernel's general result of a call that worked (a new dict each time)."""
    return {"result": 0, "errMsg": ""}
