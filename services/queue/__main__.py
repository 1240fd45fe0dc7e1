"""`python -m services.queue`: run the queue service."""

from services.common.runtime import main
from services.queue.app import run

main("queue", run)
