"""batchrun: trigger many Azure Data Factory pipeline runs from one YAML manifest."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("batchrun")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
