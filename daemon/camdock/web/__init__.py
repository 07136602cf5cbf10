"""The custodian's console: ``camdock web`` (app.py), its templates and its one script."""
