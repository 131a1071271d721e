"""The words the email itself uses, one table per language."""

from __future__ import annotations

import datetime as dt
from typing import TypedDict


class Labels(TypedDict):
    written_by: str
    read_more: str
    unsubscribe: str
    greeting_named: str
    greeting: str
    issue_number: str
    in_this_issue: str
    why_received: str
    view_online: str
    months: tuple[str, ...]
    colon: str


LABELS: dict[str, Labels] = {
    "fr": {
        "written_by": "Rédigé par",
        "read_more": "Lire la suite",
        "unsubscribe": "Se désabonner",
        "greeting_named": "Bonjour {name},",
        "greeting": "Bonjour,",
        "issue_number": "Numéro {number}",
        "in_this_issue": "Dans ce numéro",
        "why_received": "Vous recevez cette lettre car vous y êtes abonné·e.",
        "view_online": "Voir dans le navigateur",
        "colon": "\u00a0:",
        "months": (
            "janvier",
            "février",
            "mars",
            "avril",
            "mai",
            "juin",
            "juillet",
            "août",
            "septembre",
            "octobre",
            "novembre",
            "décembre",
        ),
    },
    "en": {
        "written_by": "Written by",
        "read_more": "Read more",
        "unsubscribe": "Unsubscribe",
        "greeting_named": "Hello {name},",
        "greeting": "Hello,",
        "issue_number": "Issue {number}",
        "in_this_issue": "In this issue",
        "why_received": "You receive this letter because you subscribed to it.",
        "view_online": "View in your browser",
        "colon": ":",
        "months": (
            "January",
            "February",
            "March",
            "April",
            "May",
            "June",
            "July",
            "August",
            "September",
            "October",
            "November",
            "December",
        ),
    },
}


def labels_for(language: str) -> Labels:
    return LABELS[language]


def long_date(value: dt.date, language: str) -> str:
    """`24 novembre 2026` / `24 November 2026`."""
    return f"{value.day} {LABELS[language]['months'][value.month - 1]} {value.year}"
