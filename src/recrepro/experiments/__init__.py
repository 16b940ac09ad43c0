"""One module per notebook: the procedure behind a table, so notebooks stay thin."""
