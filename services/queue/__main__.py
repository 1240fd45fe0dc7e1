"""`python -m tidydesk.queue`: run the queue service."""

from tidydesk.common.runtime import main
from tidydesk.queue.app import run

main("queue", run)
