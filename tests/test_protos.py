"""The committed stubs are what protoc makes from protos/ today."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_protos", REPO / "tools" / "gen_protos.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_match_protos(tmp_path: Path) -> None:
    gen = _load_generator()
    gen.generate(tmp_path)
    fresh = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*"))
    assert fresh, "protoc generated nothing"
    stale = [
        str(rel)
        for rel in fresh
        if not (REPO / rel).exists() or (REPO / rel).read_bytes() != (tmp_path / rel).read_bytes()
    ]
    assert not stale, f"stale stubs (run `make protos`): {stale}"


def test_every_proto_has_committed_stubs() -> None:
    protos = sorted((REPO / "protos").rglob("*.proto"))
    assert protos
    for proto in protos:
        stem = proto.relative_to(REPO / "protos").with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert (REPO / f"{stem}{suffix}").exists(), f"missing stub for {proto.name}: {suffix}"
