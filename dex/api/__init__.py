"""The HTTP API: FastAPI app factory, one router per resource, errors, auth,
forwarding to the leader. Turns engine reasons into HTTP; nothing below this
layer knows about HTTP."""
