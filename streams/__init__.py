"""EMC Streams: exact per-agency counts of fully-online dossiers."""

__version__ = "0.1.0"
