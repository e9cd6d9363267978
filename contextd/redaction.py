"""Secrets in file content, replaced by a marker before anything is chunked, stored or read.

Three kinds of evidence, in the manner of gitleaks and detect-secrets:

- provider formats, recognisable on their own (`AKIA…`, `ghp_…`, `xoxb-…`, `sk-ant-…`);
- private key blocks (`-----BEGIN … PRIVATE KEY-----` to its END line, any flavour);
- a value assigned to a name that says it is secret (`password`, `api_key`, `token`,
  `client_secret`, `key`…) in code, JSON, YAML, .ini or .env form, or given with such a
  name in other forms (an XML element, a command's flag, also as one item of a list of
  arguments such as Docker's `CMD [...]` or a Kubernetes `args:`, a call such as
  `define(NAME, VALUE)`, a `name`/`value` pair, SQL's `WITH PASSWORD`, `IDENTIFIED [WITH
  plugin] BY` and MariaDB's `IDENTIFIED VIA plugin USING PASSWORD(...)`, and a password's
  hash after `IDENTIFIED WITH plugin AS`), a directive of redis.conf (`requirepass`), a
  command's own form for a password (openssl's `-passin pass:...`, redis-cli's `-a` and
  `openssl enc`'s `-k`, read only on such a command), and a password in a URL
  (`postgres://user:pass@host`), when the value is not a placeholder, a variable or a
  call, and its Shannon entropy is high enough.

`redact(text)` returns the text with each secret replaced by `[REDACTED:kind]`, and the
kinds it found. Line structure is kept: a multi-line secret keeps its newlines, so the
line numbers of everything after it do not move. Pure regular expressions; no network.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
import string
from collections import Counter
from collections.abc import Callable
from typing import NamedTuple
from urllib.parse import unquote


class Redacted(NamedTuple):
    text: str
    kinds: list[str]  # one per secret replaced, in order of position


class Finding(NamedTuple):
    """One secret: where it lies in the text, and what kind it is."""

    start: int
    end: int
    kind: str


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


def _classes(value: str) -> int:
    """How many of lower case, upper case, digits and other characters the value uses."""
    return sum(
        (
            any(c.islower() for c in value),
            any(c.isupper() for c in value),
            any(c.isdigit() for c in value),
            any(not c.isalnum() for c in value),
        )
    )


def _random(value: str, min_entropy: float = 3.0) -> bool:
    return entropy(value) >= min_entropy and _classes(value) >= 2


# The most of one value the patterns below read, quoted or not: a secret is short, but a
# key's base64 (a kubeconfig's `client-key-data`, 2,272 characters for RSA 2048) is not.
# Each value's characters exclude what ends it (its quote mark, a blank, a line end), so
# the reads of two values never overlap and a file is read once however long they are.
# A bare value longer than this runs on in `_whole`; a quoted one is not found.
_LONG = 1048576  # the patterns' {1,1048576}: 1 MiB, the most contextd reads of a file

# Provider formats: (kind, words, pattern, check). A rule runs only on text that holds
# one of its words (lower case), as gitleaks' keywords do: most files hold none. The
# secret is group 1 when there is one, else the whole match; `check` rejects matches too
# regular to be a key.
_E = r"(?![A-Za-z0-9_])"  # a token ends here (that it starts at one is checked after)
Check = Callable[[str], bool]
_RULES: list[tuple[str, tuple[str, ...], str, Check | None]] = [
    ("aws-access-key", ("akia", "asia", "abia", "acca", "a3t"),
     r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16}" + _E, None),
    ("github-token", ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
     r"gh[pousr]_[A-Za-z0-9]{36,251}" + _E, None),
    ("github-token", ("github_pat_",), r"github_pat_[A-Za-z0-9_]{60,251}" + _E, None),
    ("gitlab-token", ("glpat-", "gldt-", "glptt-", "glrt-", "glsoat-", "glcbt-", "glft-"),
     r"gl(?:pat|dt|ptt|rt|soat|cbt|ft|imt|oas)-[A-Za-z0-9_\-]{20,}", None),
    ("slack-token", ("xox",), r"xox[abposre]-[A-Za-z0-9-]{10,}", None),
    ("slack-token", ("xapp-",), r"xapp-\d-[A-Za-z0-9-]{20,}", None),
    ("slack-webhook", ("hooks.slack.com",),
     r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[\w/+-]{20,}", None),
    ("stripe-key", ("_live_", "_test_"), r"[sr]k_(?:live|test)_[A-Za-z0-9]{20,}" + _E, None),
    ("stripe-key", ("whsec_",), r"whsec_[A-Za-z0-9]{24,}" + _E, None),
    ("google-api-key", ("aiza",), r"AIza[0-9A-Za-z_\-]{35}" + _E, None),
    ("google-oauth-secret", ("gocspx-",), r"GOCSPX-[A-Za-z0-9_\-]{28}" + _E, None),
    ("anthropic-key", ("sk-ant-",), r"sk-ant-[a-z]+\d*-[A-Za-z0-9_\-]{32,}", None),
    ("openai-key", ("sk-",),
     r"sk-(?!ant-)(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,}", lambda v: _random(v)),
    ("twilio-key", ("sk",), r"SK[0-9a-fA-F]{32}" + _E, None),
    ("sendgrid-key", ("sg.",), r"SG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}" + _E, None),
    ("npm-token", ("npm_",), r"npm_[A-Za-z0-9]{36}" + _E, None),
    ("pypi-token", ("pypi-age",), r"pypi-AgE[IN][A-Za-z0-9_\-]{50,}", None),
    ("huggingface-token", ("hf_",), r"hf_[A-Za-z0-9]{34,}" + _E, lambda v: _random(v)),
    ("databricks-token", ("dapi",), r"dapi[a-f0-9]{32}(?:-\d)?" + _E, None),
    ("digitalocean-token", ("_v1_",), r"do[por]_v1_[a-f0-9]{64}" + _E, None),
    ("shopify-token", ("shp",), r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}" + _E, None),
    ("docker-token", ("dckr_pat_",), r"dckr_pat_[A-Za-z0-9_\-]{27,}", None),
    ("vault-token", ("hvs.", "hvb.", "hvr."),
     r"hv[sbr]\.[A-Za-z0-9_\-]{24,}", lambda v: _random(v)),
    ("rubygems-key", ("rubygems_",), r"rubygems_[a-f0-9]{48}" + _E, None),
    ("mailchimp-key", ("-us",), r"[0-9a-f]{32}-us\d{1,2}" + _E, None),
    ("telegram-bot-token", (":aa",), r"\d{8,10}:AA[A-Za-z0-9_\-]{33}" + _E, None),
    ("age-secret-key", ("age-secret-key-1",), r"AGE-SECRET-KEY-1[0-9A-Z]{58}", None),
    ("azure-ad-secret", ("q~",), r"[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}" + _E, None),
    ("azure-storage-key", ("accountkey=",), r"(?i:AccountKey)=([A-Za-z0-9+/]{86}==)", None),
    ("azure-sas-key", ("sharedaccesskey=",),
     r"(?i:SharedAccessKey)=([A-Za-z0-9+/]{42,44}=?)", None),
    ("jwt", ("eyj",),
     r"eyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}", None),
    ("auth-header", ("bearer", "token"),
     r"(?i:\b(?:bearer|token))[ \t]+([A-Za-z0-9_~+/\-]{20,}\.?[A-Za-z0-9_~+/\-]*=*)",
     lambda v: _random(v, 3.5)),
    ("auth-header", ("basic",), r"(?i:\bbasic)[ \t]+([A-Za-z0-9+/]{16,}={0,2})(?![\w+/=])",
     lambda v: _basic_auth(v)),
]  # fmt: skip
_ILLUSTRATION = re.compile(r"(?i)example|x{8}|0{8}")  # AKIAIOSFODNN7EXAMPLE and kin
_COMPILED = [(kind, words, re.compile(p), check) for kind, words, p, check in _RULES]

# A private key block, with its newlines (or `\n` escapes inside a string), its lines
# perhaps behind a comment or quote mark (`# `, `// `, `> `). A BEGIN line with no END is
# a secret too when a run of base64 follows it.
_KEY_BODY = r"(?:(?!-----BEGIN)[A-Za-z0-9+/=\s:,.\-\\\"'|#>*;!%])"  # up to the next block at most
_PRIVATE_KEY = re.compile(
    r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----"
    rf"(?P<body>{_KEY_BODY}{{0,1048576}}?)"
    r"(?:(?P<end>-----END[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----)|(?!" + _KEY_BODY + r"))"
)
_KEY_BEGIN = re.compile(r"-----BEGIN[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----")
_KEY_END = re.compile(r"-----END[ A-Z0-9]{0,30}PRIVATE KEY(?: BLOCK)?-----")
_NOT_KEY_BODY = re.compile(r"[^A-Za-z0-9+/=\s:,.\-\\\"'|#>*;!%]|-----BEGIN")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{40,}")


_KEY_PIECE = re.compile(r"[A-Za-z0-9+/=]{16,}")


def _key_chars(body: str) -> int:
    """How much of a block is base64 in runs of 16 or more: short key lines add up, the
    words of a comment that names BEGIN and END markers do not."""
    return sum(len(t) for t in _KEY_PIECE.findall(body))


# With no END line, the block runs over lines of base64 (quoted or `\n`-escaped) and
# PEM headers (`Proc-Type: ...`), and stops at the first other line. Lines may end in CRLF.
_KEY_LINE = re.compile(
    r"[ \t]*(?:[#>;!%*]+|//)?[ \t]*[\"']?"  # a comment or quote mark before each line
    r"(?:(?:\\n)*[A-Za-z0-9+/=]{16,}(?:(?:\\n)+[A-Za-z0-9+/=]+)*|(?:Proc-Type|DEK-Info|Comment|"
    r"Version|Hash|Charset): [^\n]*|)"
    r"(?:\\n)*[\"']?,?[ \t]*(?:\r?\n|$)"
)

# scheme://user:password@host; only the password is replaced. Hosts reserved for
# documentation (RFC 2606: example.com, .test, .invalid…) hold no real account.
_URL_PASSWORD = re.compile(
    r"://(?P<user>[^\s:/@'\"`<>]{0,100}):(?P<pw>[^\s:/@'\"`<>]{1,1048576})@"
    r"(?P<host>[^\s/:'\"`<>?#]*)"
)
_EXAMPLE_HOST = re.compile(r"(?i)(?:^|\.)example(?:\.(?:com|org|net))?$|\.(?:test|invalid)$")
_SAMPLE_PASSWORD = re.compile(
    r"(?i)^(?:p|pw|x+|\*+|user|username|login|guest|anonymous|admin|root)\d*$|pass|pwd|secret|"
    r"foo|bar|baz|spam|eggs|test|example|dummy|fake|demo|sample|change.?me"
)

# A name that says its value is secret, then an assignment, then the value. Found from a
# keyword back to the start of its name; the name's words are then judged, so `monkey`
# and `tokenize` are not secrets, nor is `token_type`. A command's flag (`--password=`)
# is one too. Keywords are searched in lower-cased text: (?i) makes it 10x slower.
_KEYWORD = re.compile(r"pass|pwd|secret|token|key|cred|auth")
_ASSIGNED = re.compile(r"[\w.\-$@]{0,40}[\"'\]]{0,2}[ \t]*(?:[:=]|\|\|=|\?=)")
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_WORD_CHARS = frozenset(string.ascii_letters + string.digits + "_")
_NAME_CHARS = _WORD_CHARS | frozenset(".-$@")
_ASSIGNMENT = re.compile(
    r"(?P<name>[A-Za-z_$@][\w.\-]{0,80}?)"
    r"(?P<close>[\"'\]]{0,2})[ \t]*"
    r"(?::[ \t]*[A-Za-z_&][\w.\[\], |&'<>]{0,40}?[ \t]*(?==))?"  # a type (`&str`)
    r"(?:=>|:=|\|\|=|\?=|=(?!=)|:(?!:))[ \t]*"
    # black's `= (` and YAML's `>-`, perhaps a line end after: blanks read one way only
    r"(?:(?P<paren>\()[ \t]*(?:\r?\n[ \t]*)?|[|>][-+]?[ \t]*\r?\n[ \t]+)?"
    # A quote may be escaped (`\"`: code inside a JSON string, as a notebook's cells are);
    # a value never takes a backslash, so redacting one leaves the string's escapes whole.
    r"(?:[bBrRuU]{0,2}\\?(?P<quote>[\"'`])(?P<quoted>[^\"'`\n\\]{1,1048576}?)\\?(?P=quote)"
    r"|(?P<bare>[^\s\"'`,;(){}\[\]<>\\]{1,1048576}))"
)
_PAREN_CLOSE = re.compile(r"[\"'`]?\s*\)")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _words(names: str) -> frozenset[str]:
    return frozenset(names.split())


# keytool's and jarsigner's flags (`-storepass`, `-srckeypass`) take the password itself,
# as do Redis's directives (`requirepass` in redis.conf, `redis-server --masterauth`).
_KEYTOOL_PASSWORDS = _words("storepass keypass srcstorepass deststorepass srckeypass destkeypass")
_REDIS_PASSWORDS = _words("requirepass masterauth")
_LITERAL_PASSWORDS = _KEYTOOL_PASSWORDS | _REDIS_PASSWORDS
_STRONG_WORDS = _LITERAL_PASSWORDS | _words(
    "password passwd pwd pass passphrase passcode passkey secret secrets token credential "
    "credentials creds apikey authkey privatekey secretkey accesskey clientsecret"
)
_GLUED_STRONG = ("password", "passwd", "pass", "pwd", "secret", "token", "apikey")
_PASS_WORDS = _words("bypass compass encompass overpass surpass trespass underpass")
_KEY_QUALIFIERS = _words(
    "api access secret private signing encryption master auth client app account storage "
    "license subscription consumer shared session hmac webhook"
)
_NOT_A_VALUE_NAME = _words(
    "type types kind name names id file filename files path dir url uri var field label "
    "prompt len length size count min max regex re pattern fmt format class cls func fn "
    "method attr attrs index idx col column header headers param params prefix suffix mode "
    "policy endpoint version hint message msg text title help description doc docs error "
    "errors char chars sep delimiter enabled required expiry expires ttl timeout lifetime "
    "algorithm alg env location store cache validator validators list set map dict "
    "placeholder input widget form view handler callback identifier identifiers stdin"
)
# A flag's value is read only under a name that ends in what it holds (`--db-password`,
# not `--password-file`), and not for the tokens of paging and idempotency in CLIs.
_FLAG_NOUNS = _LITERAL_PASSWORDS | _words(
    "password passwd pwd pass passphrase secret token key apikey credential creds"
)
_NOT_SECRET_TOKENS = _words(
    "next page continuation pagination idempotency request client lock sync resume marker unit"
)
_PLACEHOLDER = re.compile(
    r"(?i)^[\W_]*$|^(.)\1*$|xxxx|\*\*\*|\.\.\.|change.?me|your|example|placeholder|dummy|"
    r"fake|sample|redacted|replace|insert|enter|todo|fixme|secret|password|passwd|token|test|"
    r"^n/?a$|^none$|^null$|^true$|^false$|^undefined$|<[^<>]*>|\$\{|\{\{|%\(|%s|%d|^\$|^\{|"
    r"\$\(|\bos\.|environ|getenv|process\.env|^env[.:(\[]|^%\w+%$"  # `%VAR%`: Windows' variable
)
_WORD_PART = re.compile(r"(?:[a-z]+|[A-Z]+|[A-Z][a-z]+)\d{0,3}$")
# An opening bracket with its closing one after it; the nearest pair, so that a long value
# full of opening brackets is read once, not once from each of them.
_BRACKETED = re.compile(r"\[[^\[\]]*\]|\{[^{}]*\}|\([^()]*\)")
_IDENTIFIER = re.compile(r"^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*$")
# A query string: a `name=` after `?`, `&` or `;` (`page=2&size=10`, `x=1;y=2`), or one
# with no digit opening the value. A lone `&`, or an `=` inside a generated password
# (`Tr0ub4dor&3xyzQ`, `Xk29vLq8=3mZr7`), is no such sign.
_URL_OR_QUERY = re.compile(
    r"://|^https?:|\.(?:py|json|ya?ml|txt|pem|key)$|"
    r"^[A-Za-z_][A-Za-z_.\-\[\]]*=|[?&;][A-Za-z_][\w.\-\[\]]*="
)
_PATH = re.compile(r"^(?:\.{0,2}/|~/|[A-Za-z]:\\)[\w.\-/\\]*$")


def _sample(value: str, pattern: re.Pattern[str] = _SAMPLE_PASSWORD) -> bool:
    """A value written as an illustration: sample or placeholder words (`testpass`,
    `changeme1`, `${DB_PASSWORD}`) with little else. A generated one that happens to hold
    such a word (`K9vQ2xLtestZ7`, `k3j9barx8q2m4n7p5w1z`) is not: what is left without
    the words is still long and random, digits included (`rest-of-my-password` has none)."""
    if not pattern.search(value):
        return False
    rest = _SAMPLE_PASSWORD.sub("", _PLACEHOLDER.sub("", value))
    return not (len(rest) >= 8 and _random(rest) and any(c.isdigit() for c in rest))


def _basic_auth(value: str) -> bool:
    """A `Basic` credential whose password is not a sample one."""
    try:
        user_pass = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return _random(value, 3.5)
    _, colon, password = user_pass.partition(":")
    return bool(colon and password) and not _sample(password)


@functools.lru_cache(maxsize=4096)
def _name_strength(name: str) -> str | None:
    """Strong for password, secret, token and API key names; weak for other keys; or None."""
    cased = [w for part in re.split(r"[^A-Za-z0-9]+", name) for w in _WORD.findall(part)]
    words = [w.lower() for w in cased]
    if not words or words[-1] in _NOT_A_VALUE_NAME:
        return None
    if "public" in words and "key" in words and not _STRONG_WORDS.intersection(words) - {"token"}:
        return None  # a public key (or its token, .NET's hash of one) is not a secret
    if any(w in _STRONG_WORDS for w in words):
        return "strong"
    if any(w.isupper() and _glued(w.lower()) for w in cased):
        return "strong"  # PGPASSWORD, DBPASS, APITOKEN: an environment variable's prefix
    for i, w in enumerate(words):
        if w == "key" and i and words[i - 1] in _KEY_QUALIFIERS:
            return "strong"
    if "key" in words or "auth" in words:
        return "weak"
    return None


def _flag_holds_secret(name: str) -> bool:
    """`--password`, `--api-key`, `--access-token`; not `--device-key`, `--next-token`."""
    words = [w.lower() for w in _WORD.findall(name)]
    if _name_strength(name) != "strong" or words[-1] not in _FLAG_NOUNS or words[0] == "no":
        return False  # `--no-password` says there is none
    return not (len(words) > 1 and words[-1] == "token" and words[-2] in _NOT_SECRET_TOKENS)


def _glued(word: str) -> bool:
    return word.endswith(_GLUED_STRONG) and word not in _PASS_WORDS


def _assigned_kind(name: str) -> str:
    lower = name.lower()
    if "aws" in lower:
        return "aws-secret-key"
    if "pass" in lower or "pwd" in lower or "masterauth" in lower:
        return "password"
    if "token" in lower:
        return "token"
    return "secret"


def _wordy(value: str) -> bool:
    """A word (`Incorrect`, `minio123`), or words and small numbers joined by - _ or .
    (`test-api-key-2`, `COHERE_API_KEY`): typed by a person, not generated."""
    parts = re.split(r"[-_.]", value)
    return all((len(p) > 1 and _WORD_PART.match(p)) or (p.isdigit() and len(p) < 5) for p in parts)


def _sequential(value: str, run: int = 6) -> bool:
    """A run like `123456` or `abcdef` (or backwards): typed by a person, not generated."""
    steps = [ord(b) - ord(a) for a, b in zip(value, value[1:], strict=False)]
    for step in (1, -1):
        length = 0
        for d in steps:
            length = length + 1 if d == step else 0
            if length >= run - 1:
                return True
    return False


def _secret_value(
    value: str, strength: str, bare: bool, after: str, item: bool = False, shortest: int = 8
) -> bool:
    """Is this assigned value a real secret, not a placeholder, variable or call?

    `item`: the value is a quoted item of a list of arguments, where an identifier is a name
    as it is unquoted (`["--api-key", "apiKeyHeader"]`), though a dotted one is no attribute
    (`"s.Zk8…"`, a Vault token).
    `shortest`: the length a strong value needs, less where the form says it is a password.
    The cheap tests come first: a file can hold a keyword on every line."""
    if "%" in value:
        value = unquote(value)
    if len(value) < (16 if strength == "weak" else shortest):
        return False
    if not value.isascii() or not value.isprintable() or " " in value:
        return False
    if not any(c.isalpha() for c in value):
        return False  # a number, a version, a date
    if bare and ((after and after in "([.") or "::" in value):
        return False  # a call, an index or a path expression
    digits = sum(c.isdigit() for c in value)
    if (bare or item) and _IDENTIFIER.match(value) and (digits < 2 or (bare and "." in value)):
        return False  # a variable or an attribute, not a literal
    if _URL_OR_QUERY.search(value.rstrip("=")) or _BRACKETED.search(value):
        return False
    if _PATH.match(value) and not any(_random(p, 3.5) for p in re.split(r"[/\\]", value)):
        return False
    if strength == "weak":  # hex digits carry 4 bits at most, other keys 5 or 6
        hexed = all(c in string.hexdigits for c in value)
        if not (_random(value, 2.7 if hexed else 3.5) and digits >= 2):
            return False
    # A short value cannot reach 3 bits a character: log2(10) is 3.3 with none repeated.
    elif not _random(value, min(3.0, math.log2(len(value)) - 1.0)):
        return False
    if _wordy(value) or _sequential(value) or _sample(value, _PLACEHOLDER):
        return False
    user, colon, password = value.partition(":")
    return not (colon and user.isalnum() and (password == user or _sample(password)))


def _literal_password(value: str, after: str) -> bool:
    """A value that a command's syntax says is a password itself (keytool's `-storepass`,
    Redis's `requirepass`, openssl's `pass:`), never a variable's name: short is enough,
    sample words are not. Cached: a file of commands gives the same value again and again
    (not a long one, which the cache would keep)."""
    if len(value) > 300:
        return _command_password(value, after)
    return _cached_command_password(value, after)


def _command_password(value: str, after: str) -> bool:
    return _secret_value(value, "strong", False, after, shortest=6) and not _sample(value)


_cached_command_password = functools.lru_cache(maxsize=1024)(_command_password)


_BARE_TAIL = re.compile(r"[^\s\"'`,;(){}\[\]<>\\]*")  # nothing follows: read once


def _whole(text: str, m: re.Match[str], group: str) -> tuple[int, int]:
    """Where the value `m[group]` lies: one the pattern cut at its _LONG characters runs
    on to the next blank, quote mark, bracket or separator. It is judged by that much."""
    start, end = m.span(group)
    if end - start >= _LONG and (tail := _BARE_TAIL.match(text, end)):
        end = tail.end()
    return start, end


def _assignments(text: str, hits: list[re.Match[str]]) -> list[Finding]:
    found = []
    starts: set[int] = set()
    value_end = 0  # a keyword inside the last value read is not a name
    for hit in hits:
        start = hit.start()
        while start > 0 and text[start - 1] in _NAME_CHARS and hit.start() - start < 60:
            start -= 1
        flag = start
        while start < hit.start() and text[start] == "-":
            start += 1  # a command's flag: `--password=...`
        if start in starts or start < value_end:
            continue
        starts.add(start)
        m = _ASSIGNMENT.match(text, start)
        if not m or m.end("name") < hit.end() or not (strength := _name_strength(m["name"])):
            continue
        group = "quoted" if m["quoted"] is not None else "bare"
        value_start, value_end = _whole(text, m, group)
        if m["paren"] and not _PAREN_CLOSE.match(text, value_end):
            continue  # `= (` then an expression, not one wrapped literal
        after = text[value_end : value_end + 1]
        # `"--password=..."`, one item of a list of arguments: the value is no variable
        quoted = flag < start and after in ('"', "'") and text[flag - 1 : flag] == after
        bare = group == "bare" and not (quoted and _flag_holds_secret(m["name"]))
        if _secret_value(m[group], strength, bare, after):
            kind = "key" if strength == "weak" else _assigned_kind(m["name"])
            found.append(Finding(value_start, value_end, kind))
    return found


# A secret name with no `=` or `:` after it, in other forms: an XML element, a call's name
# and value (`define('DB_PASSWORD', '...')`, `setdefault("SECRET_KEY", ...)`), a name and
# value pair either way round (`{"Name": "API_TOKEN", "Value": ...}`, a YAML env list,
# `<add key= value=>`, `<add value= key=>`), a command's flag and its value (`--password
# VALUE`), and SQL (`WITH PASSWORD '...'`, `IDENTIFIED BY '...'`, Oracle's bare
# `CREATE USER u IDENTIFIED BY pw`, MariaDB's `IDENTIFIED VIA ed25519 USING PASSWORD('...')`).
_NAME_TAIL = re.compile(r"[\w.\-$@]{0,60}")
_CONTEXT_AFTER = frozenset(">\"'\r\n, \t") | {""}
_XML_OPEN = re.compile(r"<(?:[\w.\-]+:)?$")  # `<password`, `<wsse:Password`
_XML_VALUE = re.compile(  # attributes, then the text (perhaps CDATA)
    r"(?:[ \t][^<>]{0,200})?>[ \t]*(?:<!\[CDATA\[)?(?P<v>[^<>\s\]]{1,1048576})(?:\]\]>)?[ \t]*</"
)
_CALL_VALUE = re.compile(
    r"(?P<q>[\"'])[ \t]*,[ \t]*[bru]?(?P<vq>[\"'])(?P<v>[^\"'\n]{1,1048576})(?P=vq)"
)
_CALL_OPEN = re.compile(r"[\w$.\]>]\([ \t]*$")
_PAIR_NAME = re.compile(r"(?i)\b(?:name|key)[\"']?[ \t]*(?:[:=]|=>)[ \t]*$")
_PAIR_VALUE = re.compile(  # one way only to read each separator: no backtracking
    r"(?i)[\"']?[ \t]*(?:[,\r\n][ \t\r\n]*)?(?:-[ \t]+)?[\"']?value[\"']?[ \t]*(?:[:=]|=>)[ \t]*"
    r"(?:(?P<q>[\"'])(?P<v>[^\"'\n\\]{1,1048576})(?P=q)|(?P<bare>[^\s\"',;}{<>/\\]{1,1048576}))"
)
_VALUE_FIRST = re.compile(  # `<add value="..." key="ApiSecret"/>`: the value came first
    r"(?i)\bvalue[\"']?[ \t]*(?:[:=]|=>)[ \t]*(?P<q>[\"'])(?P<v>[^\"'\n\\]{1,1048576})(?P=q)"
    r"[ \t]*,?[ \t\n]*[\"']?(?:name|key)[\"']?[ \t]*(?:[:=]|=>)[ \t]*$"
)
# It is read back from its closing quote mark, however far its opening one is: searching a
# window before each name long enough for a long value would read a file again for each.
_VALUE_FIRST_TAIL = re.compile(  # the closing quote mark, then the name's `key=`
    r"(?i)[\"'][ \t]*,?[ \t\n]*[\"']?(?:name|key)[\"']?[ \t]*(?:[:=]|=>)[ \t]*$"
)
_VALUE_FIRST_HEAD = re.compile(r"(?i)\bvalue[\"']?[ \t]*(?:[:=]|=>)[ \t]*$")


def _value_first(text: str, end: int) -> re.Match[str] | None:
    """`value="..."` just before the name whose quote mark is at `end`."""
    tail = _VALUE_FIRST_TAIL.search(text, max(0, end - 100), end)
    if tail is None:
        return None
    close = opening = tail.start()
    for lo in (max(0, close - 301), max(0, close - _LONG - 1)):  # most values are short
        opening = max(text.rfind(c, lo, close) for c in "\"'\n\\")
        if opening >= 0:
            break
    if opening < 0 or text[opening] != text[close]:
        return None
    head = _VALUE_FIRST_HEAD.search(text, max(0, opening - 40), opening)
    return _VALUE_FIRST.match(text, head.start(), end) if head else None


_FLAG_VALUE = re.compile(  # a command's flag and its value: `--password VALUE`
    r"[ \t]+(?:(?P<q>[\"'])(?P<v>[^\"'\n]{1,1048576})(?P=q)"
    r"|(?P<bare>(?!-)[^\s\"'`;|&<>()]{1,1048576}))"
)
# A flag that is one item of a list of arguments, its value the next item: Docker's
# `CMD ["app", "--password", "..."]`, a Kubernetes `args: ["--token", "..."]` or the same
# list in YAML's flow form unquoted (`[--token, ...]`) or its block form, one `- item` a
# line at the flag's indent. Lines may end in CRLF.
_LIST_COMMA = re.compile(r"[ \t]{0,80},")
_LIST_NEXT = re.compile(r"[ \t]*,\s{0,200}(?P<q>[\"'])(?!-)(?P<v>[^\"'\n]{1,1048576})(?P=q)")
_FLOW_NEXT = re.compile(  # after a plain flag, a plain item too: it ends at `,` or `]`
    r"[ \t]{0,80},\s{0,200}(?:(?P<q>[\"'])(?!-)(?P<v>[^\"'\n]{1,1048576})(?P=q)"
    r"|(?P<bare>(?![-\"'])[^\s,\[\]{}()\"'`]{1,1048576})(?=\s{0,200}(?:[,\]]|$)))"
)
_YAML_ITEM = re.compile(r"(?P<indent>[ \t]{0,80})-[ \t]+")
_YAML_NEXT = re.compile(
    r"[ \t]*\r?\n(?P<indent>[ \t]{0,80})-[ \t]+"
    r"(?:(?P<q>[\"'])(?!-)(?P<v>[^\"'\n]{1,1048576})(?P=q)|(?P<bare>(?![-\"'])[^\s#]{1,1048576}))"
)
_SQL_VALUE = re.compile(r"[ \t]+'(?P<v>[^'\n]{1,1048576})'")  # PASSWORD '...' (SQL)
_SQL_IDENTIFIED = re.compile(  # MySQL's and Oracle's IDENTIFIED BY, quoted (bare is prose,
    r"(?i)\bidentified[ \t]+"  # "identified by pid", but after USER), and MySQL 8's
    r"(?:with\s{1,20}[\"'`]?\w{1,64}[\"'`]?\s{1,20})?"  # IDENTIFIED WITH <plugin> BY
    r"by[ \t]+(?:password[ \t]+)?(?:'(?P<v>[^'\n]{1,1048576})'|\"(?P<dq>[^\"\n]{1,1048576})\")"
)
_SQL_VIA = re.compile(  # MariaDB's IDENTIFIED VIA <plugin> USING PASSWORD('...'), perhaps
    r"(?i)\bidentified\s{1,20}via\s{1,20}"  # after other plugins joined by OR
    r"(?:\w{1,64}(?:\s{1,20}using\s{1,20}'[^'\n]{0,300}')?\s{1,20}or\s{1,20}){0,4}"
    r"\w{1,64}\s{1,20}using\s{1,20}password[ \t]{0,20}\([ \t]{0,20}"
    r"(?:'(?P<v>[^'\n]{1,1048576})'|\"(?P<dq>[^\"\n]{1,1048576})\")"
)
_SQL_USER_BARE = re.compile(  # Oracle's unquoted `CREATE USER scott IDENTIFIED BY pw`
    r"(?i)\b(?:create|alter)[ \t]+user[ \t]+[^\s;]{1,130}\s{1,20}identified[ \t]+by[ \t]+"
    r"(?P<bare>[^\s;'\"]{1,1048576})"
)
_SQL_HASH = re.compile(  # a password's hash is credential material too: MySQL's IDENTIFIED
    r"(?i)\bidentified\s{1,20}(?:with|via)\s{1,20}[\"'`]?"  # WITH <plugin> AS '...' (as
    r"(?:mysql_native_password|caching_sha2_password|sha256_password|ed25519)[\"'`]?"  # SHOW
    r"\s{1,20}(?:as|using)\s{1,20}"  # CREATE USER prints it) and MariaDB's VIA <plugin> USING
    r"(?:'(?P<v>(?:[^'\\\n]|\\.){1,1048576})'|\"(?P<dq>(?:[^\"\\\n]|\\.){1,1048576})\""
    r"|(?P<hex>0x[0-9a-f]{32,1048576})(?![\w$]))"
)
# The forms of a hash: mysql_native_password's `*` and 40 hex digits, the `$A$005$…` of
# caching_sha2_password and `$5$…` of sha256_password (or either in hex, `0x2441…`), and
# ed25519's 43 base64 characters. Other plugins' strings name an account (`AS 'cn=app,…'`,
# PAM's `USING 'mariadb'`), and a locked account's `*THISISNOTAVALIDPASSWORD…` no hash.
_HASH_FORM = re.compile(
    r"\*[0-9A-Fa-f]{40}|\$[A-Za-z0-9]{1,2}\$.{16,}|0x[0-9A-Fa-f]{32,}|[A-Za-z0-9+/]{43}", re.S
)


def _password_hash(value: str) -> bool:
    return bool(_HASH_FORM.fullmatch(value)) and _random(value) and not _ILLUSTRATION.search(value)


_REDIS_DIRECTIVE = re.compile(  # where a redis.conf line, perhaps quoted or commented
    r"(?:^|[\n\"'])[ \t]*(?:#[ \t]*)?$|(?i:\bconfig[ \t]+set[ \t]+)$"  # out, or CONFIG SET
)


def _redis_directive(text: str, start: int) -> bool:
    """Is the word at `start` the first of a redis.conf line, or what CONFIG SET sets?"""
    return bool(_REDIS_DIRECTIVE.search(text, max(0, start - 80), start))


def _flag_value(text: str, start: int, end: int) -> re.Match[str] | None:
    """The value given to the flag `text[start:end]` (with its quote marks, if it has
    them): the next word of its command line, or the next item of its list."""
    quoted = text[start] in ('"', "'")  # a plain one is an item of YAML's flow list only
    opens = ("[", "(", ",") if quoted else ("[", ",")
    if text[max(0, start - 80) : start].rstrip()[-1:] in opens and _LIST_COMMA.match(text, end):
        m = (_LIST_NEXT if quoted else _FLOW_NEXT).match(text, end)  # `"--password" , "…"`
    elif text[end : end + 1] in (" ", "\t"):
        m = _FLAG_VALUE.match(text, end)
    else:  # a YAML block list: `- --token` alone on its line, the value the next item
        line = text.rfind("\n", max(0, start - 90), start) + 1
        item = _YAML_ITEM.fullmatch(text, line, start)
        m = _YAML_NEXT.match(text, end) if item else None
        if item is None or m is None or m["indent"] != item["indent"]:
            return None
    if m and _ILLUSTRATION.search(m["v"] or m["bare"]):
        return None  # a CLI's documented example (`--access-token eyJra456EXAMPLE`)
    return m


def _contexts(text: str, lower: str, hits: list[re.Match[str]]) -> list[Finding]:
    found: list[Finding] = []
    done = 0  # a keyword inside a name or value already read starts nothing
    for hit in hits:
        if hit.start() < done:
            continue
        tail = _NAME_TAIL.match(text, hit.end())
        end = done = tail.end() if tail else hit.end()
        if text[end : end + 1] not in _CONTEXT_AFTER:
            continue  # `key)`, `keys[`, `token=`: no form of these
        start = hit.start()
        while start > 0 and text[start - 1] in _NAME_CHARS and hit.start() - start < 60:
            start -= 1
        name = text[start:end].strip(".-")
        if not (strength := _name_strength(name)):
            continue
        before, after = text[max(0, start - 40) : start], text[end : end + 1]
        m: re.Match[str] | None = None
        if after in (">", " ", "\t") and _XML_OPEN.search(before):
            m = _XML_VALUE.match(text, end)
        elif before[-1:] in ("'", '"') and after == before[-1]:
            if _CALL_OPEN.search(before[:-1]):
                m = _CALL_VALUE.match(text, end)
                if m and text[start] == "-" and m["v"].startswith("-"):
                    m = None  # `add_argument("--api-key", "--apikey")`: a flag's other name
            if not m and _PAIR_NAME.search(before[:-1]):
                m = _PAIR_VALUE.match(text, end + 1)
            if not m and _PAIR_NAME.search(before[:-1]):
                m = _value_first(text, start - 1)
            if not m and text[start] == "-" and _flag_holds_secret(name):
                m = _flag_value(text, start - 1, end + 1)  # `"--password", "..."`
        elif _PAIR_NAME.search(before) and after in ("\r", "\n", ",", " ", "\t", ""):
            m = _PAIR_VALUE.match(text, end)
        elif text[start] == "-" and after in " \t\r\n," and _flag_holds_secret(name):
            m = _flag_value(text, start, end)
        elif name.lower() in ("password", "passwd"):
            m = _SQL_VALUE.match(text, end)
        elif name.lower() in _REDIS_PASSWORDS and after in " \t" and _redis_directive(text, start):
            m = _FLAG_VALUE.match(text, end)  # redis.conf's `requirepass VALUE`
        if m is None:
            continue
        group = "bare" if m.groupdict().get("bare") else "v"
        value = m[group]
        if value.startswith("pass:"):
            continue  # openssl's `-pass pass:VALUE`: the password is after `pass:`
        value_start, value_end = _whole(text, m, group)
        after_value = text[value_end : value_end + 1]
        # keytool's `-storepass VALUE` is a command's argument, never a name in code
        literal = name.lower() in _LITERAL_PASSWORDS
        bare = group == "bare" and not literal
        item = group == "v" and m.re in (_LIST_NEXT, _FLOW_NEXT, _YAML_NEXT) and not literal
        if (
            _literal_password(value, after_value)
            if literal
            else _secret_value(value, strength, bare, after_value, item)
        ):
            kind = "key" if strength == "weak" else _assigned_kind(name)
            found.append(Finding(value_start, value_end, kind))
        done = value_end
    if "identified" in lower:
        for m in (*_SQL_IDENTIFIED.finditer(text), *_SQL_VIA.finditer(text)):
            group = "v" if m["v"] else "dq"
            if _secret_value(m[group], "strong", False, ""):
                found.append(Finding(m.start(group), m.end(group), "password"))
        for m in _SQL_HASH.finditer(text):
            group = next(g for g in ("v", "dq", "hex") if m[g] is not None)
            if _password_hash(m[group]):
                found.append(Finding(m.start(group), m.end(group), "password"))
        for m in _SQL_USER_BARE.finditer(text):
            start, end = _whole(text, m, "bare")
            if _secret_value(m["bare"], "strong", True, text[end : end + 1]):
                found.append(Finding(start, end, "password"))
    return found


def _private_keys(text: str) -> list[Finding]:
    found = []
    for begin in _KEY_BEGIN.finditer(text):
        body = begin.end()
        end_group: str | int
        if m := _PRIVATE_KEY.match(text, begin.start()):
            end_line = m if m["end"] else None
            end_group = "end"
        else:  # more than _LONG characters of key: to its END line all the same, if
            stop = _NOT_KEY_BODY.search(text, body)  # nothing else comes first
            end_line = _KEY_END.search(text, body, stop.start() if stop else len(text))
            end_group = 0
        if end_line is not None:
            if _BASE64_RUN.search(text, body, end_line.start(end_group)) or (
                _key_chars(text[body : end_line.start(end_group)]) > 64
            ):
                found.append(Finding(begin.start(), end_line.end(end_group), "private-key"))
            continue
        end = body
        while end < len(text) and (line := _KEY_LINE.match(text, end)) and line.end() > end:
            end = line.end()
        if _BASE64_RUN.search(text, body, end):
            found.append(Finding(begin.start(), end, "private-key"))
    return found


# The MySQL and MariaDB clients take a password glued to `-p`: `mysql -uroot -pS3cr3t db`
# (`-P3306` is the port), also as a quoted item of a list of arguments (docker-compose's
# `test: ["CMD", "mysqladmin", "ping", "-pS3cr3t"]`). Every `-p` of the command is judged,
# not only the first.
_MYSQL_COMMAND = re.compile(
    r"(?i)\b(?:mysql(?:dump|admin|import|check|sh)?|mariadb(?:-dump|-admin)?)\b[^\n;|&]{0,300}"
)
_MYSQL_P = re.compile(
    r"(?<=[ \t])-p(?:(?P<q>[\"'])(?P<quoted>[^\"'\n]{1,1048576})(?P=q)"
    r"|(?P<bare>[^\s\"'`;|&]{1,1048576}))"
    r"|(?:(?<=[\s\[,])(?P<iq>[\"']))-p(?P<item>[^\s\"'`;|&]{1,1048576})(?P=iq)(?=[ \t]{0,80}[,\]])"
)
_MYSQL_P_FLAG = re.compile(r"(?<=[ \t])-p|(?<=[\s\[,])[\"']-p")


def _mysql_passwords(text: str) -> list[Finding]:
    found = []
    done = 0
    for command in _MYSQL_COMMAND.finditer(text):
        for flag in _MYSQL_P_FLAG.finditer(text, command.start(), command.end()):
            # the flag is in the command's first 300 characters; its value may run on
            if flag.start() < done or not (m := _MYSQL_P.match(text, flag.start())):
                continue
            group = next(g for g in ("quoted", "bare", "item") if m[g] is not None)
            start, end = _whole(text, m, group)
            done = end
            if _secret_value(m[group], "strong", group != "quoted", text[end : end + 1]):
                found.append(Finding(start, end, "password"))
    return found


# Flags whose value is the password itself on one command, read only where that command is
# named (`-a` and `-k` mean many things elsewhere): redis-cli's `-a VALUE` and `--pass
# VALUE`, and `-k VALUE` of `openssl enc` (or of a cipher's own command, `openssl
# aes-256-cbc`). Continuation lines (`\` at a line's end) are part of the command.
# openssl's `-passin pass:VALUE` (`-passout`, `-pass`, `-password`) needs no command named:
# `pass:` says the password follows, where `env:VAR`, `file:path`, `fd:N` and `stdin` name
# where it is kept.
_COMMAND_REST = r"(?:[^\n;|&\\]|\\\r?\n|\\){0,400}"
# Searched in lower-cased text, each beginning with a literal word: a search that starts
# with a look-behind or an optional quote mark tries every position of a file.
_REDIS_CLI_COMMAND = re.compile(r"(?:redis|valkey|keydb)-cli(?![\w-])" + _COMMAND_REST)
_OPENSSL_ENC_COMMAND = re.compile(
    r"openssl(?:\.exe)?[\"']?(?:[ \t]{1,20}|[ \t]{0,20},[ \t]{0,20}[\"']?)"
    r"(?:enc|(?:aes|aria|bf|camellia|cast5?|chacha20|des3?|desx|idea|rc[245]|seed|sm4)"
    r"(?:-[\w-]{1,30})?)[\"']?(?![\w-])" + _COMMAND_REST
)
_REDIS_CLI_FLAG = re.compile(r"-a(?![\w-])|--pass(?![\w-])")
_OPENSSL_K_FLAG = re.compile(r"-k(?![\w-])")
_OPENSSL_PASS_FLAG = re.compile(r"--?pass(?:in|out|word)?(?![\w-])")
_QUOTED = re.compile(r"(?P<q>[\"'])(?P<v>[^\"'\n]{1,1048576})(?P=q)")  # `pass:'VALUE'`
_BEFORE_WORD = _WORD_CHARS | {"-"}


def _standalone(text: str, start: int) -> bool:
    """Does a word begin at `start` (not `redis-cli` in `my-redis-cli`, `-a` in `x-a`)?"""
    return not start or text[start - 1] not in _BEFORE_WORD


def _flags(flag: re.Pattern[str], text: str, start: int, end: int) -> list[tuple[int, int]]:
    """Where each of these flags stands alone in `text[start:end]`, with its quote marks."""
    found = []
    for f in flag.finditer(text, start, end):
        first, last = f.span()
        quote = text[first - 1 : first]
        if quote in ('"', "'") and text[last : last + 1] == quote:
            first, last = first - 1, last + 1  # `"-a"`, an item of a list of arguments
        if _standalone(text, first):
            found.append((first, last))
    return found


def _command_passwords(text: str, lower: str) -> list[Finding]:
    """redis-cli's `-a`, `openssl enc`'s `-k` and openssl's `pass:` values."""
    flags: list[tuple[re.Pattern[str], int, int]] = []
    if "-cli" in lower:
        for c in _REDIS_CLI_COMMAND.finditer(lower):
            if _standalone(lower, c.start()):
                flags += [(_REDIS_CLI_FLAG, *f) for f in _flags(_REDIS_CLI_FLAG, text, *c.span())]
    if "openssl" in lower:
        for c in _OPENSSL_ENC_COMMAND.finditer(lower):
            if _standalone(lower, c.start()):
                flags += [(_OPENSSL_K_FLAG, *f) for f in _flags(_OPENSSL_K_FLAG, text, *c.span())]
    if "pass:" in text:
        flags += [(_OPENSSL_PASS_FLAG, *f) for f in _flags(_OPENSSL_PASS_FLAG, text, 0, len(text))]
    found = []
    for flag, start, end in flags:
        m = _flag_value(text, start, end)
        if m is None:
            continue
        group = "bare" if m.groupdict().get("bare") else "v"
        first, last = _whole(text, m, group)
        if flag is _OPENSSL_PASS_FLAG:
            if not text.startswith("pass:", first):
                continue  # `env:VAR`, `file:path`, `stdin`: where the password is kept
            first += 5
            if first == last and (q := _QUOTED.match(text, last)):
                first, last = q.span("v")  # `pass:"VALUE"`
        after = text[last : last + 1]
        if first < last and _literal_password(text[first:last], after):
            found.append(Finding(first, last, "password"))
    return found


