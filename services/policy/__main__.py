"""`python -m services.policy`: run the policy service."""

from services.common.runtime import main
from services.policy.app import run

main("policy", run)
