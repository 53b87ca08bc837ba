"""The governed F9.10 stack (compose file, configs, app) and the backends that bring it up."""
