"""The governed F9.10 stack of the reference project: compose file, configs, the API, its own test suite."""
