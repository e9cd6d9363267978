"""A corpus of files with planted secrets, generated at test time from a seed.

Nothing secret-shaped is committed: every value is drawn from `random.Random(seed)` when
the corpus is built. Values are redrawn when they happen to spell a placeholder word
(`test`, `your`, `xxxx`…) or a typed run (`123456`), which a detector rightly ignores.
Each file also carries a sentence and a function of its own, so it can be found by its
non-secret content, and a closing line whose number a multi-line secret must not move.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from dataclasses import dataclass, field

ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
HEX = "0123456789abcdef"
B32 = string.ascii_uppercase + "234567"
_AVOID = re.compile(
    r"(?i)test|your|xxxx|fake|todo|pass|pwd|secret|token|foo|bar|baz|spam|eggs|demo|dummy|"
    r"sample|example|enter|insert|replace|change|none|null|true|false|redact|admin|root|"
    r"guest|user|login|key|auth|cred|x{4}|0{8}|\*\*\*|\.\.\."
)
_TOPICS = [
    ("ledger", "reconcile the monthly ledger against the bank statement"),
    ("invoice", "render an invoice as a printable page with the company letterhead"),
    ("shipping", "estimate shipping cost from parcel weight and destination zone"),
    ("inventory", "count warehouse stock and flag items below the reorder level"),
    ("payroll", "compute payroll deductions for part time employees"),
    ("calendar", "schedule recurring meetings across time zones"),
    ("thumbnail", "resize uploaded photos into square thumbnails"),
    ("geocode", "turn a street address into latitude and longitude"),
    ("newsletter", "send the weekly newsletter to subscribed readers"),
    ("loyalty", "award loyalty points for every completed purchase"),
    ("forecast", "forecast next quarter revenue from seasonal history"),
    ("audit", "write an audit trail entry for every administrator action"),
    ("translate", "translate interface strings into the user's language"),
    ("backup", "copy nightly database backups to cold storage"),
    ("pricing", "apply volume discounts to bulk orders"),
    ("survey", "aggregate customer survey answers into a satisfaction score"),
    ("routing", "plan delivery van routes that visit every stop once"),
    ("billing", "retry failed card payments with exponential backoff"),
    ("captcha", "verify that a signup form was filled in by a person"),
    ("sitemap", "generate the sitemap from published pages"),
    ("archive", "compress old log files into dated archives"),
    ("weather", "fetch the local weather for the storefront banner"),
    ("ticketing", "assign support tickets to the least busy agent"),
    ("analytics", "count daily active visitors per region"),
    ("exporter", "export orders as a spreadsheet for accounting"),
    ("webhooks", "deliver order events to partner endpoints"),
    ("search", "suggest product names while the shopper types"),
    ("rating", "average product ratings while discounting old reviews"),
]


@dataclass(frozen=True)
class Planted:
    kind: str
    value: str  # exactly as written in the file
    core: str  # the random part; no slice of it may be stored or returned

    @property
    def probes(self) -> list[str]:
        """Pieces of the secret that must never be seen: the whole, and slices of its core."""
        pieces = [self.core[i : i + 12] for i in range(0, max(len(self.core) - 11, 1), 12)]
        return pieces if "\n" in self.value else [self.value, *pieces]


@dataclass
class PlantedFile:
    path: str
    tracked: bool
    topic: str  # a word only this file's non-secret content uses
    sentence: str
    lines: list[str] = field(default_factory=list)
    secrets: list[Planted] = field(default_factory=list)

    @property
    def function(self) -> str:
        return f"{self.topic}_helper"

    @property
    def closing(self) -> str:
        return f"closing line of the {self.topic} module"

    @property
    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def draw(self, alphabet: str, n: int) -> str:
        while True:
            value = "".join(self.rng.choice(alphabet) for _ in range(n))
            if not _AVOID.search(value) and not _typed_run(value):
                return value

    def mixed(self, n: int, alphabet: str = ALNUM) -> str:
        """Random, with lower and upper case letters and digits (as generated keys are)."""
        while True:
            value = self.draw(alphabet, n)
            digits = sum(c.isdigit() for c in value)
            lower, upper = any(c.islower() for c in value), any(c.isupper() for c in value)
            if digits >= 2 and lower and upper:
                return value


def _typed_run(value: str, run: int = 5) -> bool:
    steps = [ord(b) - ord(a) for a, b in zip(value, value[1:], strict=False)]
    for step in (1, -1):
        length = 0
        for d in steps:
            length = length + 1 if d == step else 0
            if length >= run - 1:
                return True
    return False


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _pem(g: Generator, label: str, lines: int, escaped: bool = False) -> tuple[str, str]:
    body = [g.draw(B64, 64) for _ in range(lines)] + [g.draw(B64, 24) + "=="]
    headers = []
    if label == "RSA" and g.rng.random() < 0.5:
        headers = [
            "Proc-Type: 4,ENCRYPTED",
            f"DEK-Info: AES-128-CBC,{g.draw('0123456789ABCDEF', 32)}",
            "",
        ]
    name = "PGP PRIVATE KEY BLOCK" if label == "PGP" else f"{label} PRIVATE KEY".strip()
    sep = "\\n" if escaped else "\n"
    block = sep.join([f"-----BEGIN {name}-----", *headers, *body, f"-----END {name}-----"])
    return block, "".join(body)


def _secrets(g: Generator) -> list[tuple[str, str, str, str]]:
    """(kind, value, core, style) for 105 secrets; style names the line template."""
    out: list[tuple[str, str, str, str]] = []

    def add(kind: str, prefix: str, core: str, style: str, suffix: str = "") -> None:
        out.append((kind, prefix + core + suffix, core, style))

    for style in ("py-const", "ini", "yaml", "env", "json"):
        add("aws-access-key", g.rng.choice(["AKIA", "ASIA"]), g.draw(B32, 16), style)
    for style in ("ini-aws", "json-aws", "env-aws", "yaml-aws"):
        add("aws-secret-key", "", g.mixed(40, B64), style)
    for prefix in ("ghp_", "gho_", "ghs_", "ghp_", "ghu_"):
        add("github-token", prefix, g.mixed(36), g.rng.choice(["py-const", "yaml", "shell"]))
    add("github-token", "github_pat_", g.mixed(22) + "_" + g.mixed(59), "env")
    for _ in range(3):
        add("gitlab-token", "glpat-", g.mixed(20, ALNUM + "-_"), g.rng.choice(["yaml", "env"]))
    for kind in ("xoxb", "xoxp", "xoxa"):
        core = f"{g.draw(string.digits, 12)}-{g.draw(string.digits, 13)}-{g.mixed(24)}"
        add("slack-token", f"{kind}-", core, "py-const")
    for _ in range(2):
        team, channel = g.draw(string.ascii_uppercase + string.digits, 10), g.draw(B32, 10)
        core = f"T{team}/B{channel}/{g.mixed(24)}"
        add("slack-webhook", "https://hooks.slack.com/services/", core, "json")
    for prefix in ("sk_live_", "rk_live_", "sk_live_", "sk_test_"):
        add("stripe-key", prefix, g.mixed(g.rng.choice([24, 34, 99])), "py-const")
    for _ in range(4):
        add(
            "google-api-key",
            "AIza",
            g.mixed(35, ALNUM + "-_"),
            g.rng.choice(["js", "json", "yaml"]),
        )
    for _ in range(3):
        add("openai-key", "sk-proj-", g.mixed(g.rng.choice([48, 74, 156]), ALNUM + "-_"), "env")
    add("openai-key", "sk-", g.mixed(48), "py-const")
    for _ in range(3):
        add("anthropic-key", "sk-ant-api03-", g.mixed(93, ALNUM + "-_"), "env", "AA")
    for _ in range(3):
        add("twilio-key", "SK", g.draw(HEX, 32), "py-const")
    for _ in range(3):
        add(
            "sendgrid-key",
            "SG.",
            f"{g.mixed(22, ALNUM + '-_')}.{g.mixed(43, ALNUM + '-_')}",
            "yaml",
        )
    for _ in range(3):
        add("npm-token", "npm_", g.mixed(36), "npmrc")
    for _ in range(2):
        add("pypi-token", "pypi-AgEIcHlwaS5vcmc", g.mixed(70, ALNUM + "-_"), "toml")
    for _ in range(4):
        header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        claims = {
            "sub": g.draw(string.digits, 10),
            "name": g.mixed(12),
            "iat": g.rng.randrange(1 << 31),
        }
        core = f"{_b64url(json.dumps(claims).encode())}.{_b64url(g.rng.randbytes(32))}"
        add("jwt", header + ".", core, g.rng.choice(["js", "bearer"]))
    for _ in range(3):
        add("azure-storage-key", "", g.mixed(86, B64) + "==", "azure")
    for scheme in ("postgres", "postgresql", "mysql", "mongodb+srv", "redis", "amqp"):
        add("url-password", "", g.mixed(g.rng.choice([12, 16, 24])), f"url-{scheme}")
    for label in ("RSA", "OPENSSH", "EC", "PGP", "", "ENCRYPTED", "DSA"):
        block, core = _pem(g, label, g.rng.choice([3, 6, 12]))
        out.append(("private-key", block, core, "pem"))
    block, core = _pem(g, "", 8, escaped=True)
    out.append(("private-key", block, core, "pem-json"))
    for style in (
        *("py", "yaml", "json", "go", "ini", "env", "toml", "properties", "php", "kwarg"),
        *("xml", "flag", "define", "pair", "sql"),  # named with no assignment after the name
    ):
        add("password", "", g.mixed(g.rng.choice([10, 14, 20]), ALNUM + "!#*+-"), f"pw-{style}")
    for style in ("py", "yaml", "json", "js", "toml", "env", "rb"):
        add("secret", "", g.mixed(g.rng.choice([24, 32, 40])), f"secret-{style}")
    for style in ("py", "yaml"):
        add("token", "", g.draw(HEX, 40), f"token-{style}")
    for _ in range(2):
        add("key", "", g.draw(HEX, 32), "key-py")
    for _ in range(2):
        add("auth-header", "", g.mixed(40, ALNUM + "-_"), "bearer")
    add("huggingface-token", "hf_", g.mixed(34), "env")
    add("databricks-token", "dapi", g.draw(HEX, 32), "yaml")
    add("docker-token", "dckr_pat_", g.mixed(27, ALNUM + "-_"), "shell")
    add("vault-token", "hvs.", g.mixed(90, ALNUM + "-_"), "env")
    add("shopify-token", "shpat_", g.draw(HEX, 32), "py-const")
    add("google-oauth-secret", "GOCSPX-", g.mixed(28, ALNUM + "-_"), "json")
    add("digitalocean-token", "dop_v1_", g.draw(HEX, 64), "yaml")
    return out


def _line(style: str, value: str, n: int) -> str:
    """One assignment of `value` in the manner of `style`; n keeps names apart."""
    var = f"SERVICE_{n}"
    if style.startswith("url-"):
        scheme = style[4:]
        user = "" if scheme == "redis" else f"app{n}"
        return f'DATABASE_URL_{n} = "{scheme}://{user}:{value}@db{n}.internal:5432/app"'
    templates = {
        "py-const": f'{var}_CREDENTIAL = "{value}"',
        "ini": f"credential_{n} = {value}",
        "yaml": f"  service_{n}_token: {value}",
        "env": f"{var}_TOKEN={value}",
        "json": f'  "service_{n}_credential": "{value}",',
        "shell": f"export {var}_TOKEN='{value}'",
        "js": f'const service{n}Key = "{value}";',
        "ini-aws": f"aws_secret_access_key = {value}",
        "json-aws": f'  "AWS_SECRET_ACCESS_KEY": "{value}",',
        "env-aws": f"AWS_SECRET_ACCESS_KEY={value}",
        "yaml-aws": f"  aws_secret_access_key: {value}",
        "npmrc": f"//registry.npmjs.org/:_authToken={value}",
        "toml": f'password = "{value}"',
        "azure": f'conn_{n} = "DefaultEndpointsProtocol=https;AccountName=store{n};'
        f'AccountKey={value};EndpointSuffix=core.windows.net"',
        "bearer": f'  headers = {{"Authorization": "Bearer {value}"}}',
        "pw-py": f'DB_PASSWORD = "{value}"',
        "pw-yaml": f"  password: {value}",
        "pw-json": f'  "password": "{value}",',
        "pw-go": f'\tdbPassword := "{value}"',
        "pw-ini": f"password = {value}",
        "pw-env": f"SMTP_PASSWORD={value}",
        "pw-toml": f'admin_password = "{value}"',
        "pw-properties": f"spring.datasource.password={value}",
        "pw-php": f"$db_pass = '{value}';",
        "pw-kwarg": f'    conn = connect(host="db{n}", passwd="{value}")',
        "pw-xml": f"  <password>{value}</password>",
        "pw-flag": f"mysql -h db{n} --password={value} app",
        "pw-define": f"define('DB{n}_PASSWORD', '{value}');",
        "pw-pair": f'  {{"Name": "DB{n}_PASSWORD", "Value": "{value}"}},',
        "pw-sql": f"CREATE USER app{n} WITH PASSWORD '{value}';",
        "secret-py": f"SECRET_KEY = '{value}'",
        "secret-yaml": f"  client_secret: {value}",
        "secret-json": f'  "clientSecret": "{value}",',
        "secret-js": f"  apiKey: '{value}',",
        "secret-toml": f'api_secret = "{value}"',
        "secret-env": f"WEBHOOK_SIGNING_SECRET={value}",
        "secret-rb": f'  config.secret_key_base = "{value}"',
        "token-py": f'access_token = "{value}"',
        "token-yaml": f"  refresh_token: {value}",
        "key-py": f'key = "{value}"',
    }
    return templates[style]


EXTENSIONS = [".py", ".yaml", ".json", ".cfg", ".toml", ".ini", ".md", ".txt", ".js", ".go"]


def planted_corpus(seed: int = 7) -> list[PlantedFile]:
    """28 files holding 105 secrets of 30 kinds; about a third of the files untracked."""
    g = Generator(seed)
    secrets = _secrets(g)
    g.rng.shuffle(secrets)
    files = []
    for i, (topic, sentence) in enumerate(_TOPICS):
        ext = EXTENSIONS[i % len(EXTENSIONS)]
        folder = "untracked" if i % 3 == 2 else "src"
        files.append(
            PlantedFile(f"{folder}/{topic}_settings{ext}", folder == "src", topic, sentence)
        )
    for f in files:
        f.lines += [
            f"# {f.topic}: {f.sentence}.",
            f"def {f.function}():",
            f'    """{f.sentence}."""',
            "",
        ]
    for n, (kind, value, core, style) in enumerate(secrets):
        f = files[n % len(files)]
        if style == "pem":
            f.lines += ["PRIVATE_KEY = '''", *value.split("\n"), "'''"]
        elif style == "pem-json":
            f.lines.append(f'  "private_key": "{value}\\n",')
        else:
            f.lines.append(_line(style, value, n))
        f.lines.append("")
        f.secrets.append(Planted(kind, value, core))
    for f in files:
        f.lines.append(f"# {f.closing}")
    return files
