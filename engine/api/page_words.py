"""The words of the unsubscribe page, in the reader's language.

The person who follows an unsubscribe link is the shop's customer, who got the messages in
their own language (the `lang` variants of SPEC §1.7): the page answers in it too. The
language is the subscriber's `locale` attribute, else the browser's `Accept-Language`, read as
message variants are chosen (`channels.render.preferred_locales`); English when none of them
is one of these.

French puts a no-break space before `?` (so the mark never starts a line); Italian asks
"Non vuoi più ricevere…?", since "Non ricevere più…?" reads as the command "do not receive".
"""

from __future__ import annotations

from dataclasses import dataclass

from channels.render import preferred_locales


@dataclass(frozen=True, slots=True)
class PageWords:
    lang: str
    title: str
    question: dict[str, str]
    """By channel: the question the page asks before the button."""
    button: str
    done_title: str
    done: str


WORDS: dict[str, PageWords] = {words.lang: words for words in (
    PageWords("en", "Unsubscribe",
              {"email": "Stop e-mails from us?", "push": "Stop notifications from us?"},
              "Unsubscribe", "Unsubscribed", "You will not get these messages any more."),
    PageWords("pl", "Wypisz się",
              {"email": "Nie chcesz już dostawać od nas e-maili?",
               "push": "Nie chcesz już dostawać od nas powiadomień?"},
              "Wypisz mnie", "Wypisano", "Nie będziesz już dostawać tych wiadomości."),
    PageWords("de", "Abmelden",
              {"email": "Keine E-Mails mehr von uns erhalten?",
               "push": "Keine Benachrichtigungen mehr von uns erhalten?"},
              "Abmelden", "Abgemeldet", "Sie erhalten diese Nachrichten nicht mehr."),
    PageWords("fr", "Se désabonner",
              {"email": "Ne plus recevoir nos e-mails\u00a0?",
               "push": "Ne plus recevoir nos notifications\u00a0?"},
              "Se désabonner", "Désabonnement effectué", "Vous ne recevrez plus ces messages."),
    PageWords("es", "Darse de baja",
              {"email": "¿Dejar de recibir nuestros correos?",
               "push": "¿Dejar de recibir nuestras notificaciones?"},
              "Darme de baja", "Baja confirmada", "Ya no recibirás estos mensajes."),
    PageWords("it", "Annulla l'iscrizione",
              {"email": "Non vuoi più ricevere le nostre e-mail?",
               "push": "Non vuoi più ricevere le nostre notifiche?"},
              "Annulla l'iscrizione", "Iscrizione annullata",
              "Non riceverai più questi messaggi."),
    PageWords("nl", "Afmelden",
              {"email": "Geen e-mails meer van ons ontvangen?",
               "push": "Geen meldingen meer van ons ontvangen?"},
              "Afmelden", "Afgemeld", "Je ontvangt deze berichten niet meer."),
)}


def words_for(*wishes: object) -> PageWords:
    """The words for the first of `wishes` (a `locale` attribute, an `Accept-Language`
    header; anything else is passed over) that names a language the page speaks."""
    for wish in wishes:
        if not isinstance(wish, str):
            continue
        for locale in preferred_locales(wish):
            found = WORDS.get(locale.split("-")[0])
            if found is not None:
                return found
    return WORDS["en"]
