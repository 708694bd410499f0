"""A local mail catcher: an SMTP server on loopback that keeps every message in a Maildir.

    python scripts/mail_catcher.py --port 4202 --maildir var/mail

``scripts/server.py start`` runs it beside the Prefect server, and registers the
``smtp-server/default`` block pointing at it (127.0.0.1, that port, no TLS, no login), so the
Invoice Email Sender delivers out of the box. Every message lands as one file in
``<maildir>/new`` (aiosmtpd's ``Mailbox`` handler; any mail reader opens the folder, e.g.
``mutt -f var/mail``), with ``X-MailFrom`` and ``X-RcptTo`` headers naming the envelope.
Nothing is relayed anywhere. It stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox

LOOPBACK = "127.0.0.1"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="scripts/mail_catcher.py", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--maildir", required=True, help="Maildir folder (created if missing)")
    args = parser.parse_args(argv)
    maildir = Path(args.maildir).resolve()
    maildir.parent.mkdir(parents=True, exist_ok=True)
    controller = Controller(Mailbox(maildir), hostname=LOOPBACK, port=args.port)
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    controller.start()
    print(f"mail catcher on {LOOPBACK}:{args.port}, messages in {maildir}", flush=True)
    try:
        stopped.wait()
    finally:
        controller.stop()
        print("mail catcher stopped", flush=True)


if __name__ == "__main__":
    main()
