"""Secrets in content: found by format, by key block and by name + entropy; placeholders left."""

from __future__ import annotations

import base64
import random
import re
import string
import time
from collections import Counter
from pathlib import Path

import pytest

from contextd.app import App
from contextd.redaction import MARKED, find, redact
from tests.conftest import write
from tests.secrets_corpus import planted_corpus


@pytest.mark.parametrize("seed", range(20))
def test_every_planted_secret_is_redacted_and_no_line_moves(seed: int) -> None:
    files = planted_corpus(seed)
    assert sum(len(f.secrets) for f in files) == 105
    assert len({s.kind for f in files for s in f.secrets}) >= 15
    for f in files:
        clean, kinds = redact(f.text)
        assert len(kinds) >= len(f.secrets), f.path
        for secret in f.secrets:
            leaked = [p for p in secret.probes if p in clean]
            assert not leaked, f"{secret.kind} leaked from {f.path} (seed {seed})"
        assert clean.count("\n") == f.text.count("\n")
        assert clean.splitlines()[-1] == f"# {f.closing}"
        assert f.sentence in clean and f.function in clean


def test_provider_formats_are_named_for_their_provider() -> None:
    named = Counter()
    for f in planted_corpus(3):
        spans = find(f.text)
        for secret in f.secrets:
            start = f.text.index(secret.value)
            kinds = [s.kind for s in spans if s.start <= start < s.end]
            named[secret.kind == kinds[0]] += 1
    assert named[False] == 0, named


def base64_line(seed: int) -> str:
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits + "+/") for _ in range(64))


def test_a_private_key_block_keeps_its_lines() -> None:
    body = "\n".join(base64_line(i) for i in range(5))
    begin, end = "-----BEGIN OPENSSH PRIVATE KEY-----", "-----END OPENSSH PRIVATE KEY-----"
    text = f"a = 1\n{begin}\n{body}\n{end}\nb = 2\n"
    clean, kinds = redact(text)
    assert kinds == ["private-key"]
    assert clean.splitlines() == [
        "a = 1",
        "[REDACTED:private-key]",
        "",
        "",
        "",
        "",
        "",
        "",
        "b = 2",
    ]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_key_block_with_no_end_line_is_redacted_to_the_end_of_its_base64(newline: str) -> None:
    line = base64_line(7)
    text = f"-----BEGIN RSA PRIVATE KEY-----\n{line}\n{line}\n\ndef after():\n    pass\n"
    text = text.replace("\n", newline)
    clean, _ = redact(text)
    assert line not in clean and "def after():" in clean
    assert clean.count("\n") == text.count("\n")


@pytest.mark.parametrize("mark", ["# ", "#", "// ", "> ", " * ", "; ", ""])
@pytest.mark.parametrize("ending", [True, False])
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_a_key_block_commented_out_or_quoted_is_redacted(
    mark: str, ending: bool, newline: str
) -> None:
    lines = [base64_line(i) for i in range(4)]
    block = ["-----BEGIN OPENSSH PRIVATE KEY-----", *lines]
    block += ["-----END OPENSSH PRIVATE KEY-----"] if ending else []
    text = "".join(f"{mark}{line}\n" for line in block) + "# Note: rotate yearly\ndeploy()\n"
    text = text.replace("\n", newline)
    clean, kinds = redact(text)
    assert kinds == ["private-key"]
    assert not any(line in clean for line in lines) and "deploy()" in clean
    assert "# Note: rotate yearly" in clean  # a comment after the key is no part of it
    assert clean.count("\n") == text.count("\n")


def test_only_the_password_of_a_url_is_replaced() -> None:
    clean, kinds = redact("DATABASE_URL=postgres://app:Zq8xLw2PvN7@db.internal:5432/app\n")
    assert clean == "DATABASE_URL=postgres://app:[REDACTED:url-password]@db.internal:5432/app\n"
    assert kinds == ["url-password"]
    assert MARKED.findall(clean) == ["[REDACTED:url-password]"]  # what a lookup passes over


@pytest.mark.parametrize(
    "line",
    [
        'password = os.environ["DB_PASSWORD"]',
        "password = os.getenv('DB_PASSWORD')",
        'password = "changeme"',
        'api_key = "<your-token>"',
        "token: ${GITHUB_TOKEN}",
        'secret = "xxxxxxxxxxxxxxxx"',
        "secret = get_secret(name)",
        "self.password = password",
        "api_key = settings.OPENAI_API_KEY",
        'password = "********"',
        'API_KEY = "COHERE_API_KEY"',
        'token_type = "Bearer"',
        'api_key = "test-api-key-123"',
        'key = "user_name"',
        "for key in sorted(d.keys()):",
        'PASSWORD_FIELD = "password_confirmation"',
        "url = 'http://user:password@example.com/'",
        "postgres://chroma:chroma@localhost:5432/chroma",
        'AWS_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"',
        'headers = {"Authorization": f"Bearer {token}"}',
        'password_hash = hash_password(password, "sha256")',
        "let key_builder = Float32Builder::with_capacity(item_count);",
        'const ref = "-----BEGIN RSA PRIVATE KEY-----";',
        'secret_key: "{{ vault_secret }}"',
        "PASSWORD=%(password)s",
        'password = "12345678"',
        'key = (r"%s\\%0.1f\\VC\\VC_OBJECTS_PLATFORM_INFO\\Win32"\n       % (root, version))',
        'BEGIN = "-----BEGIN PRIVATE KEY-----"  # a PKCS#8 key, unencrypted; the footer closes it'
        '\nEND = "-----END PRIVATE KEY-----"',  # code that names the markers
        'token = "page=2&size=10"',  # query strings
        'data = "key2=value2x&key3=value3&key4=value4"',
        'PASSWORD_QUERY = "user=admin&pass=x"',
        'secret = "x=1;y=2"',
        'password = "https://example.com/?a=1&b=2"',
    ],
)
def test_placeholders_variables_and_calls_are_left_alone(line: str) -> None:
    assert redact(line) == (line, [])


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ('export PGPASSWORD="Xk9mPq2vL8nR4w"', "Xk9mPq2vL8nR4w"),  # a prefix glued to the word
        ("DBPASS=Xk9mPq2vL8nR4w", "Xk9mPq2vL8nR4w"),
        ('APITOKEN = "Hq7vLm2Xk9PwR4tZ"', "Hq7vLm2Xk9PwR4tZ"),
        ("git clone https://deploy:K9vQ2xLtestZ7@git.corp.internal/r.git", "K9vQ2xLtestZ7"),
        ('DB = "postgres://app:S3cr3tPassw0rd!x9@db.internal/app"', "S3cr3tPassw0rd!x9"),
        ('API_TOKEN = "Ktest9vQ2xLZ7ab"', "Ktest9vQ2xLZ7ab"),  # "test" inside is no placeholder
        ('api_key = "k3j9barx8q2m4n7p5w1z"', "k3j9barx8q2m4n7p5w1z"),
        ("DB_PASSWORD=a8f3c9e1d7b2foo4e6a0c5d9", "a8f3c9e1d7b2foo4e6a0c5d9"),
        ("token: ZX81KQ4BAR92LM5NP3TQ", "ZX81KQ4BAR92LM5NP3TQ"),
        ('SECRET_KEY = (\n    "Qw8Er5Ty2Ui9Op3AzX7c"\n)', "Qw8Er5Ty2Ui9Op3AzX7c"),  # black's wrap
        ("password: >-\n  Qw8Er5Ty2Ui9Op3AzX7c\n", "Qw8Er5Ty2Ui9Op3AzX7c"),  # a YAML block
        ('SECRET_KEY = (\r\n    "Qw8Er5Ty2Ui9Op3AzX7c"\r\n)', "Qw8Er5Ty2Ui9Op3AzX7c"),  # CRLF
        ("password: >-\r\n  Qw8Er5Ty2Ui9Op3AzX7c\r\n", "Qw8Er5Ty2Ui9Op3AzX7c"),
        ('const API_TOKEN: &str = "Qw8Er5Ty2Ui9Op3AzX7c";', "Qw8Er5Ty2Ui9Op3AzX7c"),  # Rust
        # `&` and `=` inside a generated password: no query string (from a tester)
        ('DB_PASSWORD = "Tr0ub4dor&3xyzQ"', "Tr0ub4dor&3xyzQ"),
        ('password = "7hG&kL2$pQ9!zX"', "7hG&kL2$pQ9!zX"),
        ('api_key = "k8&Qz!2mVp#9Lw$R"', "k8&Qz!2mVp#9Lw$R"),
        ('token = "x9K2m&P4q"', "x9K2m&P4q"),
        ('DB_PASSWORD = "Xk29vLq8=3mZr7"', "Xk29vLq8=3mZr7"),
        ("db.password=Xk29vLq8=3mZr7", "Xk29vLq8=3mZr7"),
        ('"password": "Tr0ub4dor&3xyzQ",', "Tr0ub4dor&3xyzQ"),
    ],
)
def test_a_generated_secret_is_redacted_even_where_it_holds_a_sample_word(
    line: str, secret: str
) -> None:
    clean, kinds = redact(line)
    assert secret not in clean and kinds


