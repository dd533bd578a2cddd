"""What ``batchrun validate`` prints of valid manifests: runs per subscription and factory, the
dependency levels and longest chain, and the warnings."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Final

from batchrun.text import counted

if TYPE_CHECKING:
    from collections.abc import Sequence

    from batchrun.manifest.loader import Manifest

__all__ = ["describe"]

# what is shown of a deep graph: the count of levels and the chain's length say the rest
_SHOWN_LEVELS: Final = 8
_SHOWN_CHAIN: Final = 8


def describe(manifests: Sequence[Manifest]) -> str:
    """What ``batchrun validate`` prints: run counts per subscription and factory, warnings."""
    counts = Counter((run.subscription, run.factory) for m in manifests for run in m.runs)
    lines = [f"{counted(sum(counts.values()), 'run')} in {counted(len(manifests), 'manifest')}"]
    width = max((len(factory) for _, factory in counts), default=0)
    for subscription in sorted({sub for sub, _ in counts}):
        factories = sorted((f, n) for (sub, f), n in counts.items() if sub == subscription)
        lines.append(f"subscription {subscription}: {counted(sum(n for _, n in factories), 'run')}")
        lines.extend(f"  {factory:<{width}}  {n:>7}" for factory, n in factories)
    for manifest in manifests:
        if manifest.needs:
            lines.extend(_order_lines(manifest, named=len(manifests) > 1))
    warnings = [str(warning) for m in manifests for warning in m.warnings]
    if warnings:
        lines.append(f"{counted(len(warnings), 'warning')}:")
        lines.extend(f"  {warning}" for warning in warnings)
    return "\n".join(lines)


def _order_lines(manifest: Manifest, *, named: bool) -> list[str]:
    """The dependency levels and the longest chain, for ``describe``."""
    from batchrun.manifest.order import levels, longest_chain

    counts = [len(level) for level in levels(manifest)]
    shown = [f"level {n}: {counted(c, 'run')}" for n, c in enumerate(counts, 1)]
    if len(shown) > _SHOWN_LEVELS:
        hidden = len(shown) - _SHOWN_LEVELS + 1
        shown = [*shown[: _SHOWN_LEVELS - 2], f"{hidden} more levels", shown[-1]]
    chain = longest_chain(manifest)
    chain_line = f"longest chain: {' -> '.join(chain)}"
    if len(chain) > _SHOWN_CHAIN:
        half = _SHOWN_CHAIN // 2
        middle = f"... {len(chain) - 2 * half} more ..."
        shortened = " -> ".join([*chain[:half], middle, *chain[-half:]])
        chain_line = f"longest chain ({len(chain)} runs): {shortened}"
    prefix = f"{manifest.path}: " if named else ""
    return [
        f"{prefix}dependency levels: {len(counts)} ({', '.join(shown)})",
        f"{prefix}{chain_line}",
    ]
