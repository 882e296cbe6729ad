"""Email and SMS as Nameko dependencies: SMTP or a local Maildir, an HTTP SMS provider or the log.

Backends raise ``PermanentFailure`` for a message that can never go out (a refused recipient); anything else they
raise is transient, and the caller retries it later.
"""

import logging
import mailbox
import os
import smtplib
import ssl
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import formataddr, formatdate, make_msgid

import requests
from nameko import config
from nameko.extensions import DependencyProvider

log = logging.getLogger(__name__)


class PermanentFailure(Exception):
    """A send that retrying cannot fix."""


class ReusedHeaderClasses(HeaderRegistry):
    """The stdlib's registry builds a new class with ``type()`` every time a header is set or counted (a dozen per
    email, 7 % of the notifications service's CPU per order); one per header name does the same work."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.classes = {}

    def __getitem__(self, name):
        name = name.lower()
        if name not in self.classes:
            self.classes[name] = super().__getitem__(name)
        return self.classes[name]


# email.policy.default with its header classes built once; the bytes of a message do not change
POLICY = default_policy.clone(header_factory=ReusedHeaderClasses())


def setting(key, default=None):
    value = config.get(key)
    return default if value in (None, "") else value


class MaildirBackend:
    """Development: each message becomes a file under ``MAILDIR_PATH/new``; no server needed."""

    def __init__(self, path):
        self.path = path

    def send(self, message):
        # Maildir(create=True) only builds tmp/new/cur when the folder itself is missing.
        for folder in ("tmp", "new", "cur"):
            os.makedirs(os.path.join(self.path, folder), exist_ok=True)
        mailbox.Maildir(self.path, create=False).add(message)


class SmtpBackend:
    def __init__(self, host, port, user=None, password=None, security="starttls", timeout=10):
        self.host, self.port = host, int(port)
        self.user, self.password = user, password
        self.security, self.timeout = (security or "none").lower(), float(timeout)

    def send(self, message):
        try:
            with self.connect() as smtp:
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            if all(code >= 500 for code, _ in exc.recipients.values()):
                raise PermanentFailure(f"recipients refused: {exc.recipients}") from exc
            raise
        except smtplib.SMTPResponseException as exc:
            if exc.smtp_code >= 500 and exc.smtp_code != 521:
                raise PermanentFailure(f"{exc.smtp_code} {exc.smtp_error!r}") from exc
            raise

    def connect(self):
        if self.security == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout,
                                    context=ssl.create_default_context())
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        return smtp


def make_mail_backend():
    host = setting("SMTP_HOST")
    if not host:
        return MaildirBackend(setting("MAILDIR_PATH", "var/mail"))
    return SmtpBackend(host, setting("SMTP_PORT", 587), setting("SMTP_USER"), setting("SMTP_PASSWORD"),
                       setting("SMTP_SECURITY", "starttls"), setting("SMTP_TIMEOUT", 10))


class Mailer(DependencyProvider):
    def setup(self):
        self.backend = make_mail_backend()
        self.sender = setting("MAIL_FROM", "shop@example.com")
        self.sender_name = setting("SHOP_NAME", "")

    def get_dependency(self, worker_ctx):
        return self

    def send(self, to, subject, text, html=None, attachments=(), message_key=None):
        """Send one email; ``message_key`` makes a stable Message-ID, so a repeat can be recognised downstream."""
        message = EmailMessage(policy=POLICY)
        message["From"] = formataddr((self.sender_name, self.sender))
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        domain = self.sender.rpartition("@")[2] or "localhost"
        message["Message-ID"] = f"<{message_key}@{domain}>" if message_key else make_msgid(domain=domain)
        message.set_content(text)
        if html:
            message.add_alternative(html, subtype="html")
        for filename, content, mime_type in attachments:
            maintype, _, subtype = mime_type.partition("/")
            message.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
        self.backend.send(message)
        return message


class LogSmsProvider:
    """Development: an SMS is a log line."""

    def send(self, to, text):
        log.info("SMS to %s: %s", to, text)


class HttpSmsProvider:
    """POSTs ``{from, to, text}`` as JSON to ``SMS_PROVIDER_URL`` (with a bearer token if configured)."""

    def __init__(self, url, token=None, sender=None, timeout=10):
        self.url, self.token, self.sender, self.timeout = url, token, sender, float(timeout)

    def send(self, to, text):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = requests.post(self.url, json={"from": self.sender, "to": to, "text": text},
                                 headers=headers, timeout=self.timeout)
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise PermanentFailure(f"SMS provider answered {response.status_code}: {response.text[:200]}")
        response.raise_for_status()


def make_sms_provider():
    url = setting("SMS_PROVIDER_URL")
    if not url:
        return LogSmsProvider()
    return HttpSmsProvider(url, setting("SMS_PROVIDER_TOKEN"), setting("SMS_FROM", "Shop"),
                           setting("SMS_TIMEOUT", 10))


class Sms(DependencyProvider):
    def setup(self):
        self.provider = make_sms_provider()

    def get_dependency(self, worker_ctx):
        return self.provider
