# Types of the compiled scanner in _log_records_scan.pyx.
from typing import Any

ScannedRecord = tuple[str, int, int, list[Any] | None, int, int]

def scan_log_records(data: bytes) -> list[ScannedRecord]: ...
