"""Serving: registered models answered over HTTP, batched, hot-swapped, shadowed, logged.

`ServingService` (``service.py``) decides what is served and scores requests;
``deployment.py`` makes one version servable (load, compose, warm); the
``batcher.py`` runs each model on its own thread; ``codecs.py`` and
``tensors.py`` turn bodies into inputs and outputs into JSON; ``predlog.py``
appends every prediction to Parquet; ``metrics.py`` renders Prometheus text.
The HTTP routes live in `mlbox.api.serving`; nothing here imports a web
framework.
"""
