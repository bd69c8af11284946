"""One screen per service (and the screens they open)."""
