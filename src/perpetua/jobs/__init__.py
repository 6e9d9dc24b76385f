"""Background work that runs beside the web service in the same process tree: each
job calls the same services as requests do, under a `system` actor."""
