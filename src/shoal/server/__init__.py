"""The Shoal server (FastAPI): the only process that writes the store."""
