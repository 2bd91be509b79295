"""Helper scripts the Makefile runs (`python -m scripts.<name>`)."""
