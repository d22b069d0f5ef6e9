"""Lesson scenarios driven with real sockets on loopback.

This layer (with ``capture/``) is the only one allowed to open sockets.  The
functions here only make traffic; capturing it is the caller's business.
"""

from capdissect.demo.traffic import LESSON_CLIENT_DATA, LESSON_SERVER_DATA, tcp_lesson, udp_exchange

__all__ = ["LESSON_CLIENT_DATA", "LESSON_SERVER_DATA", "tcp_lesson", "udp_exchange"]
