"""``cronchat media``: look after uploaded images."""

from __future__ import annotations

import click

from cli.common import Context, emit, fails_in_one_line
from cronchat.runtime import Runtime
from cronchat.services.media import Pruned


@click.group()
def media() -> None:
    """Look after uploaded images."""


@media.command("prune")
@click.option(
    "--older-than",
    "older_than",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="Remove uploads created more than this many hours ago.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_obj
@fails_in_one_line
def media_prune(obj: Context, older_than: float, as_json: bool) -> None:
    """Remove uploads never used in a message, from the database and the media store."""

    async def prune(rt: Runtime) -> Pruned:
        await rt.blocking.run(rt.check_storage)
        return await rt.services.media.prune(older_than)

    pruned = obj.run(prune)
    text = f"removed {len(pruned.media_ids)} unused uploads older than {older_than:g} hours"
    if pruned.orphaned_keys:
        text += f"; {len(pruned.orphaned_keys)} stored objects could not be deleted"
    emit(
        as_json,
        {
            "removed": len(pruned.media_ids),
            "media_ids": pruned.media_ids,
            "orphaned_keys": pruned.orphaned_keys,
        },
        text,
    )
