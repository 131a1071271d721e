"""The words the email and the public archive use, one table per language."""

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
    archive: str
    archive_intro: str
    all_issues: str
    feed: str
    newer_issue: str
    older_issue: str
    by_author: str
    skip_to_content: str
    archive_nav: str
    no_issues: str
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
        "archive": "Archives",
        "archive_intro": "Tous les numéros de la lettre, du plus récent au plus ancien.",
        "all_issues": "Tous les numéros",
        "feed": "Flux Atom",
        "newer_issue": "Numéro suivant",
        "older_issue": "Numéro précédent",
        "by_author": "par {names}",
        "skip_to_content": "Aller au contenu",
        "archive_nav": "Navigation des archives",
        "no_issues": "Aucun numéro pour l’instant.",
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
        "archive": "Archive",
        "archive_intro": "Every issue of the newsletter, newest first.",
        "all_issues": "All issues",
        "feed": "Atom feed",
        "newer_issue": "Newer issue",
        "older_issue": "Older issue",
        "by_author": "by {names}",
        "skip_to_content": "Skip to content",
        "archive_nav": "Archive navigation",
        "no_issues": "No issues yet.",
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
