"""pip's configuration and the requirements files' options, read by pip itself and said to uv
(``pip_settings.plan``): what each setting becomes, what makes uv unusable, and that the same
holds with the pip of the image (23.0.1) and the newest pip (26.3).

Each test starts from no pip configuration at all: no PIP_* variable, PIP_CONFIG_FILE=/dev/null
(no pip.conf, this machine's /etc/pip.conf included), a home and XDG directories of its own. The
tests of pip.conf levels lift PIP_CONFIG_FILE and write the files they mean.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from installs import REPO

from sagemaker_mxnet_container import pip_settings
from sagemaker_mxnet_container.pip_settings import CannotUseUv

# Pinned: the image's pip (Debian 12's python3.11-venv) and the newest at the time of writing.
PIP_VERSIONS = ("23.0.1", "26.3")
WHEEL_CACHE = Path.home() / ".cache" / "sagemaker-mxnet-container" / "wheels"


@pytest.fixture(autouse=True)
def no_pip_configuration(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith(("PIP_", "UV_")) or name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "XDG_CONFIG_HOME"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_DIRS", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return home


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def flags(arguments, flag):
    return [arguments[i + 1] for i, argument in enumerate(arguments) if argument == flag]


def test_with_no_configuration_uv_gets_pips_defaults_and_nothing_else():
    uv = pip_settings.plan([])

    assert uv.notes == []
    assert uv.environ == {"UV_HTTP_TIMEOUT": "15", "UV_HTTP_RETRIES": "5"}
    assert set(uv.arguments) <= {"--system-certs"}


@pytest.mark.parametrize(
    "location",
    ["xdg/pip/pip.conf", "home/.config/pip/pip.conf", "home/.pip/pip.conf", "elsewhere.conf"],
    ids=["global (XDG_CONFIG_DIRS)", "user", "user (legacy)", "PIP_CONFIG_FILE"],
)
def test_every_pip_conf_level_reaches_uv(tmp_path, monkeypatch, location):
    path = write(tmp_path / location, "[global]\nindex-url = https://index.test/simple\nfind-links = /srv/wheels\n")
    if location == "elsewhere.conf":
        monkeypatch.setenv("PIP_CONFIG_FILE", str(path))
    else:
        monkeypatch.delenv("PIP_CONFIG_FILE")

    uv = pip_settings.plan([])

    assert uv.environ["UV_INDEX_URL"] == "https://index.test/simple"
    assert uv.environ["UV_FIND_LINKS"] == "/srv/wheels"


def test_precedence_is_pips_own_install_section_then_user_then_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("PIP_CONFIG_FILE")
    write(tmp_path / "xdg/pip/pip.conf", "[global]\nindex-url = https://global.test\nretries = 2\ntimeout = 7\n")
    write(tmp_path / "home/.config/pip/pip.conf", "[global]\nretries = 3\n[install]\nindex-url = https://user.test\n")
    monkeypatch.setenv("PIP_RETRIES", "4")

    uv = pip_settings.plan([])

    assert uv.environ["UV_INDEX_URL"] == "https://user.test"
    assert uv.environ["UV_HTTP_RETRIES"] == "4"
    assert uv.environ["UV_HTTP_TIMEOUT"] == "7"


def test_pip_config_file_devnull_switches_every_file_off(tmp_path):
    write(tmp_path / "xdg/pip/pip.conf", "[global]\nindex-url = https://global.test\n")

    assert "UV_INDEX_URL" not in pip_settings.plan([]).environ


def test_settings_are_translated_and_urls_travel_in_the_environment_only(monkeypatch):
    secret_index = "https://alice:s3cret@index.test/simple"
    for name, value in {
        "PIP_INDEX_URL": secret_index,
        "PIP_EXTRA_INDEX_URL": "https://one.test/simple https://bob:pw@two.test/simple",
        "PIP_FIND_LINKS": "/srv/a https://links.test/",
        "PIP_TRUSTED_HOST": "one.test two.test:8443",
        "PIP_CONSTRAINT": "/srv/constraints.txt",
        "PIP_NO_BINARY": "smmx-a",
        "PIP_ONLY_BINARY": "smmx-b",
        "PIP_PRE": "yes",
        "PIP_NO_DEPS": "true",
        "PIP_FORCE_REINSTALL": "1",
        "PIP_BREAK_SYSTEM_PACKAGES": "1",
        "PIP_REQUIRE_HASHES": "1",
        "PIP_CLIENT_CERT": "/srv/client.pem",
        "PIP_PROXY": "http://carol:pw@proxy.test:3128",
        "PIP_CERT": "/srv/ca.pem",
        "PIP_TIMEOUT": "2.5",
        "PIP_RETRIES": "0",
        "PIP_VERBOSE": "2",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_NO_COMPILE": "1",
    }.items():
        monkeypatch.setenv(name, value)

    uv = pip_settings.plan([])

    assert uv.environ["UV_INDEX_URL"] == secret_index
    assert uv.environ["UV_EXTRA_INDEX_URL"] == "https://one.test/simple https://bob:pw@two.test/simple"
    assert uv.environ["UV_FIND_LINKS"] == "/srv/a,https://links.test/"
    assert flags(uv.arguments, "--allow-insecure-host") == ["one.test", "two.test:8443"]
    assert flags(uv.arguments, "--constraints") == ["/srv/constraints.txt"]
    assert flags(uv.arguments, "--no-binary") == ["smmx-a"]
    assert flags(uv.arguments, "--only-binary") == ["smmx-b"]
    assert flags(uv.arguments, "--prerelease") == ["allow"]
    assert {"--no-deps", "--reinstall", "--break-system-packages", "--require-hashes"} <= set(uv.arguments)
    assert flags(uv.arguments, "--cert") == ["/srv/ca.pem"]
    assert uv.environ["SSL_CLIENT_CERT"] == "/srv/client.pem"
    assert uv.environ["HTTPS_PROXY"] == uv.environ["HTTP_PROXY"] == "http://carol:pw@proxy.test:3128"
    assert (uv.environ["UV_HTTP_TIMEOUT"], uv.environ["UV_HTTP_RETRIES"]) == ("3", "0")
    for secret in ("s3cret", "bob:pw", "carol:pw"):
        assert not any(secret in argument for argument in uv.arguments)


def test_pips_negative_booleans_mean_what_they_mean_to_pip(monkeypatch):
    # PIP_NO_BUILD_ISOLATION=0 switches build isolation off: pip reads the value into the option
    # --no-build-isolation stores False into.
    monkeypatch.setenv("PIP_NO_BUILD_ISOLATION", "0")

    assert "--no-build-isolation" in pip_settings.plan([]).arguments


def test_a_ca_bundle_from_requests_variables_is_the_one_uv_trusts(monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/srv/bundle.pem")

    assert flags(pip_settings.plan([]).arguments, "--cert") == ["/srv/bundle.pem"]


def test_a_requirements_files_index_url_beats_the_configured_and_the_given_one(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_INDEX_URL", "https://configured.test/simple")
    write(tmp_path / "more.txt", "--index-url https://file.test/simple\nsmmx-a\n")
    write(tmp_path / "requirements.txt", "-r more.txt\n")

    assert "UV_INDEX_URL" not in pip_settings.plan(["requirements.txt"], "https://given.test/simple/").environ
    assert pip_settings.plan([], "https://given.test/simple/").environ["UV_INDEX_URL"] == "https://given.test/simple/"


def test_file_options_uv_ignores_in_files_are_given_on_its_command_line(tmp_path):
    digest = "0" * 64
    write(tmp_path / "requirements.txt", f"--pre\n--trusted-host files.test\nsmmx-a==1.0 --hash=sha256:{digest}\n")

    uv = pip_settings.plan(["requirements.txt"])

    assert flags(uv.arguments, "--prerelease") == ["allow"]
    assert flags(uv.arguments, "--allow-insecure-host") == ["files.test"]
    assert "--require-hashes" in uv.arguments


@pytest.mark.parametrize(
    "requirements, reason",
    [
        ("--prefer-binary\nsmmx-a\n", "requirements.txt line 1 uses --prefer-binary"),
        ("--use-feature=truststore\n", "requirements.txt line 1 uses --use-feature"),
        ("smmx-a --config-settings=x=y\n", "requirements.txt line 1 uses --config-settings"),
        ("-r https://files.test/more.txt\n", "a requirements file includes https://files.test/more.txt by URL"),
        ("--index-url https://a.test\n-r more.txt\n", "the requirements files set --index-url more than once"),
        ("-r absent.txt\n", "pip cannot read the requirements"),
    ],
)
def test_requirements_options_uv_cannot_honour_are_named(tmp_path, requirements, reason):
    write(tmp_path / "more.txt", "--index-url https://b.test\n")
    write(tmp_path / "requirements.txt", requirements)

    with pytest.raises(CannotUseUv) as raised:
        pip_settings.plan(["requirements.txt"])

    assert str(raised.value).startswith(reason)


@pytest.mark.parametrize(
    "name, value, reason",
    [
        ("PIP_PREFER_BINARY", "1", "pip's configuration sets --prefer-binary"),
        ("PIP_USER", "1", "pip's configuration sets --user"),
        ("PIP_TARGET", "/srv/target", "pip's configuration sets --target"),
        ("PIP_UPGRADE", "1", "pip's configuration sets --upgrade"),
        ("PIP_USE_PEP517", "0", "pip's configuration sets --use-pep517"),
        ("PIP_TIMEOUT", "soon", "pip's configuration is not valid"),
    ],
)
def test_pip_settings_uv_cannot_honour_are_named(monkeypatch, name, value, reason):
    monkeypatch.setenv(name, value)

    with pytest.raises(CannotUseUv) as raised:
        pip_settings.plan([])

    assert str(raised.value).startswith(reason)


def test_an_eager_upgrade_is_uvs_upgrade(monkeypatch):
    monkeypatch.setenv("PIP_UPGRADE", "1")
    monkeypatch.setenv("PIP_UPGRADE_STRATEGY", "eager")

    assert pip_settings.plan([]).arguments.count("--upgrade") == 1


def test_a_keyring_in_reach_makes_pip_install(tmp_path, monkeypatch):
    write(tmp_path / "modules" / "keyring.py", "")
    monkeypatch.syspath_prepend(str(tmp_path / "modules"))

    with pytest.raises(CannotUseUv, match="keyring is installed"):
        pip_settings.plan([])


def test_the_machines_own_pip_configuration_is_what_uv_gets(monkeypatch):
    """Under this machine's real configuration (the global /etc/xdg/pip/pip.conf here; whatever a
    clean machine has elsewhere), uv gets what ``pip config list`` reports."""
    monkeypatch.undo()
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    settings = {}
    for line in listed.splitlines():
        key, _, value = line.partition("=")
        # Later lines are higher levels (env last), as pip applies them.
        settings[key.split(".", 1)[1]] = value.strip("'")

    uv = pip_settings.plan([])

    in_environ = {"find-links": "UV_FIND_LINKS", "extra-index-url": "UV_EXTRA_INDEX_URL", "index-url": "UV_INDEX_URL"}
    for key, variable in in_environ.items():
        if key in settings:
            assert uv.environ[variable].replace(",", " ") == settings[key]
        else:
            assert variable not in uv.environ
    assert flags(uv.arguments, "--constraints") == settings.get("constraint", "").split()
    if "cert" in settings:
        assert flags(uv.arguments, "--cert") == [settings["cert"]]


@pytest.fixture(scope="session")
def pip_releases(tmp_path_factory):
    """{version: a directory holding that pip, importable}; the wheels are downloaded once, then cached."""
    WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
    found = {}
    for version in PIP_VERSIONS:
        wheel_path = WHEEL_CACHE / f"pip-{version}-py3-none-any.whl"
        if not wheel_path.exists():
            subprocess.run(
                [sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"pip=={version}", "-d", str(WHEEL_CACHE)],
                check=True,
                capture_output=True,
            )
        target = tmp_path_factory.mktemp(f"pip-{version}")
        with zipfile.ZipFile(wheel_path) as archive:
            archive.extractall(target)
        found[version] = target
    return found


PLAN_SCRIPT = """
import json, pip
from sagemaker_mxnet_container import pip_settings
uv = pip_settings.plan(["requirements.txt"], None)
try:
    pip_settings.requirements_options("unsupported.txt")
    refused = ""
