"""Storage of a collection: SQLite catalog (truth), ANN vector stores (cache), writer lock, scanner."""
from sensorium.index.catalog import Catalog, FileState, Item, NewSegment, SegmentRow
from sensorium.index.lock import WriterLock
from sensorium.index.scan import ScannedFile, content_hash, scan
from sensorium.index.vectors import VectorStore

__all__ = ["Catalog", "FileState", "Item", "NewSegment", "SegmentRow", "WriterLock", "ScannedFile",
           "content_hash", "scan", "VectorStore"]
