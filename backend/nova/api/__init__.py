"""HTTP layer: thin routers (one per resource), dependencies and error rendering."""
