"""The ``camdock`` commands that act on footage, one module each: its options and its run."""
