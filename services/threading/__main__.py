"""`python -m services.threading`: run the threading service."""

from services.common.runtime import main
from services.threading.app import run

main("threading", run)
