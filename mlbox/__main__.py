"""``python -m mlbox`` is the ``mlbox`` command."""

from mlbox.cli import main

if __name__ == "__main__":
    main()