V = "Zk8qW2xR9vLp4TnB7mC3"  # a generated value


@pytest.mark.parametrize(
    "text",
    [
        f"<password>{V}</password>",  # XML elements and attributes
        f"<db.Password>{V}</db.Password>",
        f'<add key="ApiSecret" value="{V}" />',  # .NET appSettings
        f'<add value="{V}" key="ApiSecret" />',  # the value first
        f'{{"Value": "{V}", "Name": "DB_PASSWORD"}}',
        f"mysql --password={V} -u root",  # a command's flag
        f"mysqlsh --password {V} -u root",  # a flag, then its value
        f"gcloud auth --client-secret '{V}' --quiet",
        f"vault login -token {V}",
        f"mysql -h db -u root -p{V} shop",  # MySQL's glued `-p`
        f"mysql -h 127.0.0.1 -P3306 -uroot -p{V} shop",  # after the port's `-P`
        f"mysqldump -pnotsecret -u root -p{V}",
        f"mysqldump -uadmin -p'{V}' --all-databases > dump.sql",
        f"CREATE USER app WITH PASSWORD '{V}';",  # SQL
        f"CREATE USER 'app'@'%' IDENTIFIED BY '{V}';",
        f'<wsse:Password Type="#PasswordText">{V}</wsse:Password>',  # a namespace, attributes
        f"<password><![CDATA[{V}]]></password>",
        f"CREATE ROLE bob WITH LOGIN PASSWORD '{V}';",
        f"CREATE USER bob PASSWORD '{V}';",
        f'CREATE USER bob IDENTIFIED BY "{V}";',  # Oracle's quoted form
        f"CREATE USER bob IDENTIFIED BY {V};",  # and its bare one
        f"alter user c##app identified by {V} replace old",
        f"CREATE USER scott\n  IDENTIFIED BY {V}\n  DEFAULT TABLESPACE users;",
        f"NEXT_PUBLIC_API_SECRET={V}",  # "public" in a secret's name
        f"non_public_password = '{V}'",
        f"define('DB_PASSWORD', '{V}');",  # a call's name and value: PHP, Python, Java
        f'os.environ.setdefault("SECRET_KEY", "{V}")',
        f'req.setHeader("X-Api-Key", "{V}")',
        f'{{"Name": "DB_PASSWORD", "Value": "{V}"}}',  # name and value pairs: JSON, YAML
        f'[{{"name": "API_TOKEN",\n  "value": "{V}"}}]',
        f"env:\n  - name: DB_PASSWORD\n    value: {V}\n",
        f'env:\n  - name: GITHUB_TOKEN\n    value: "{V}"\n',
    ],
)
def test_a_secret_named_without_an_assignment_is_redacted(text: str) -> None:
    clean, kinds = redact(text)
    assert V not in clean and kinds
    assert clean.count("\n") == text.count("\n")


