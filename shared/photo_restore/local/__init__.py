"""Local stand-ins and the Docker-free local stack: developer tooling, never imported by a Lambda handler."""
