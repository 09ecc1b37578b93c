"""Training in PyTorch: data sources (``datasets``, ``shapes``), augmentation, the loop, transfer
learning, checkpoints and DDP. ``datasets`` and ``shapes`` need only NumPy and Pillow; the rest
needs the ``torch`` extra. Importing this package imports nothing."""
