"""`python -m services.ingest`: run the ingest service."""

from services.common.runtime import main
from services.ingest.app import run

main("ingest", run)
