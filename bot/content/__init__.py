"""The course as data: schemas and loading."""