except pip_settings.CannotUseUv as error:
    refused = str(error)
print(json.dumps({"pip": pip.__version__, "arguments": uv.arguments, "environ": uv.environ, "refused": refused}))
"""


@pytest.mark.parametrize("version", PIP_VERSIONS)
def test_the_images_pip_and_the_newest_pip_give_the_same_plan(tmp_path, pip_releases, version):
    write(tmp_path / "pip.conf", "[global]\nextra-index-url = https://extra.test/simple\n[install]\nno-deps = yes\n")
    write(tmp_path / "requirements.txt", "--trusted-host files.test\n-r more.txt\n")
    write(tmp_path / "more.txt", "--pre\nsmmx-a==1.0 --hash=sha256:" + "0" * 64 + "\n")
    write(tmp_path / "unsupported.txt", "--prefer-binary\n")
    environ = {
        "HOME": os.environ["HOME"],
        "XDG_CONFIG_DIRS": os.environ["XDG_CONFIG_DIRS"],
        "PIP_CONFIG_FILE": str(tmp_path / "pip.conf"),
        "PIP_CERT": "/srv/ca.pem",
        "PYTHONPATH": os.pathsep.join([str(pip_releases[version]), str(REPO)]),
    }

    run = subprocess.run([sys.executable, "-c", PLAN_SCRIPT], env=environ, cwd=tmp_path, capture_output=True, text=True)

    assert run.returncode == 0, run.stderr
    import json

    found = json.loads(run.stdout)
    assert found["pip"] == version
    assert found["environ"] == {
        "UV_EXTRA_INDEX_URL": "https://extra.test/simple",
        "UV_HTTP_TIMEOUT": "15",
        "UV_HTTP_RETRIES": "5",
    }
    assert found["arguments"] == [
        "--no-deps", "--allow-insecure-host", "files.test", "--prerelease", "allow", "--require-hashes",
        "--cert", "/srv/ca.pem",
    ]  # fmt: skip
    assert found["refused"] == "unsupported.txt line 1 uses --prefer-binary, which uv does not support"
