"""The `perpetua` command: serving, migrations, database access and operators' long
jobs. Each subcommand lives in its own module and calls the same services as the
web application."""
