"""The ticket domain: the fold (`ticket`), the read model the services share (`view`),
mailbox tenants (`mailbox`), reply tokens (`tokens`) and the agents' commands with their one
handler registry (`commands`). HTTP routes decode a request into a command and `execute` it.
"""
