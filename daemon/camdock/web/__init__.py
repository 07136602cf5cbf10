"""The custodian's console: ``camdock web`` (app.py, console.py, pages/), its templates and its
one script."""