def find(text: str) -> list[Finding]:
    """Every secret in `text`, by position; overlapping evidence becomes one finding."""
    lower = text.lower()
    if len(lower) != len(text):  # a few characters lower-case to two
        lower = text.translate(_ASCII_LOWER)
    found = _private_keys(text) if "private key" in lower else []
    for kind, words, pattern, check in _COMPILED:
        if not any(w in lower for w in words):
            continue
        for m in pattern.finditer(text):
            group = 1 if pattern.groups else 0
            value = m.group(group)
            if not group and m.start() and text[m.start() - 1] in _WORD_CHARS:
                continue  # inside a longer word
            if not _ILLUSTRATION.search(value) and (check is None or check(value)):
                found.append(Finding(m.start(group), m.end(group), kind))
    if "mysql" in lower or "mariadb" in lower:
        found.extend(_mysql_passwords(text))
    found.extend(_command_passwords(text, lower))
    if "://" in text:
        for m in _URL_PASSWORD.finditer(text):
            pw = unquote(m["pw"])
            if pw == unquote(m["user"]) or _EXAMPLE_HOST.search(m["host"]):
                continue
            if not (_sample(pw) or _sample(pw, _PLACEHOLDER)):
                found.append(Finding(m.start("pw"), m.end("pw"), "url-password"))
    assigned: list[re.Match[str]] = []
    other: list[re.Match[str]] = []
    for hit in _KEYWORD.finditer(lower):
        (assigned if _ASSIGNED.match(lower, hit.end()) else other).append(hit)
    found.extend(_assignments(text, assigned))
    found.extend(_contexts(text, lower, other))
    return _merge(found)


