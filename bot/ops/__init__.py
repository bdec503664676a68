"""Running the bot for real: health and metrics endpoints, backups, container start-up."""
