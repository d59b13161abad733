"""``python -m juggernaut.serve [daphne options] juggernaut.asgi:application``: daphne, with an access
log that records no token. daphne's command line has no option for the access log's class, so this
entry point swaps it in before handing over to daphne's own."""

from daphne import cli

from juggernaut.redaction import RedactingAccessLog


def main() -> None:
    cli.AccessLogGenerator = RedactingAccessLog
    cli.CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
