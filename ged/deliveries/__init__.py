"""Deliveries: forwarding a document to a firm's tools (connections), decided once at
deposit, sent by workers, answered by the tools.

The flow, one module a step:
- ``deposit.decide`` (inside the deposit's transaction) creates one delivery per
  connection whose effective switch is on for the folder; ``manual.send_manual``
  does the same by hand, for the web and the API alike;
- ``attempt.run`` (the job ``ged.jobs.deliver``) leases, claims, sends with the
  ``http`` or ``email`` sender, records the outcome and schedules retries;
  ``recovery.reconcile`` re-enqueues what the database says is pending and Redis lost;
- ``verdicts`` takes the tool's signed ``validated``/``rejected``; ``status`` turns
  every connection's latest delivery into the document's status.
Beside them: ``guard`` (ged sends only to public addresses), ``signing`` (Standard
Webhooks), ``envelope``, ``bodies`` and ``links`` (what a tool receives), ``options``
(what a connection sends), ``probe`` (trying a connection).

This module is the package's public face: the names other modules use.
"""

from __future__ import annotations

from .attempt import enqueue, run
from .deposit import decide
from .links import file_link, open_file_link
from .manual import ManualSend, folder_documents, send_manual
from .options import effective_options
from .probe import test_connection
from .recovery import reconcile
from .status import (delivery_dict, lock_documents, refresh_document_status,
                     refresh_document_statuses, status_from)
from .verdicts import authenticate_status, record_verdict, remember_message

__all__ = [
    "ManualSend", "authenticate_status", "decide", "delivery_dict", "effective_options",
    "enqueue", "file_link", "folder_documents", "lock_documents", "open_file_link",
    "reconcile", "record_verdict", "refresh_document_status", "refresh_document_statuses",
    "remember_message", "run", "send_manual", "status_from", "test_connection",
]
