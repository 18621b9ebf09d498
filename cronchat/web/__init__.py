"""The HTTP side: the app factory, the route table and thin handlers."""
