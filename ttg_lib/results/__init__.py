"""Results kept as a table: ``results.parquet`` in a run's record, written while the run goes.

One row per point: ``param_id``, one column per axis of the space, the value (``value`` for a
scalar, ``value.<key>`` for each key of a dict of scalars, JSON text otherwise), ``worker``,
``attempt`` and ``error`` (a dead-lettered point has its error and null values).

Four parts: :mod:`.layout` (how values become typed columns), :mod:`.writer` (durable parts,
the merge at close, resume), :mod:`.reading` (files, what a resume skips, pandas, exports),
:mod:`.slicing` (a slice or a sample, read a batch at a time).
"""

from ..errors import ResultsError
from .layout import (
    MERGED_DIR,
    MISFIT,
    PARTS_DIR,
    RESULTS_FILE,
    WORKER_TYPE,
    ValueLayout,
    value_column_names,
)
from .reading import (
    FORMATS,
    export_results,
    failed_chunks,
    frame_of,
    load_results,
    read_table,
    result_files,
    result_rows,
    sample_results,
    stored_chunks,
)
from .tail import PartsTail
from .writer import ROW_GROUP_ROWS, NoResults, ResultsWriter

__all__ = ["FORMATS", "MERGED_DIR", "MISFIT", "PARTS_DIR", "RESULTS_FILE", "ROW_GROUP_ROWS",
           "WORKER_TYPE", "NoResults", "PartsTail", "ResultsError", "ResultsWriter", "ValueLayout",
           "export_results", "failed_chunks", "frame_of", "load_results", "read_table",
           "result_files", "result_rows", "sample_results", "stored_chunks",
           "value_column_names"]
