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


# -- newsletter serve (issue 10): the words of the reader-facing pages and the confirmation ---

SERVICE_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "subscribe_title": "S’abonner à {name}",
        "subscribe_intro": "Recevez chaque numéro par e-mail. Vous confirmerez votre adresse "
        "en cliquant sur le lien que nous vous enverrons.",
        "email_label": "Votre adresse e-mail",
        "name_label": "Votre prénom (facultatif)",
        "subscribe_button": "S’abonner",
        "check_inbox_title": "Vérifiez votre boîte de réception",
        "check_inbox": "Si l’adresse {email} peut recevoir la lettre, un e-mail de confirmation "
        "vient d’y être envoyé. Cliquez sur son lien pour terminer votre abonnement.",
        "invalid_email": "Cette adresse e-mail n’est pas valide : vérifiez-la "
        "(par exemple prenom@exemple.fr).",
        "confirm_title": "Confirmer votre abonnement",
        "confirm_intro": "Confirmez l’abonnement de {email} à {name}.",
        "confirm_button": "Confirmer mon abonnement",
        "confirmed_title": "Abonnement confirmé",
        "confirmed": "Merci ! {email} recevra le prochain numéro.",
        "already_confirmed_title": "Abonnement déjà confirmé",
        "already_subscribed": "{email} est déjà abonné à {name} : ce lien n’a plus rien à "
        "confirmer.",
        "link_used": "Ce lien a déjà servi : l’abonnement de {email} a été confirmé, puis a "
        "changé depuis (un désabonnement, par exemple). Un ancien lien ne le rétablit pas : "
        "pour recevoir de nouveau la lettre, abonnez-vous depuis le formulaire.",
        "unsubscribe_title": "Se désabonner",
        "unsubscribe_intro": "Vous ne recevrez plus {name} à cette adresse.",
        "unsubscribe_button": "Me désabonner",
        "unsubscribed_title": "Désabonnement effectué",
        "unsubscribed": "C’est fait : vous ne recevrez plus la lettre. Une erreur ? "
        "Vous pouvez vous réabonner.",
        "resubscribe_button": "Me réabonner",
        "bad_link_title": "Lien invalide ou expiré",
        "bad_link": "Ce lien n’est pas valide ou a expiré. Vous pouvez vous abonner à nouveau "
        "depuis le formulaire.",
        "expired_form": "Le formulaire a expiré : rechargez la page et recommencez.",
        "too_many": "Trop de demandes. Réessayez dans quelques minutes.",
        "mail_subject": "Confirmez votre abonnement à {name}",
        "mail_hello": "Bonjour,",
        "mail_hello_named": "Bonjour {name},",
        "mail_body": "Quelqu’un (vous, sans doute) a demandé à recevoir {name} à l’adresse "
        "{email}. Pour confirmer, ouvrez ce lien (valable {hours} heures) :",
        "mail_ignore": "Si vous n’avez rien demandé, ignorez ce message : vous ne recevrez rien.",
        "archive_link": "Les numéros précédents",
    },
    "en": {
        "subscribe_title": "Subscribe to {name}",
        "subscribe_intro": "Get every issue by email. You will confirm your address by "
        "clicking the link we send you.",
        "email_label": "Your email address",
        "name_label": "Your first name (optional)",
        "subscribe_button": "Subscribe",
        "check_inbox_title": "Check your inbox",
        "check_inbox": "If {email} can receive the newsletter, a confirmation email has just "
        "been sent to it. Click its link to finish subscribing.",
        "invalid_email": "This email address is not valid: check it "
        "(for example name@example.com).",
        "confirm_title": "Confirm your subscription",
        "confirm_intro": "Confirm that {email} subscribes to {name}.",
        "confirm_button": "Confirm my subscription",
        "confirmed_title": "Subscription confirmed",
        "confirmed": "Thank you! {email} will get the next issue.",
        "already_confirmed_title": "Subscription already confirmed",
        "already_subscribed": "{email} is already subscribed to {name}: this link has nothing "
        "left to confirm.",
        "link_used": "This link has been used already: the subscription of {email} was "
        "confirmed, and has changed since (an unsubscription, for example). An old link does "
        "not restore it: to get the newsletter again, subscribe with the form.",
        "unsubscribe_title": "Unsubscribe",
        "unsubscribe_intro": "You will no longer receive {name} at this address.",
        "unsubscribe_button": "Unsubscribe me",
        "unsubscribed_title": "You are unsubscribed",
        "unsubscribed": "Done: you will no longer receive the newsletter. A mistake? "
        "You can subscribe again.",
        "resubscribe_button": "Subscribe again",
        "bad_link_title": "Invalid or expired link",
        "bad_link": "This link is not valid or has expired. You can subscribe again from "
        "the form.",
        "expired_form": "The form has expired: reload the page and try again.",
        "too_many": "Too many requests. Try again in a few minutes.",
        "mail_subject": "Confirm your subscription to {name}",
        "mail_hello": "Hello,",
        "mail_hello_named": "Hello {name},",
        "mail_body": "Someone (you, probably) asked to receive {name} at {email}. "
        "To confirm, open this link (valid for {hours} hours):",
        "mail_ignore": "If you did not ask for anything, ignore this message: you will "
        "receive nothing.",
        "archive_link": "Past issues",
    },
}
