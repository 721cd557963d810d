"""The `dataops` command: parse, build a typed command, call the engine, print, and map the
error tree to exit codes in one table (:data:`EXIT_CODES`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

EXIT_OK, EXIT_UNEXPECTED = 0, 1


def _exit_codes() -> list[tuple[type[BaseException], int]]:
    """Most specific first: the first class an error is an instance of gives its code."""
    from runtime import errors as e

    return [
        (e.TransitionRejected, 3),
        (e.ConflictError, 4),
        (e.ThrottledError, 4),
        (e.NotFoundError, 5),
        (e.InputError, 2),
        (e.RecordUnreadable, 2),
        (e.StoreFault, 2),
        (e.DataopsError, EXIT_UNEXPECTED),
    ]


def exit_code(error: BaseException) -> int:
    return next((code for cls, code in _exit_codes() if isinstance(error, cls)), EXIT_UNEXPECTED)


def main(argv: Sequence[str] | None = None) -> int:
    from runtime.cli.context import Ctx
    from runtime.cli.parser import build_parser

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse printed its usage error (exit 2) or --help/--version
        return int(e.code or 0)
    ctx = Ctx(args)
    from runtime.errors import DataopsError

    try:
        code = int(args.func(ctx))
        ctx.report_quarantined()
        return code
    except DataopsError as e:
        from runtime.cli.render import safe

        message = safe(" ".join(str(e).split("\n")))
        sys.stderr.write(f"error: {message}\n")
        return exit_code(e)
    except OverflowError as e:  # a date past year 9999 or before year 1, however reached
        sys.stderr.write(f"error: a date leaves the representable range (years 1 to 9999): {e}; "
                         "use dates nearer the present\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")
        return 130
    except BrokenPipeError:
        return EXIT_OK
    finally:
        ctx.close()


if __name__ == "__main__":
    sys.exit(main())
