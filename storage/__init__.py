"""Media storage: one small interface and its backends (local disk, S3)."""
