"""Layer 1, the model: the plain data every room shares — a check's definition and its result (statuses, findings,
locations). No behaviour beyond (de)serialising itself; imports only the kernel."""
