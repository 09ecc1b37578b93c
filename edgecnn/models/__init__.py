"""The model zoo (torch). One architecture family per file; build models through
``edgecnn.registry.build(name, ...)`` so names, cards and input checks stay in one place."""
