"""Mail as the e-mail drop receives it, read in bounded memory.

``reader`` walks a spooled message as a stream, decoding each attachment straight
to a staged file; ``smime`` opens opaque S/MIME signed messages; ``attachments``
sorts the parts into documents to deposit, attachments refused for cause and parts
ignored; ``senders`` says who sent the message and whether to answer them. The
receiver (``ged.smtpd``) uses the names below.
"""

from .attachments import MAX_FORWARDED, MAX_PARTS, Reading, Refusal, message_limit, read_message
from .reader import FILE, PIECE, SKIP, Reader, TooManyParts, decode_words, read_top_headers
from .senders import depositor, may_reply, sender_of

__all__ = ["FILE", "MAX_FORWARDED", "MAX_PARTS", "PIECE", "SKIP", "Reader", "Reading",
           "Refusal", "TooManyParts", "decode_words", "depositor", "may_reply",
           "message_limit", "read_message", "read_top_headers", "sender_of"]
