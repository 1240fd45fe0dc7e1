"""`python -m services.notify`: run the notify service."""

from services.common.runtime import main
from services.notify.app import run

main("notify", run)