@pytest.mark.parametrize(
    "line",
    [
        "<password>changeme</password>",
        "<token>${GITHUB_TOKEN}</token>",
        "<key>CFBundleIdentifier</key>",
        'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")',
        'define("AUTH_KEY", "put your unique phrase here");',
        'config.get("password", "")',
        '{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db"}}}',
        "- name: API_TOKEN\n  value: ${API_TOKEN}\n",
        "mysql --password-file=/etc/mysql/creds.cnf",
        "mysql -u root -p shop",  # asks for it
        "mysql -u root -p$MYSQL_ROOT_PASSWORD shop",
        "mysql -u root -proot",
        "grep -pattern mysql.log",
        "ALTER ROLE app WITH PASSWORD 'password';",
        "ALTER ROLE app WITH PASSWORD NULL;",
        "Steal a handle from process identified by source_pid.",  # prose
        "ALTER USER scott IDENTIFIED BY tiger;",
        "Use --password to give it, or --token $GITHUB_TOKEN, or --password-file pw.txt",
        "app --password PASSWORD --api-key YOUR_API_KEY --secret-name db_main",
        '--password "$(cat /run/secrets/db)"',
        '<add value="mysite.settings" key="SettingsModule" />',
        "aws logs tail --next-token Ci33ACF6b8Qz2LmX91 --client-token 7b3bcec2563bf47249f0",
        "aws cognito-idp get-device --device-key us-west-2_a1b2c3d4-5678-90ab-cdef-1x1y1z",
        "docker login --username AWS --password-stdin registry.internal:5000/app",
        '"PublicKey": "MIIBojANBgkqhkiG9w0BAQEFAAOCAY8AMIIBigKCAYEA3A3eGMyPrvSn7"',
        'publicKeyToken="1fc8b3b9a1e18e3b"',
        "pg_dump --no-password --verbose shop",
        "psql --password --no-align -c 'select 1'",
        'headers.put("X-Api-Key", apiKey);',
        "CREATE USER 'app'@'localhost' IDENTIFIED WITH auth_socket;",  # no password at all
        "ALTER USER 'app'@'%' IDENTIFIED WITH caching_sha2_password BY RANDOM PASSWORD;",
        "CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password BY 'changeme';",
        "CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password BY '${DB_PASSWORD}';",
        'CMD ["server", "--password-file", "/run/secrets/db_password"]',  # lists of arguments
        'RUN ["docker", "login", "--password-stdin", "registry.internal:5000"]',
        'CMD ["server", "--password", "$PASSWORD"]',
        'CMD ["server", "--api-key", "${TOKEN}"]',
        'CMD ["server", "--password", "<password>"]',
        'CMD ["psql", "--password", "--no-align"]',  # asks for it
        'args: ["--token", "$(API_TOKEN)"]',
        'args: ["--next-token", "Ci33ACF6b8Qz2LmX91"]',
        'command: ["vault", "login", "-token", "${VAULT_TOKEN}"]',
        "args:\n  - --client-secret-file\n  - /etc/secret/x9\n",
        "args:\n  - --client-secret\n  - $(CLIENT_SECRET)\n",
        "args:\n  - --password\n  - --verbose\n",
        "args:\n  - --token\nimage:\n  - Ci33ACF6b8Qz2LmX91\n",  # not the next item
        'parser.add_argument("--password", "-p", help="the password")',
        'cmd = ["mysql", "--password", password]',
        "keytool -list -keystore cacerts -storepass changeit",  # keytool's own default
        "keytool -genkey -storepass $STORE_PASS -keypass ${KEY_PASS}",
        "keytool -genkey -storepass:env STOREPASS -keypass:file /run/secrets/kp",
        "keytool -genkey -storepass <password> -keypass MyKeyPass",
        "jarsigner -storepass EXAMPLEpass123 app.jar alias",
    ],
)
def test_names_without_an_assignment_and_no_generated_value_are_left_alone(line: str) -> None:
    assert redact(line) == (line, [])


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (
            "CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password BY 'S3cr3t!pw';",
            "CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password BY '[REDACTED:password]';",
        ),
        (
            f"ALTER USER 'app'@'localhost' IDENTIFIED WITH caching_sha2_password BY '{V}';",
            "ALTER USER 'app'@'localhost' IDENTIFIED WITH caching_sha2_password"
            " BY '[REDACTED:password]';",
        ),
        (
            f"ALTER USER app IDENTIFIED WITH 'caching_sha2_password'\n  BY \"{V}\";",
            "ALTER USER app IDENTIFIED WITH 'caching_sha2_password'\n  BY \"[REDACTED:password]\";",
        ),
    ],
)
def test_mysql_identified_with_a_plugin_by_a_password_is_redacted(text: str, clean: str) -> None:
    assert redact(text).text == clean


EXEC_FORM_LISTS = [
    (f'CMD ["server", "--password", "{V}"]', V),
    ('ENTRYPOINT ["app", "--api-key", "abc123def456"]', "abc123def456"),
    (f'ENTRYPOINT [\n  "/bin/app",\n  "--api-key",\n  "{V}"\n]', V),
    ('CMD ["server", "--password=Sup3rSecure"]', "Sup3rSecure"),  # no variable in quotes
    (f'exec.Command("mysql", "--password", "{V}")', V),  # Go's arguments
    (f'cmd := exec.Command(\n\t"mysql",\n\t"--password",\n\t"{V}",\n)\n', V),
]
KUBERNETES_LISTS = [
    ('args: ["--token", "abc123def456ghi"]', "abc123def456ghi"),
    ("args:\n  - --client-secret\n  - s3cr3tvalue99\n", "s3cr3tvalue99"),
    (f"args:\n  - '--client-secret'\n  - '{V}'\n", V),
    (f'containers:\n  - args:\n      - "--token"\n      - "{V}"\n', V),
    (f'command: ["vault", "login", "-token", "s.{V}"]', V),  # a Vault token of before 1.10
    (f'args: [\n  "--token",\n  "{V}"\n]\n', V),
]


@pytest.mark.parametrize(("text", "secret"), EXEC_FORM_LISTS)
def test_a_flag_and_its_value_in_a_docker_exec_form_list_are_redacted(
    text: str, secret: str
) -> None:
    clean, kinds = redact(text)
    assert secret not in clean and kinds
    assert clean.count("\n") == text.count("\n")


@pytest.mark.parametrize(("text", "secret"), KUBERNETES_LISTS)
def test_a_flag_and_its_value_in_a_kubernetes_args_list_are_redacted(
    text: str, secret: str
) -> None:
    clean, kinds = redact(text)
    assert secret not in clean and kinds
    assert clean.count("\n") == text.count("\n")


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        *EXEC_FORM_LISTS,
        *KUBERNETES_LISTS,
        ("args:\n    - --token\n    - Zk8qW2xR9vLp4TnB\n", "Zk8qW2xR9vLp4TnB"),
        ('args:\n  - "--token"\n  - "Zk8qW2xR9vLp4TnB"\n', "Zk8qW2xR9vLp4TnB"),
        (f"env:\n  - name: DB_PASSWORD\n    value: {V}\n", V),
        (f'[{{"name": "API_TOKEN",\n  "value": "{V}"}}]', V),
    ],
)
def test_a_secret_in_a_list_is_redacted_with_crlf_line_ends_as_with_lf(
    text: str, secret: str
) -> None:
    crlf = text.replace("\n", "\r\n")
    clean, kinds = redact(crlf)
    assert secret not in clean and kinds
    assert clean.count("\r\n") == crlf.count("\r\n")


