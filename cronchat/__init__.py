"""CronChat: a self-hostable realtime chat backend."""
