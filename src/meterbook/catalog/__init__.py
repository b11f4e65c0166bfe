"""Products of the catalog and their dated prices."""
