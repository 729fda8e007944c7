"""Photo restoration domain package: kept free of imports so each Lambda loads only what it uses."""
