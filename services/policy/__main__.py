"""`python -m tidydesk.policy`: run the policy service."""

from tidydesk.common.runtime import main
from tidydesk.policy.app import run

main("policy", run)
