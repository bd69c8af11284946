"""The scoring path end to end: real registry, real sklearn models, the real Litestar app.

HTTP goes through Litestar's TestClient in process, through httpx's ASGI
transport where requests must overlap, and over a real uvicorn socket on
127.0.0.1 for the hot swap. Expected predictions always come from calling
the model object directly.
"""
