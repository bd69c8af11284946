"""Model registry: named models, immutable versions with lineage and signature, moving aliases.

`RegistryService` (``service.py``) is the API; flavors (``flavors/``) save
and load each framework's models; ``signature.py`` infers and checks input
schemas; ``cache.py`` is the verified copy models are loaded from.
"""
