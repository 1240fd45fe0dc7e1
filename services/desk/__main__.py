"""`python -m tidydesk.desk`: run the desk service (tags, escalation, rota, notices, kudos,
auto-close)."""

from tidydesk.common.runtime import main
from tidydesk.desk.app import run

main("desk", run)
