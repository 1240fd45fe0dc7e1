"""`python -m tidydesk.notify`: run the notify service."""

from tidydesk.common.runtime import main
from tidydesk.notify.app import run

main("notify", run)