@pytest.mark.parametrize(
    "text",
    [
        "args:\n  - --client-secret-file\n  - /etc/secret/x9\n",
        "args:\n  - --client-secret\n  - $(CLIENT_SECRET)\n",
        "args:\n  - --password\n  - --verbose\n",
        "args:\n  - --token\nimage:\n  - Ci33ACF6b8Qz2LmX91\n",  # not the next item
        'args:\n  - "--api-key"\n  - "apiKeyRef2"\n',
        "- name: API_TOKEN\n  value: ${API_TOKEN}\n",
    ],
)
def test_a_list_with_crlf_line_ends_and_no_secret_is_left_alone(text: str) -> None:
    crlf = text.replace("\n", "\r\n")
    assert redact(crlf) == (crlf, [])


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        ("args: [--token, Zk8qW2xR9vLp4TnB]", "args: [--token, [REDACTED:token]]"),
        (f"args: [serve, --api-key , {V}, -v]", "args: [serve, --api-key , [REDACTED:secret], -v]"),
        (f'args: [--password, "{V}"]', 'args: [--password, "[REDACTED:password]"]'),
        (f"args: [\n  --token,\n  {V}\n]\n", "args: [\n  --token,\n  [REDACTED:token]\n]\n"),
    ],
)
def test_a_flag_and_its_value_as_plain_items_of_a_yaml_flow_list_are_redacted(
    text: str, clean: str
) -> None:
    assert redact(text).text == clean


@pytest.mark.parametrize(
    "line",
    [
        "args: [--token, $(API_TOKEN)]",
        "args: [--token, apiKeyRef]",
        "args: [--password, --verbose]",
        "args: [--password-file, /run/secrets/db2x]",
        "total = f(x, --token, b2c3d4e5f6a7)",  # C's decrement, in a call
        "args: [--token, Zk8qW2xR9vLp4TnB(x)]",  # not a whole item
    ],
)
def test_a_plain_flow_list_without_a_secret_value_is_left_alone(line: str) -> None:
    assert redact(line) == (line, [])


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (
            'ENTRYPOINT ["app", "--password" , "Zk8qW2xR9vLp"]',
            'ENTRYPOINT ["app", "--password" , "[REDACTED:password]"]',
        ),
        (f"CMD ['app', '--token'\t,'{V}']", "CMD ['app', '--token'\t,'[REDACTED:token]']"),
        (
            f'exec.Command("mysql", "--password" ,\n\t"{V}")',
            'exec.Command("mysql", "--password" ,\n\t"[REDACTED:password]")',
        ),
    ],
)
def test_a_space_before_the_comma_after_a_flag_in_a_list_does_not_hide_its_value(
    text: str, clean: str
) -> None:
    assert redact(text).text == clean


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (
            'test: ["CMD", "mysqladmin", "ping", "-uroot", "-pZk8qW2xR9vLp"]',
            'test: ["CMD", "mysqladmin", "ping", "-uroot", "-p[REDACTED:password]"]',
        ),
        (
            f"test: ['CMD','mysql','-h','db','-p{V}','-e','SELECT 1']",
            "test: ['CMD','mysql','-h','db','-p[REDACTED:password]','-e','SELECT 1']",
        ),
    ],
)
def test_a_mysql_password_glued_to_p_as_a_quoted_list_item_is_redacted(
    text: str, clean: str
) -> None:
    assert redact(text).text == clean


@pytest.mark.parametrize(
    "line",
    [
        'test: ["CMD", "mysqladmin", "ping", "-p$MYSQL_ROOT_PASSWORD"]',
        'test: ["CMD", "mysqladmin", "ping", "-proot"]',
        'args = ["mysqldump", f"-p{password}", db]',
        'cmd = ["mysql", "-p" + password]',
        'opts = ["-pZk8qW2xR9vLp"]  # no mysql command',
        'mysql_flags = "-pZk8qW2xR9vLp".split()',  # a string, not an item of a list
    ],
)
def test_a_quoted_p_item_that_is_no_mysql_password_is_left_alone(line: str) -> None:
    assert redact(line) == (line, [])


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (
            "CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('Zk8qW2xR9vLp');",
            "CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('[REDACTED:password]');",
        ),
        (
            "ALTER USER app@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('S3cr3t!pw');",
            "ALTER USER app@'%' IDENTIFIED VIA mysql_native_password"
            " USING PASSWORD('[REDACTED:password]');",
        ),
        (
            f'CREATE USER u IDENTIFIED VIA unix_socket OR ed25519\n  USING PASSWORD("{V}");',
            "CREATE USER u IDENTIFIED VIA unix_socket OR ed25519\n"
            '  USING PASSWORD("[REDACTED:password]");',
        ),
    ],
)
def test_mariadb_identified_via_a_plugin_using_a_password_is_redacted(
    text: str, clean: str
) -> None:
    assert redact(text).text == clean


@pytest.mark.parametrize(
    "line",
    [
        "CREATE USER u IDENTIFIED VIA unix_socket;",
        "CREATE USER u IDENTIFIED VIA pam USING 'mariadb';",  # a PAM service's name
        "CREATE USER u IDENTIFIED VIA ed25519 USING PASSWORD('changeme');",
        "ALTER USER u IDENTIFIED VIA ed25519 USING PASSWORD(@new_password);",
    ],
)
def test_mariadb_identified_via_without_a_password_is_left_alone(line: str) -> None:
    assert redact(line) == (line, [])


@pytest.mark.parametrize(
    "text",
    [
        'ALIASES = ["--api-key", "apiKeyHeader"]',
        'args:\n  - "--api-key"\n  - "apiKeyRef2"\n',
        "args:\n  - '--token'\n  - 'authHeaderName'\n",
        'args: ["--client-secret", "clientIdHeader"]',
        'exec.Command("vault", "login", "-token", "vaultAuthRef")',
        'cmd = ["app", "--password", "config.dbAuthRef"]',
    ],
)
def test_an_identifier_quoted_as_the_item_after_a_secret_flag_is_left_alone(text: str) -> None:
    assert redact(text) == (text, [])


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ('ALIASES = ["--api-key", "Zk8qW2xR9vLp4TnB"]', "Zk8qW2xR9vLp4TnB"),
        ('CMD ["app", "--password", "TempPass123!"]', "TempPass123!"),
        ('args:\n  - "--token"\n  - "Zk8qW2xR9vLp4TnB"\n', "Zk8qW2xR9vLp4TnB"),
        ("args:\n  - '--password'\n  - 'TempPass123!'\n", "TempPass123!"),
    ],
)
def test_a_generated_value_quoted_as_the_item_after_a_secret_flag_is_still_redacted(
    text: str, secret: str
) -> None:
    clean, kinds = redact(text)
    assert secret not in clean and kinds


