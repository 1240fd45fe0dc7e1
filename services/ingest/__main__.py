"""`python -m tidydesk.ingest`: run the ingest service."""

from tidydesk.common.runtime import main
from tidydesk.ingest.app import run

main("ingest", run)
