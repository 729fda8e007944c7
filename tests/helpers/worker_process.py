"""One restore delivery in a process of its own, as a Lambda container runs it: a test can kill
it mid-way. Settings come from the environment; the message is the first argument."""

from __future__ import annotations

import sys

from photo_restore import worker_wiring
from photo_restore.queue import RestoreMessage


def main(argv: list[str]) -> None:
    message = RestoreMessage.model_validate_json(argv[1])
    worker_wiring.restore_run().run(message)


if __name__ == "__main__":
    main(sys.argv)
