"""The lowest level: plain-Python helpers that every other level may use and that import nothing
of normdet: the errors the tools answer with one line (``errors``), atomic file writes and strict
JSON (``io``), the allocator setting (``allocator``), the one walker over nested configs
(``config``) and the names of COCO's metrics (``coco_metrics``)."""
