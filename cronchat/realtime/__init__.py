"""Realtime delivery: the broker between processes and the hub of local sockets."""
