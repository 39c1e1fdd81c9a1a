"""What a cleanup removed (or would remove) and what it left, in its own module so that
:mod:`ttg_lib.cleanup` and :mod:`ttg_lib.cluster.kubernetes.cleanup` both fill it without
importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CleanupReport:
    dry_run: bool
    removed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        verb = "would remove" if self.dry_run else "removed"
        out = [f"{verb}: {item}" for item in self.removed]
        out += [f"skipped: {item}" for item in self.skipped]
        return out or ["nothing of TTG's to clean up"]
