"""batchctl: the operator's command line (`batchctl --help`)."""

# `batchctl runs` lays runs out as a table on a terminal this wide or wider, else one per line.
TABLE_MIN_WIDTH = 100
