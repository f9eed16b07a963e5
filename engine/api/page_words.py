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
    broken_title: str
    broken: str
    """Said for a link that is cut short or altered: a person followed it, and a page of
    JSON would only make them mark the messages as spam."""


WORDS: dict[str, PageWords] = {words.lang: words for words in (
    PageWords("en", "Unsubscribe",
              {"email": "Stop e-mails from us?", "push": "Stop notifications from us?"},
              "Unsubscribe", "Unsubscribed", "You will not get these messages any more.",
              "Link not valid", "This unsubscribe link is incomplete or has been altered. "
              "Open it again from the message, in full."),
    PageWords("pl", "Wypisz się",
              {"email": "Nie chcesz już dostawać od nas e-maili?",
               "push": "Nie chcesz już dostawać od nas powiadomień?"},
              "Wypisz mnie", "Wypisano", "Nie będziesz już dostawać tych wiadomości.",
              "Nieprawidłowy link", "Ten link do wypisania się jest niepełny lub został "
              "zmieniony. Otwórz go ponownie z wiadomości, w całości."),
    PageWords("de", "Abmelden",
              {"email": "Keine E-Mails mehr von uns erhalten?",
               "push": "Keine Benachrichtigungen mehr von uns erhalten?"},
              "Abmelden", "Abgemeldet", "Sie erhalten diese Nachrichten nicht mehr.",
              "Ungültiger Link", "Dieser Abmeldelink ist unvollständig oder wurde verändert. "
              "Öffnen Sie ihn erneut vollständig aus der Nachricht."),
    PageWords("fr", "Se désabonner",
              {"email": "Ne plus recevoir nos e-mails\u00a0?",
               "push": "Ne plus recevoir nos notifications\u00a0?"},
              "Se désabonner", "Désabonnement effectué", "Vous ne recevrez plus ces messages.",
              "Lien non valide", "Ce lien de désabonnement est incomplet ou a été modifié. "
              "Ouvrez-le de nouveau, en entier, depuis le message."),
    PageWords("es", "Darse de baja",
              {"email": "¿Dejar de recibir nuestros correos?",
               "push": "¿Dejar de recibir nuestras notificaciones?"},
              "Darme de baja", "Baja confirmada", "Ya no recibirás estos mensajes.",
              "Enlace no válido", "Este enlace para darse de baja está incompleto o ha sido "
              "modificado. Ábrelo de nuevo, completo, desde el mensaje."),
    PageWords("it", "Annulla l'iscrizione",
              {"email": "Non vuoi più ricevere le nostre e-mail?",
               "push": "Non vuoi più ricevere le nostre notifiche?"},
              "Annulla l'iscrizione", "Iscrizione annullata",
              "Non riceverai più questi messaggi.",
              "Link non valido", "Questo link per annullare l'iscrizione è incompleto o è "
              "stato modificato. Aprilo di nuovo, per intero, dal messaggio."),
    PageWords("nl", "Afmelden",
              {"email": "Geen e-mails meer van ons ontvangen?",
               "push": "Geen meldingen meer van ons ontvangen?"},
              "Afmelden", "Afgemeld", "Je ontvangt deze berichten niet meer.",
              "Ongeldige link", "Deze afmeldlink is onvolledig of gewijzigd. Open hem "
              "opnieuw, volledig, vanuit het bericht."),
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
