"""Exit codes by which a child of ``manage.py runhq`` tells its supervisor more than "it crashed"."""

# The process's identity now belongs to someone else (an admin took over the engine worker's name):
# a restart would be refused the same way, so the supervisor leaves it stopped, says why and keeps the
# rest running. 78 is sysexits' EX_CONFIG: it cannot run as configured.
EXIT_IDENTITY_TAKEN = 78