def test_keytool_store_and_key_passwords_are_redacted() -> None:
    text = (
        "keytool -genkey -alias app -keystore app.jks -storepass changeit2024 -keypass Secr3tKey\n"
        "keytool -importkeystore -srckeystore a.p12 -srcstorepass Zk8qW2xR9vLp"
        " -deststorepass Qw8Er5Ty2Ui9 -srckeypass Hq7vLm2Xk9Pw -destkeypass Xk9mPq2vL8nR\n"
    )
    clean, kinds = redact(text)
    assert clean == (
        "keytool -genkey -alias app -keystore app.jks -storepass [REDACTED:password]"
        " -keypass [REDACTED:password]\n"
        "keytool -importkeystore -srckeystore a.p12 -srcstorepass [REDACTED:password]"
        " -deststorepass [REDACTED:password] -srckeypass [REDACTED:password]"
        " -destkeypass [REDACTED:password]\n"
    )
    assert kinds == ["password"] * 6


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (
            "redis-server --appendonly yes --requirepass s3cretValue",
            "redis-server --appendonly yes --requirepass [REDACTED:password]",
        ),
        (
            'command: ["redis-server", "--requirepass", "s3cretValue"]',
            'command: ["redis-server", "--requirepass", "[REDACTED:password]"]',
        ),
        (  # redis.conf, its values perhaps quoted, lines perhaps commented out
            "bind 127.0.0.1\nrequirepass s3cretValue\r\n# masterauth s3cretValue\n",
            "bind 127.0.0.1\nrequirepass [REDACTED:password]\r\n# masterauth [REDACTED:password]\n",
        ),
        ('  masterauth "s3cretValue"', '  masterauth "[REDACTED:password]"'),
        (
            'echo "requirepass s3cretValue" >> /etc/redis/redis.conf',
            'echo "requirepass [REDACTED:password]" >> /etc/redis/redis.conf',
        ),
        (
            "redis-cli CONFIG SET requirepass s3cretValue",
            "redis-cli CONFIG SET requirepass [REDACTED:password]",
        ),
        (
            "redis-cli -h cache -a s3cretValue ping",
            "redis-cli -h cache -a [REDACTED:password] ping",
        ),
        ("redis-cli --pass s3cretValue ping", "redis-cli --pass [REDACTED:password] ping"),
        ("valkey-cli -a 's3cretValue' info", "valkey-cli -a '[REDACTED:password]' info"),
        (
            'test: ["CMD", "redis-cli", "-a", "s3cretValue", "ping"]',
            'test: ["CMD", "redis-cli", "-a", "[REDACTED:password]", "ping"]',
        ),
        (  # a command continued on the next line
            "redis-cli -h cache \\\n  -a s3cretValue --no-auth-warning ping",
            "redis-cli -h cache \\\n  -a [REDACTED:password] --no-auth-warning ping",
        ),
    ],
)
def test_a_redis_password_is_redacted(text: str, clean: str) -> None:
    assert redact(text).text == clean


@pytest.mark.parametrize(
    "line",
    [
        "# requirepass foobared",  # redis.conf's own sample
        "requirepass ${REDIS_PASSWORD}",
        "redis-server --requirepass $REDIS_PASSWORD",
        'redis-server --requirepass "${REDIS_PASSWORD:-}"',
        "# requirepass is set below from the environment",
        "The requirepass directive sets a password; masterauth must match it.",
        "redis-cli -a $REDIS_PASSWORD ping",
        "redis-cli -a %REDIS_AUTH% ping",  # a Windows variable
        "redis-cli -a <password> ping",
        "redis-cli --pass yourpassword",
        "tar -a -cf s3cretValue.tar.gz dir",  # `-a` of any other command
        "cp -a s3cretValue backup/",
        "grep -a s3cretValue redis-cli.log",
    ],
)
def test_redis_lines_without_a_password_are_left_alone(line: str) -> None:
    assert redact(line) == (line, [])


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (
            "openssl rsa -in key.pem -passin pass:s3cret -out plain.pem",
            "openssl rsa -in key.pem -passin pass:[REDACTED:password] -out plain.pem",
        ),
        (
            "openssl pkcs12 -export -in c.pem -inkey k.pem -passout pass:s3cret -out a.p12",
            "openssl pkcs12 -export -in c.pem -inkey k.pem -passout pass:[REDACTED:password]"
            " -out a.p12",
        ),
        (
            "openssl enc -aes-256-cbc -pbkdf2 -pass pass:s3cret -in f",
            "openssl enc -aes-256-cbc -pbkdf2 -pass pass:[REDACTED:password] -in f",
        ),
        (
            "openssl enc -aes-256-cbc -salt -k s3cret -in f -out f.enc",
            "openssl enc -aes-256-cbc -salt -k [REDACTED:password] -in f -out f.enc",
        ),
        (  # a cipher's own command is `openssl enc`
            "openssl aes-256-cbc -d -in f.enc -k s3cret",
            "openssl aes-256-cbc -d -in f.enc -k [REDACTED:password]",
        ),
        (
            "openssl enc -d -aes-256-cbc \\\n  -in f.enc -k s3cret",
            "openssl enc -d -aes-256-cbc \\\n  -in f.enc -k [REDACTED:password]",
        ),
        (
            '["openssl", "enc", "-aes-256-cbc", "-k", "s3cret", "-in", "f"]',
            '["openssl", "enc", "-aes-256-cbc", "-k", "[REDACTED:password]", "-in", "f"]',
        ),
        (  # `pass:` needs no command named: a variable's, a list's
            '$OPENSSL pkcs12 -in a.p12 -passin "pass:s3cret" -nodes',
            '$OPENSSL pkcs12 -in a.p12 -passin "pass:[REDACTED:password]" -nodes',
        ),
        (
            'run(["openssl", "rsa", "-in", "k.pem", "-passin", "pass:s3cret"])',
            'run(["openssl", "rsa", "-in", "k.pem", "-passin", "pass:[REDACTED:password]"])',
        ),
        (
            "openssl pkcs12 -in a.p12 -password pass:'s3cret'",
            "openssl pkcs12 -in a.p12 -password pass:'[REDACTED:password]'",
        ),
    ],
)
def test_an_openssl_password_is_redacted(text: str, clean: str) -> None:
    assert redact(text).text == clean


