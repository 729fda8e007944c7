"""Local stand-ins and the Docker-free local stack: developer tooling, never used by a handler."""
