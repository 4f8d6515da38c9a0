"""The tree is the architecture: only the composition root may know the ingest adapters."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_architecture import imported_modules

BROKER = Path(__file__).resolve().parents[2] / "broker"
COMPOSITION_ROOT = BROKER / "app.py"


def test_only_the_app_wiring_module_imports_adapters() -> None:
    offenders = sorted(
        str(path.relative_to(BROKER))
        for path in BROKER.rglob("*.py")
        if path != COMPOSITION_ROOT
        and any(m == "adapters" or m.startswith("adapters.") for m in imported_modules(path))
    )
    assert offenders == []
