"""The JSONL report: writer, reader and summary."""