def looks_like_secret(value: str) -> bool:
    """Would `value` be redacted as the value of a password or token? For a fragment
    without context of its own, such as one word of a search query."""
    return bool(find(f"secret = {value}"))


def _merge(found: list[Finding]) -> list[Finding]:
    """Overlapping findings become one, named for the first (the most specific) found."""
    merged: list[Finding] = []
    for f in sorted(found, key=lambda f: f.start):
        if merged and f.start < merged[-1].end:
            last = merged[-1]
            merged[-1] = Finding(last.start, max(last.end, f.end), last.kind)
        else:
            merged.append(f)
    return merged


# What `redact` writes in place of a secret, and how to find it again.
MARK = "[REDACTED:{kind}]"
MARKED = re.compile(r"\[REDACTED:[^\]\n]*\]")


def redact(text: str) -> Redacted:
    """`text` with every secret found replaced by `[REDACTED:kind]`, newlines kept."""
    found = find(text)
    if not found:
        return Redacted(text, [])
    out: list[str] = []
    pos = 0
    for f in found:
        out.append(text[pos : f.start])
        out.append(MARK.format(kind=f.kind) + "\n" * text.count("\n", f.start, f.end))
        pos = f.end
    out.append(text[pos:])
    return Redacted("".join(out), [f.kind for f in found])