@pytest.mark.parametrize(
    "line",
    [
        "openssl rsa -in key.pem -passin env:KEY_PASS -out plain.pem",  # where it is kept
        "openssl rsa -in key.pem -passin file:/run/secrets/key_pass",
        "openssl rsa -in key.pem -passin stdin",
        "openssl enc -aes-256-cbc -pass fd:3 -in f",
        "openssl rsa -in key.pem -passin pass:$KEY_PASS",
        'openssl rsa -in key.pem -passin "pass:${KEY_PASS}"',
        'cmd = ["openssl", "rsa", "-passin", "pass:" + password]',
        'cmd = ["openssl", "rsa", "-passin", f"pass:{password}"]',
        "openssl pkcs12 -export -passout pass:changeit -out a.p12",
        "openssl pkcs12 -export -passout pass: -out a.p12",  # an empty one
        "openssl req -new -key k.pem -k s3cret",  # `-k` of another command
        "openssl enc -aes-256-cbc -kfile /run/secrets/k -in f",
        "curl -k https://s3cret.internal/",
    ],
)
def test_openssl_password_sources_and_other_k_flags_are_left_alone(line: str) -> None:
    assert redact(line) == (line, [])


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (
            "CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password"
            " AS '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19';",
            "CREATE USER 'app'@'%' IDENTIFIED WITH mysql_native_password AS '[REDACTED:password]';",
        ),
        (  # SHOW CREATE USER of caching_sha2_password, as text and as hex
            "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password'"
            " AS '$A$005$Xk9mPq2vL8nR4wZk8qW2xR9vLp4TnB7mC3Qw8Er5Ty2Ui9Op3Az';",
            "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password'"
            " AS '[REDACTED:password]';",
        ),
        (
            "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password'\n"
            "  AS 0x2441243030352458386B766B5E1D3F0A05496D3D6E5374537A4B6F6D6C;",
            "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password'\n"
            "  AS [REDACTED:password];",
        ),
        (  # MariaDB's form
            "CREATE USER u IDENTIFIED VIA mysql_native_password"
            " USING '*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19';",
            "CREATE USER u IDENTIFIED VIA mysql_native_password USING '[REDACTED:password]';",
        ),
    ],
)
def test_a_mysql_password_hash_is_redacted(text: str, clean: str) -> None:
    assert redact(text).text == clean


@pytest.mark.parametrize(
    "line",
    [
        "CREATE USER 'mysql.sys'@localhost IDENTIFIED WITH mysql_native_password"
        " AS '*THISISNOTAVALIDPASSWORDTHATCANBEUSEDHERE' ACCOUNT LOCK;",  # a locked account
        "CREATE USER u IDENTIFIED WITH authentication_ldap_simple AS 'uid=u,ou=People,dc=corp';",
        "CREATE USER u IDENTIFIED WITH authentication_pam AS 'mysql-unix, mysql=dev';",
        "CREATE USER u IDENTIFIED WITH auth_socket AS 'valerie';",
        "CREATE USER u IDENTIFIED WITH mysql_native_password"
        " AS '*0000000000000000000000000000000000000000';",
    ],
)
def test_an_authentication_string_that_is_no_password_hash_is_left_alone(line: str) -> None:
    assert redact(line) == (line, [])


@pytest.mark.parametrize(
    "line",
    [
        'parser.add_argument("--api-key", "--apikey", help="the service key")',
        'parser.add_argument("--client-secret", "--client_secret", dest="client_secret")',
        'click.option("--token", "--auth-token-value", envvar="TOKEN")',
    ],
)
def test_a_flag_s_other_name_after_a_secret_flag_is_not_its_value(line: str) -> None:
    assert redact(line) == (line, [])


@pytest.mark.parametrize(
    ("text", "clean"),
    [
        (
            f'subprocess.run(["tool", "--api-key", "{V}"])',
            'subprocess.run(["tool", "--api-key", "[REDACTED:secret]"])',
        ),
        (
            f'parser.add_argument("--api-key", "{V}")',
            'parser.add_argument("--api-key", "[REDACTED:secret]")',
        ),
    ],
)
def test_a_value_after_a_secret_flag_in_a_call_is_still_redacted(text: str, clean: str) -> None:
    assert redact(text).text == clean


@pytest.mark.parametrize(
    "line",
    [
        'u = "postgres://app:testpass@db/app"',
        'u = "postgres://app:changeme1@db/app"',
        'u = "postgres://app:${DB_PASSWORD}@db/app"',
        'COMPASS = "NorthEastWind7"',
        'password = "test-password-1"',
    ],
)
def test_sample_passwords_and_words_ending_in_pass_are_left_alone(line: str) -> None:
    assert redact(line) == (line, [])


URLSAFE = string.ascii_letters + string.digits + "-_"


def generated(n: int, seed: int = 0, alphabet: str = URLSAFE) -> str:
    """A generated value of `n` characters, url-safe base64 unless told otherwise."""
    rng = random.Random(seed)
    return "".join(rng.choice(alphabet) for _ in range(n))


def pem_base64(lines: int = 25) -> str:
    """A kubeconfig's `client-key-data`: the base64 of a PEM block (2,252 characters)."""
    body = "\n".join(base64_line(i) for i in range(lines))
    pem = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----\n"
    return base64.b64encode(pem.encode()).decode()


def pieces_left(value: str, clean: str, text: str = "") -> list[str]:
    """Pieces of `value` in `clean`, but for those the rest of `text` holds too (the base64
    of `-----BEGIN`, in a certificate's data as in a key's)."""
    rest = text.replace(value, "")
    pieces = [value[i : i + 12] for i in range(0, len(value) - 11, 12)]
    return [p for p in pieces if p in clean and p not in rest]


def replaced(text: str, value: str) -> str:
    """`text` as it should come back: `value` replaced by one marker, nothing else."""
    return text.replace(value, "[REDACTED]")


def markers(clean: str) -> str:
    return re.sub(r"\[REDACTED:[a-z-]+\]", "[REDACTED]", clean)


