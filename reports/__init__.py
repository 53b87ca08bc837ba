"""The reports room: the SEAL markdown (Jinja2 templates, i18n catalogs), the tag, and verify."""
