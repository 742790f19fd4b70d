"""What a relayed answer must be when deltas that queued up may be merged.

The service may merge deltas that arrived together from Bedrock into one
message (never a call's first delta). A caller can then rely on: the first
delta is Bedrock's first piece alone, and every delta is whole pieces, in order,
with nothing lost or repeated.
"""

from __future__ import annotations

from collections.abc import Sequence


def assert_whole_pieces(deltas: Sequence[str], pieces: Sequence[str]) -> None:
    """Fail unless `deltas` split `pieces` at piece boundaries, the first piece alone."""
    assert deltas, "no deltas"
    assert deltas[0] == pieces[0], "the first delta is not Bedrock's first piece alone"
    index = 0
    for number, delta in enumerate(deltas):
        joined = ""
        while len(joined) < len(delta) and index < len(pieces):
            joined += pieces[index]
            index += 1
        assert joined == delta, f"delta {number} {delta!r} is not whole pieces ({joined!r})"
    assert index == len(pieces), f"{len(pieces) - index} pieces never arrived"
