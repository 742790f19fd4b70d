"""A slow DualChat caller's merged deltas keep each answer's blocks apart.

When a caller falls behind, gateway.backlog joins a route's waiting text
deltas into one message. An answer with a tool call holds several blocks
(text, a tool call, text), and a caller rebuilds each block from the deltas
that name its index, so only text of the same route and the same block may be
joined, and a tool call's input fragments go out exactly as Bedrock streamed
them. These drive the Backlog the gateway writes from, with a backlog deep
enough that it merges (test_gateway_fanout.py shows a real slow caller
getting there).
"""

from __future__ import annotations

from collections.abc import Iterable

from dualnova.chat.v1 import chat_pb2
from dualnova.gateway.v1 import gateway_pb2
from gateway.backlog import MERGE_BACKLOG, Backlog


def text(route: str, piece: str, block: int = 0) -> gateway_pb2.DualChatResponse:
    return gateway_pb2.DualChatResponse(
        route=route, delta=chat_pb2.Delta(text=piece, content_block_index=block)
    )


def tool_input(route: str, piece: str, block: int) -> gateway_pb2.DualChatResponse:
    return gateway_pb2.DualChatResponse(
        route=route,
        tool_input_delta=chat_pb2.ToolInputDelta(content_block_index=block, input_json=piece),
    )


def block_stop(route: str, block: int) -> gateway_pb2.DualChatResponse:
    return gateway_pb2.DualChatResponse(
        route=route, content_block_stop=chat_pb2.ContentBlockStop(content_block_index=block)
    )


def tool_start(route: str, block: int) -> gateway_pb2.DualChatResponse:
    return gateway_pb2.DualChatResponse(
        route=route,
        tool_use_start=chat_pb2.ToolUseStart(
            content_block_index=block, tool_use_id="tooluse_0123456789abcdef", name="get_weather"
        ),
    )


def drain(events: Iterable[gateway_pb2.DualChatResponse]) -> list[tuple[str, str, int, str]]:
    """Everything the backlog sends for `events` queued at once: (route, kind, block, text)."""
    backlog = Backlog()
    backlog.extend(events)
    sent = []
    while backlog:
        event = backlog.pop()
        kind = event.WhichOneof("event")
        if kind == "delta":
            sent.append((event.route, kind, event.delta.content_block_index, event.delta.text))
        elif kind == "tool_input_delta":
            piece = event.tool_input_delta
            sent.append((event.route, kind, piece.content_block_index, piece.input_json))
        else:
            sent.append((event.route, kind, -1, ""))
    return sent


def test_text_of_two_blocks_of_one_route_is_never_joined() -> None:
    # Bedrock ends a block before the next begins; even without the stop between
    # them, text of block 0 and block 2 stays in two messages.
    many = MERGE_BACKLOG * 2
    events = [
        text("micro", "first"),
        *(text("micro", f"a{i};", 0) for i in range(many)),
        *(text("micro", f"c{i};", 2) for i in range(many)),
    ]
    sent = drain(events)
    assert sent[0] == ("micro", "delta", 0, "first")
    joined = {}
    for route, kind, block, piece in sent[1:]:
        assert (route, kind) == ("micro", "delta")
        joined[block] = joined.get(block, "") + piece
    assert joined == {
        0: "".join(f"a{i};" for i in range(many)),
        2: "".join(f"c{i};" for i in range(many)),
    }
    assert [block for _, _, block, _ in sent] == sorted(block for _, _, block, _ in sent)
    assert len(sent) < len(events), "a caller this far behind still gets merged text"


def test_tool_input_fragments_go_out_one_by_one_and_text_never_crosses_them() -> None:
    many = MERGE_BACKLOG * 2
    fragments = [f'{{"k{i}":' for i in range(many)]
    events = [
        text("pro", "I will call get_weather."),
        *(text("pro", f"t{i};") for i in range(many)),
        block_stop("pro", 0),
        tool_start("pro", 1),
        *(tool_input("pro", piece, 1) for piece in fragments),
        block_stop("pro", 1),
        *(text("pro", f"e{i};", 2) for i in range(many)),
    ]
    sent = drain(events)

    tool_pieces = [piece for _, kind, _, piece in sent if kind == "tool_input_delta"]
    assert tool_pieces == fragments, "each fragment as Bedrock streamed it, none joined"
    kinds = [kind for _, kind, _, _ in sent]
    first_tool = kinds.index("tool_input_delta")
    last_tool = len(kinds) - 1 - kinds[::-1].index("tool_input_delta")
    assert kinds[first_tool : last_tool + 1] == ["tool_input_delta"] * many
    assert kinds[first_tool - 2 : first_tool] == ["content_block_stop", "tool_use_start"]
    assert kinds[last_tool + 1] == "content_block_stop"
    texts = {0: "", 2: ""}
    for _, kind, block, piece in sent:
        if kind == "delta":
            texts[block] += piece
    assert texts[0] == "I will call get_weather." + "".join(f"t{i};" for i in range(many))
    assert texts[2] == "".join(f"e{i};" for i in range(many))
    assert len(sent) < len(events), "the text around the tool call is still merged"


def test_another_routes_tool_input_stops_the_merge_and_keeps_its_place() -> None:
    many = MERGE_BACKLOG * 2
    events = [
        text("micro", "m"),
        *(text("micro", f"{i};") for i in range(many)),
        tool_input("pro", '{"city":', 1),
        text("micro", "after;"),
        *(text("micro", f"x{i};") for i in range(4)),
    ]
    sent = drain(events)
    assert sent[0] == ("micro", "delta", 0, "m")
    cut = sent.index(("pro", "tool_input_delta", 1, '{"city":'))
    before = "".join(piece for _, _, _, piece in sent[1:cut])
    after = "".join(piece for _, _, _, piece in sent[cut + 1 :])
    assert before == "".join(f"{i};" for i in range(many)), "no micro text moved past it"
    assert after == "after;" + "".join(f"x{i};" for i in range(4))
