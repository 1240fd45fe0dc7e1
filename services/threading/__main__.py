"""`python -m tidydesk.threading`: run the threading service."""

from tidydesk.common.runtime import main
from tidydesk.threading.app import run

main("threading", run)
