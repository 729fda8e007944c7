"""Photo restoration domain package; nothing heavy imported here: each Lambda loads what it uses."""

import logging

# Registered here so each handler can give the package's loggers its JSON format at import.
logging.getLogger(__name__).addHandler(logging.NullHandler())
