"""Read label, offset and weight columns from CSV or Parquet, in record batches, and stream
files of any size through a :class:`~logitshift.Sketch` or a :class:`~logitshift.GroupSketch`.

The files source itself is :mod:`logitshift._sources.files`; these are its public functions.
"""

from ._sources.files import (DEFAULT_BATCH_ROWS, FORMATS, check_format, expand_sources,
                             iter_batches, read_columns, sketch_file, sketch_groups_file)

__all__ = ["iter_batches", "read_columns", "sketch_file", "sketch_groups_file", "expand_sources",
           "check_format", "DEFAULT_BATCH_ROWS", "FORMATS"]
