"""The Textual terminal UI of mlbox (installed as ``mlbox.tui``)."""
