"""Business logic and transactions; the only layer that writes the store."""
