"""The simulator: the real adapters' fakes, shipped in the package, so ``camdock simulate``
runs a whole station on a laptop."""
