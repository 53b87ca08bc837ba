"""The evidence room: the in-toto-shaped stage documents, their schemas, the store, the manifest and judging."""
