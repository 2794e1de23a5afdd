"""The Shoal SDK: an azure-ai-ml shaped client that always speaks HTTP to a Shoal server."""
