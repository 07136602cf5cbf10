"""The console's pages, one module per group; web/app.py routes the URLs to them."""