LONG = generated(600, 1)
LONG_B64 = generated(600, 2, string.ascii_letters + string.digits + "+/")
# A token with a run of 300 base64 characters inside: more than a blob's 256.
SPLIT_BY_MASK = f"{generated(40, 4)}-{generated(300, 5, string.ascii_letters)}_{generated(60, 6)}"
KEY_DATA = pem_base64()
CERT_DATA = base64.b64encode(
    (
        "-----BEGIN CERTIFICATE-----\n"
        + "\n".join(base64_line(i + 50) for i in range(20))
        + "\n-----END CERTIFICATE-----\n"
    ).encode()
).decode()
LONG_VALUE_FORMS = [
    ('API_TOKEN = "{v}"\n', generated(387, 3)),  # as reported: 54 and 267 were redacted
    ("client_secret: {v}\nnext: 1\n", LONG_B64),  # YAML, bare
    ("password={v}\n", LONG),
    (
        "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n"
        f"    client-certificate-data: {CERT_DATA}\n    client-key-data: {{v}}\n",
        KEY_DATA,
    ),
    ('{{"api_key": "{v}"}}\n', LONG),
    ('SECRET_KEY = (\n    "{v}"\n)\n', LONG),
    ("password: >-\n  {v}\n", LONG),
    ("DATABASE_URL=postgres://app:{v}@db.internal:5432/app\n", LONG),
    ("mysqlsh --password {v} -u root\n", LONG),
    ("gcloud auth --client-secret '{v}' --quiet\n", LONG),
    ("mysql --password={v} -u root\n", LONG),
    ("<password>{v}</password>\n", LONG),
    ("<password><![CDATA[{v}]]></password>\n", LONG),
    ("define('DB_PASSWORD', '{v}');\n", LONG),
    ('os.environ.setdefault("SECRET_KEY", "{v}")\n', LONG),
    ('{{"Name": "DB_PASSWORD", "Value": "{v}"}}\n', LONG),
    ('[{{"name": "API_TOKEN",\n  "value": "{v}"}}]\n', LONG),
    ("env:\n  - name: DB_PASSWORD\n    value: {v}\n", LONG),
    ('<add value="{v}" key="ApiSecret" />\n', LONG),
    ("CREATE USER app WITH PASSWORD '{v}';\n", LONG),
    ("CREATE USER 'app'@'%' IDENTIFIED BY '{v}';\n", LONG),
    ('CREATE USER bob IDENTIFIED BY "{v}";\n', LONG),
    ("CREATE USER bob IDENTIFIED BY {v};\n", LONG),
    ("CREATE USER a IDENTIFIED VIA ed25519 USING PASSWORD('{v}');\n", LONG),
    ("CREATE USER a IDENTIFIED WITH caching_sha2_password AS '{v}';\n", "$A$005$" + LONG),
    ('CMD ["server", "--password", "{v}"]\n', LONG),
    ("args: [--token, {v}]\n", LONG),
    ("args:\n  - --token\n  - {v}\n", LONG),
    ('args:\n  - "--token"\n  - "{v}"\n', LONG),
    ("mysql -h db -u root -p{v} shop\n", LONG),
    ("mysql -h db -u root -p'{v}' shop\n", LONG),
    ('test: ["CMD", "mysqladmin", "ping", "-p{v}"]\n', LONG),
    ("requirepass {v}\n", LONG),
    ("redis-cli -a {v} ping\n", LONG),
    ("openssl rsa -in k.pem -passin pass:{v} -out p.pem\n", LONG),
    ("openssl rsa -in k.pem -passin pass:'{v}' -out p.pem\n", LONG),
    ("openssl enc -aes-256-cbc -k {v} -in f\n", LONG),
    ("keytool -genkey -alias app -storepass {v} -keystore app.jks\n", LONG),
]


@pytest.mark.parametrize(("text", "value"), LONG_VALUE_FORMS)
def test_a_long_secret_value_is_redacted_whole(text: str, value: str) -> None:
    text = text.format(v=value)
    clean, kinds = redact(text)
    assert not pieces_left(value, clean, text)
    assert markers(clean) == replaced(text, value)


@pytest.mark.parametrize("length", [299, 300, 301, 2_272, 20_000, 70_000])
@pytest.mark.parametrize(
    "text", ['API_TOKEN = "{v}"\n', "client_secret: {v}\nnext: 1\n", "password={v} # end\n"]
)
def test_a_secret_value_is_redacted_whole_whatever_its_length(text: str, length: int) -> None:
    value = generated(length, length)
    text = text.format(v=value)
    clean, _ = redact(text)
    assert markers(clean) == replaced(text, value)


@pytest.mark.parametrize("lines", [400, 1_100])  # 26,000 and 71,500 characters of key
@pytest.mark.parametrize("escaped", [False, True])
def test_a_long_private_key_block_is_redacted_whole(lines: int, escaped: bool) -> None:
    body = "\n".join(base64_line(i) for i in range(lines))
    block = f"-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----"
    text = f"a = 1\n{block}\nb = 2\n"
    if escaped:  # a service account's JSON
        text = '{"private_key": "' + block.replace("\n", "\\n") + '\\n", "b": 2}\n'
    clean, kinds = redact(text)
    assert kinds == ["private-key"]
    assert not [i for i in range(lines) if base64_line(i) in clean]
    assert clean.count("\n") == text.count("\n") and "b" in clean.splitlines()[-1]


@pytest.mark.parametrize(
    "line",
    [
        "client-certificate-data: {v}",  # a certificate is no secret, however long
        "certificate-authority-data: {v}",
        'integrity: "sha512-{v}"',
        "public_key = {v}",
        '"publicKey": "{v}"',
        "password_hint = {v}",
    ],
)
def test_a_long_value_under_a_name_that_holds_no_secret_is_left_alone(line: str) -> None:
    line = line.format(v=CERT_DATA)
    assert redact(line) == (line, [])


def test_a_long_secret_is_redacted_whole_when_its_file_is_read_or_indexed(
    app: App, tmp_path: Path
) -> None:
    """`read` redacts the file as it is; indexing redacts before it masks base64 blobs
    (masking first split a value with a long base64 run inside it, and both of its ends,
    no longer after their name, were indexed as they are)."""
    from contextd.connectors import open_source, scan_changes
    from contextd.reading import read_file
    from contextd.records import Change

    root = tmp_path / "deploy"
    token = generated(387, 3)
    files = {  # path: (text, secret, the text as read)
        "kubeconfig.yaml": (
            f"users:\n- name: admin\n  user:\n    client-certificate-data: {CERT_DATA}\n"
            f"    client-key-data: {KEY_DATA}\n",
            KEY_DATA,
            f"users:\n- name: admin\n  user:\n    client-certificate-data: {CERT_DATA}\n"
            "    client-key-data: [REDACTED:secret]",
        ),
        "settings.py": (
            f'API_TOKEN = "{token}"\nDEBUG = False\n',
            token,
            'API_TOKEN = "[REDACTED:token]"\nDEBUG = False',
        ),
        "app.yaml": (
            f"oauth:\n  client_secret: {LONG}\n  scopes: [read]\n",
            LONG,
            "oauth:\n  client_secret: [REDACTED:secret]\n  scopes: [read]",
        ),
        "worker.yaml": (
            f"oauth:\n  client_secret: {LONG_B64}\n  scopes: [read]\n",
            LONG_B64,
            "oauth:\n  client_secret: [REDACTED:secret]\n  scopes: [read]",
        ),
        "refresh.yaml": (
            f"refresh_token: {SPLIT_BY_MASK}\nscopes: [read]\n",
            SPLIT_BY_MASK,
            "refresh_token: [REDACTED:token]\nscopes: [read]",
        ),
    }
    for path, (text, _, _) in files.items():
        write(root, path, text)
    app.catalog.add_source("deploy", root, "folder")
    indexed = {
        e.path: e.text
        for e in scan_changes(open_source("deploy", root, "folder"), {}, 1024 * 1024)
        if isinstance(e, Change)
    }
    for path, (text, secret, as_read) in files.items():
        read = read_file(app.catalog, "deploy", path).text
        assert read == as_read, path
        assert not pieces_left(secret, read, text), path
        assert indexed[path] and not pieces_left(secret, indexed[path], text), path


