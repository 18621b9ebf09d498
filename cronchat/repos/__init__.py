"""Repositories: the SQL, as plain functions of a transaction (``tx``), one per intention."""
