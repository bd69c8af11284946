"""The HTTP API (Litestar): management routes behind a token, health and schema open."""