def test_redact_leaves_clean_text_identical() -> None:
    text = "def total(items):\n    return sum(i.price for i in items)\n"
    assert redact(text).text is text


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN RSA PRIVATE KEY-----\n" * 30_000,  # each header once searched to the next
        "key=" * 250_000,  # a keyword inside a value read is not a name
        "api_key: abc\n" * 80_000,
        "<key>" * 200_000,  # names with no assignment after them
        "key " * 250_000,
        "name: password" + " " * 40_000 + "x",  # 23 s when a separator read two ways
        "name: password" + " " * 5_000 + "\n" * 200_000,
        '["--token",' + " " * 1_000_000,  # a flag in a list, then no next item
        "  - --token\n" + " " * 1_000_000,
        " " * 1_000_000 + "- --token\n" + " " * 1_000_000 + "- Zk8qW2xR9vLp4TnB7mC3",
        "identified with" + " " * 1_000_000 + "x",
        "[--token," + " " * 1_000_000,  # a plain flag in a flow list, then no next item
        "[--token, Zk8qW2xR9vLp4TnB" + " " * 1_000_000 + "x",
        '["--token"' + " " * 1_000_000 + ",",
        "args:\r\n  - --token\r\n" + " " * 1_000_000 + "\r\n",
        '"mysql", "' + "-p" * 500_000,
        "mysql " + "'-pZk8qW2xR9vLp'" * 70_000,
        "identified via " * 70_000,
        "identified via x or " * 50_000,
        "identified via x using password(" + " " * 1_000_000,
        "key = (" + " " * 1_000_000 + "(",  # 26 s for 20,000 blanks when read two ways
        "key = (\r\n" + " " * 1_000_000 + "(",
        "-----BEGIN RSA PRIVATE KEY-----\r\n" * 30_000,
        "openssl enc" + " " * 1_000_000 + "-k",
        "openssl enc " + "\\\n" * 500_000,
        "openssl" + " " * 1_000_000 + ",",
        "redis-cli " + "-a " * 300_000,
        'redis-cli ["-a",' + " " * 1_000_000,
        "-passin" + " " * 1_000_000 + "pass:x",
        "-passin pass:'" + "a" * 1_000_000,
        "requirepass" + " " * 1_000_000 + "x",
        " " * 100_000 + "=" * 100_000 + "\nrequirepass " * 10_000,
        "identified with mysql_native_password as '" + "\\a" * 500_000,
        "identified with sha256_password" + " " * 1_000_000 + "as 0x",
        'f("--api-key", "-' + "x" * 1_000_000,
        "redis-cli -a " * 80_000,  # each flag's value judged once
        "openssl enc -k " * 70_000,
        "-passin pass:x1 " * 65_000,
        "requirepass ab1x\n" * 60_000,
        # Values read up to 1 MiB (1,048,576 characters): each is read once, however long
        "password=" + "Zk8qW2xR9vLp4TnB" * 62_500,  # one bare value, read on past the bound
        'token = "' + "Zk8qW2xR9vLp4TnB" * 62_500,  # a quote never closed
        'token = "' + "Zk8qW2xR9vLp4TnB" * 62_500 + '"',  # closed past the bound
        ("password=" + generated(600, 5) + "\n") * 1_600,  # many long values
        ('api_key: "' + generated(600, 6) + '"\n') * 1_600,
        'token = "a[{(<' + "a1[{(<" * 170_000 + '"',  # brackets never closed, in one value
        'token = "' + "<aB3" * 16_000 + '"\n' * 60,
        "<password>" + "Zk8qW2xR9vLp4TnB" * 62_500,  # no closing tag
        ("<password>" + "Zk8qW2xR9vLp4TnB" * 4_000 + "</password>\n") * 15,
        "://u:" + "Zk8qW2xR9vLp4TnB" * 62_500,  # a URL's password with no @ after it
        ("://u:" + "p" * 1_000) * 1_000,
        'f("--api-key", "' + "x1" * 500_000,
        '["--token", "' + "x1" * 500_000,
        "[--token, " + "x1" * 500_000,
        "args:\n  - --token\n  - " + "x1" * 500_000,
        "mysql -p'" + "x1" * 500_000,
        "mysql " + ("-p" + "x1" * 1_000 + " ") * 500,
        "mysql " + " ".join(["'-p" + "x1" * 100 + "'"] * 5_000),
        "identified by '" + "x1" * 500_000,
        "identified via x using password('" + "x1" * 500_000,
        "create user x identified by " + "x1" * 500_000,
        "identified with ed25519 as '" + "x1" * 500_000,
        "identified with sha256_password as 0x" + "ab" * 500_000,
        '<add value="' + "x1" * 500_000 + '" key="ApiSecret"/>',
        '<add value="x" key="password"/>\n' * 35_000,  # each name reads back to its value
        "<add value='x' key='password'/>\n" * 35_000,
        ("<add value='" + "x1" * 150 + "' key='password'/>\n") * 3_000,
        '{"Name": "DB_PASSWORD", "Value": "' + "x1" * 500_000,
        "-passin pass:" + "x1" * 500_000,
        "redis-cli -a " + "x1" * 500_000,
        "requirepass " + "x1" * 500_000,
        "-----BEGIN RSA PRIVATE KEY-----\n" + (base64_line(0) + "\n") * 16_000,
        "-----BEGIN RSA PRIVATE KEY-----\n" + "a" * 1_000_000,  # no END, no line end
        ("-----BEGIN RSA PRIVATE KEY-----\n" + (base64_line(0) + "\n") * 1_100) * 14,
        '"-----BEGIN PRIVATE KEY-----' + "\\n" * 500_000,
    ],
)
def test_a_megabyte_of_pathological_text_takes_well_under_a_few_seconds(text: str) -> None:
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 5  # 40 s before each was bounded
