"""Maps: the raster grid, location fields and their pyramid, likelihood, encoder rasters."""
