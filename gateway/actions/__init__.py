"""The action catalog: names, aliases, parameter models and summaries."""

from __future__ import annotations

from gateway.actions import (
    account,
    bench,
    essence,
    extended_account,
    extended_group,
    extended_message,
    file,
    flash,
    friend,
    group,
    media,
    message,
    napcat,
    notice,
    online_file,
    request,
    stream,
    system,
    todo,
)
from gateway.actions.catalog import Action, Catalog, NoParams, Params


def default_catalog() -> Catalog:
    """Every action the gateway knows, built once at start-up."""
    return Catalog(
        [
            *system.ACTIONS,
            *account.ACTIONS,
            *message.ACTIONS,
            *friend.ACTIONS,
            *group.ACTIONS,
            *request.ACTIONS,
            *file.ACTIONS,
            *media.ACTIONS,
            *essence.ACTIONS,
            *notice.ACTIONS,
            *napcat.ACTIONS,
            *extended_account.ACTIONS,
            *extended_group.ACTIONS,
            *extended_message.ACTIONS,
            *todo.ACTIONS,
            *online_file.ACTIONS,
            *flash.ACTIONS,
            *stream.ACTIONS,
            *bench.ACTIONS,
        ]
    )


__all__ = ["Action", "Catalog", "NoParams", "Params", "default_catalog"]
