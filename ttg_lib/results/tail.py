"""Following a run's results while the orchestrator writes them: only what is new.

The writer lays every flush down as one complete part (``results.parts/part-NNNNNN.parquet``,
written aside as ``*.tmp`` and renamed whole, see :mod:`.writer`), so a part that has its
final name is final. :class:`PartsTail` lists the parts directory, reads each part it has not
read yet (only the columns asked for) and remembers it by name: a second each for a whole
run costs one directory listing plus the new rows, never the table again. It takes no lock
and writes nothing. A part it cannot read yet (moved aside by the close, cut short on a
full disk) is tried again at the next call; at close the parts move to
``results.parts.merged`` under the same names, so nothing is read twice or lost there.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .layout import MERGED_DIR, PARTS_DIR, ValueLayout, conform


class PartsTail:
    """The rows of ``record_dir``'s parts that :meth:`read_new` has not returned yet."""

    def __init__(self, record_dir: str | Path, skip: Sequence[str] = ()):
        self.dir = Path(record_dir)
        self.skip = frozenset(skip)  # columns never read (``worker``, ``value_json``, ...)
        self.seen: set[str] = set()  # part names read (a name is never reused by a run)
        self.schema: pa.Schema | None = None  # the newest part's schema with values
        self.rows = 0

    def read_new(self) -> pa.Table | None:
        """The rows of the parts written since the last call, in the newest layout (a column
        widened later is widened here too), or None when there is none."""
        tables = []
        for path in self._new_parts():
            try:
                table = self._read(path)
            except (OSError, pa.ArrowInvalid):  # moved aside or not whole: the next call
                continue
            self.seen.add(path.name)
            if ValueLayout.from_schema(table.schema).mode != "none" or self.schema is None:
                self.schema = table.schema
            tables.append(table)
        if not tables:
            return None
        assert self.schema is not None
        schema = _union(self.schema, tables)
        batches = [conform(b, schema) for t in tables for b in t.to_batches()]
        self.rows += sum(b.num_rows for b in batches)
        return pa.Table.from_batches(batches, schema)

    def _new_parts(self) -> list[Path]:
        found: dict[str, Path] = {}
        for sub in (MERGED_DIR, PARTS_DIR):  # the same names in both during a close
            try:
                names = [p for p in (self.dir / sub).iterdir()
                         if p.name.startswith("part-") and p.name.endswith(".parquet")]
            except FileNotFoundError:
                continue
            found.update((p.name, p) for p in names if p.name not in self.seen)
        return [found[name] for name in sorted(found)]

    def _read(self, path: Path) -> pa.Table:
        """One part, opened once (a rename of its directory meanwhile does not matter)."""
        with pq.ParquetFile(path) as part:
            names = [c for c in part.schema_arrow.names if c not in self.skip]
            return part.read(columns=names, use_threads=False)


def _union(schema: pa.Schema, tables: Sequence[pa.Table]) -> pa.Schema:
    """The newest schema, plus any column that only older parts had."""
    fields = list(schema)
    for table in tables:
        fields += [f for f in table.schema if f.name not in {g.name for g in fields}]
    return pa.schema(fields, metadata=schema.metadata)
